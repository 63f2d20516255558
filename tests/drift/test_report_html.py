"""The HTML page: a summary table first, then per feature histograms whose bars are labelled by
their bin's range or category on a share axis; self-contained."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from drift import DriftReport, Family, build_profile, compare
from drift.report_html import render_html
from tests.support.drift_reports import drift_report


def a_report() -> DriftReport:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"size <b>": rng.normal(10, 1, 500), "colour": rng.choice(["red", "blue"], 500)}
    )
    profile = build_profile(frame)
    family = Family(tests=6)
    size, colour = profile.features
    moved = size.tally(rng.normal(12, 1, 1000))
    features = [
        compare(size, moved[0], moved[1], unseen=moved[2], family=family),
        compare(colour, [500, 500, 0], unseen=0, family=family),
    ]
    return drift_report(features, days=1, tests=6)


def test_the_page_opens_with_one_summary_row_per_feature() -> None:
    page = render_html(a_report())
    summary = page.index('<table class="summary">')
    assert summary < page.index('<div class="cards">')
    table = page[summary : page.index("</table>", summary)]
    assert table.count("<tr") == 3  # the header and two features
    assert '<tr class="drift"><td>size &lt;b&gt;</td>' in table  # drifted, and escaped
    assert "alert level" in table and "p-value" in table and "unseen" in table


def test_bars_are_labelled_by_their_bins_range_or_category_on_a_share_axis() -> None:
    page = render_html(a_report())
    labels = re.findall(
        r'font-size="9" text-anchor="middle" fill="#555"><title>([^<]*)</title>([^<]*)<', page
    )
    numeric = [short for full, short in labels if full.startswith("[")]
    assert numeric[0].startswith("&lt;") and all(s.startswith("≥") for s in numeric[1:])
    assert ("red", "red") in labels and ("__unseen__", "__unseen__") in labels
    assert page.count(">0.0 %</text>") == 2  # each histogram's axis starts at 0
    assert "bin (from its lower edge)" in page and ">category</text>" in page


def test_the_page_fetches_nothing() -> None:
    page = render_html(a_report())
    assert "<script" not in page and "<link" not in page
    assert set(re.findall(r'https?://[^"]+', page)) == {"http://www.w3.org/2000/svg"}


def test_the_label_outputs_bars_carry_the_class_names() -> None:
    rng = np.random.default_rng(1)
    labels = rng.choice([0, 1], 500)
    profile = build_profile(
        pd.DataFrame({"x": rng.normal(size=500)}),
        outputs={"label": labels},
        outputs_source="held-out",
    )
    assert profile.label is not None
    report = a_report().model_copy(
        update={
            "outputs": [compare(profile.label, [250, 250, 0], family=Family(tests=6))],
            "class_names": {"0": "malignant", "1": "benign"},
        }
    )
    page = render_html(report)
    assert "<title>0 (malignant)</title>malignant<" in page
    assert "<title>1 (benign)</title>benign<" in page
