"""A drift report as one self-contained HTML page: inline CSS and SVG, nothing fetched.

A summary table first (every feature and model output: verdicts, PSI, alert level, p-value, missing
and unseen rates, rows), then per feature, drifted ones first (the report's own order): the
reference and current histograms side by side (one pair of bars per bin, labelled by the bin's
value range or category, on a share axis), the numbers and the verdicts. Every value comes from
the DriftReport; the page is a view of it, nothing more.
"""

from __future__ import annotations

from html import escape

from drift.psi import DriftReport, FeatureReport

REFERENCE_COLOUR = "#8da0cb"
CURRENT_COLOUR = "#fc8d62"
CHART_WIDTH = 440
CHART_HEIGHT = 170
AXIS = 30  # room under the bars for the bins' labels
LEFT = 40  # room left of the bars for the share axis
CHARACTER_WIDTH = 5.5  # of a 9-px label, about: a bin's label gets as many as its bars' width

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#555}.meta b{color:#222}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:14px}
.card{border:1px solid #ddd;border-radius:8px;padding:12px 14px;background:#fff}
.card.drift{border-color:#d7301f;box-shadow:0 0 0 1px #d7301f inset}
.card h3{font-size:15px;margin:0 0 6px;display:flex;justify-content:space-between;gap:8px}
.badge{font-size:12px;padding:1px 8px;border-radius:10px;white-space:nowrap;color:#fff}
.badge.drift{background:#d7301f}.badge.stable{background:#1a9850}
.badge.insufficient{background:#888}
table.numbers{border-collapse:collapse;margin:6px 0;font-size:13px}
table.numbers td{padding:1px 10px 1px 0}table.numbers td:first-child{color:#555}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
details{font-size:12px;margin-top:4px}details table{border-collapse:collapse}
details td,details th{padding:1px 8px;border-bottom:1px solid #eee;text-align:right}
details td:first-child{text-align:left;font-family:monospace}
table.summary{border-collapse:collapse;font-size:13px;margin:8px 0 4px}
table.summary th,table.summary td{padding:2px 10px 2px 0;text-align:right;
border-bottom:1px solid #eee}
table.summary th:first-child,table.summary td:first-child{text-align:left}
table.summary tr.drift td{color:#b2182b}
"""


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "∞"
    return f"{value:.{digits}f}"


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _badge(verdict: str) -> str:
    css = "insufficient" if verdict == "insufficient data" else verdict
    return f'<span class="badge {css}">{escape(verdict)}</span>'


def _short(label: str, characters: int) -> str:
    """A bin's label short enough to stand under its bars: a numeric bin by its lower edge
    ("<10.3" for the first), a category by its name, cut to `characters`."""
    if label.startswith("[-inf, "):
        text = "<" + label[len("[-inf, ") : -1]
    elif label.startswith("["):
        text = "≥" + label[1:].split(",")[0]
    else:
        text = label
    return text if len(text) <= characters else text[: characters - 1] + "…"


def histogram_svg(feature: FeatureReport, names: dict[str, str] | None = None) -> str:
    """Reference and current share per bin as paired bars on a share axis, each pair labelled by
    its bin (a category by its name in `names`, if there); hover a bar for its bin and share."""
    names = names or {}
    bins = len(feature.bins)
    top = max([*feature.reference_shares, *feature.current_shares, 1e-9])
    plot = CHART_HEIGHT - AXIS
    group = (CHART_WIDTH - LEFT) / max(bins, 1)
    bar = group * 0.38
    characters = max(4, int(group / CHARACTER_WIDTH))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-label="reference and current histograms of {escape(feature.name)}">',
        f'<line x1="{LEFT}" y1="{plot}" x2="{CHART_WIDTH}" y2="{plot}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="4" x2="{LEFT}" y2="{plot}" stroke="#999"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):  # the share axis: 0, half and the tallest bar
        y = plot - (plot - 4) * fraction
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 3:.1f}" font-size="9" text-anchor="end" '
            f'fill="#555">{_percent(top * fraction)}</text>'
            f'<line x1="{LEFT - 2}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="#999"/>'
        )
    for index, bin_label in enumerate(feature.bins):
        label = f"{bin_label} ({names[bin_label]})" if bin_label in names else bin_label
        shown = names.get(bin_label, bin_label)
        x = LEFT + index * group + group * 0.1
        pairs = (
            ("reference", feature.reference_shares[index], REFERENCE_COLOUR, x),
            ("current", feature.current_shares[index], CURRENT_COLOUR, x + bar),
        )
        for side, share, colour, left in pairs:
            height = (plot - 4) * share / top
            parts.append(
                f'<rect x="{left:.1f}" y="{plot - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{escape(label)} {side}: '
                f"{_percent(share)}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar:.1f}" y="{plot + 12}" font-size="9" text-anchor="middle" '
            f'fill="#555"><title>{escape(label)}</title>{escape(_short(shown, characters))}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + CHART_WIDTH) / 2:.0f}" y="{CHART_HEIGHT - 3}" font-size="9" '
        'text-anchor="middle" fill="#777">'
        + ("bin (from its lower edge)" if feature.kind == "numeric" else "category")
        + "</text></svg>"
    )
    return "".join(parts)


def summary_table(report: DriftReport) -> str:
    """One row per feature and model output: the verdicts and the numbers behind them."""
    head = (
        "<tr><th>feature</th><th>verdict</th><th>PSI</th><th>alert level</th><th>p-value</th>"
        "<th>rows</th><th>missing ref → now</th><th>missing</th><th>unseen now</th>"
        "<th>unseen</th></tr>"
    )
    rows = []
    for feature in [*report.features, *report.outputs]:
        unseen = (
            "-" if feature.current_unseen_rate is None else _percent(feature.current_unseen_rate)
        )
        rows.append(
            f'<tr class="{"drift" if feature.drifted else ""}">'
            f"<td>{escape(feature.name)}</td><td>{_badge(feature.verdict)}</td>"
            f"<td>{_number(feature.psi)}</td><td>{_number(feature.alert_level)}</td>"
            f"<td>{_p_value(feature.p_value)}</td><td>{feature.current_rows:,}</td>"
            f"<td>{_percent(feature.reference_missing_rate)} → "
            f"{_percent(feature.current_missing_rate)}</td>"
            f"<td>{_badge(feature.missing_verdict)}</td><td>{unseen}</td>"
            f"<td>{_badge(feature.unseen_verdict) if feature.unseen_verdict else '-'}</td></tr>"
        )
    return f'<table class="summary">{head}{"".join(rows)}</table>'


def _p_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _bin_table(feature: FeatureReport) -> str:
    rows = "".join(
        f"<tr><td>{escape(label)}</td><td>{_percent(ref)}</td><td>{_percent(cur)}</td>"
        f"<td>{count}</td></tr>"
        for label, ref, cur, count in zip(
            feature.bins,
            feature.reference_shares,
            feature.current_shares,
            feature.current_counts,
            strict=True,
        )
    )
    return (
        "<details><summary>bins</summary><table><tr><th>bin</th><th>reference</th>"
        f"<th>current</th><th>current rows</th></tr>{rows}</table></details>"
    )


def _unseen_line(feature: FeatureReport) -> str:
    if feature.unseen_verdict is None:
        return ""
    what = "beyond the training range" if feature.kind == "numeric" else "unseen categories"
    return (
        f"<tr><td>{what}</td><td>{_percent(feature.reference_unseen_rate or 0.0)} → "
        f"{_percent(feature.current_unseen_rate or 0.0)}</td>"
        f"<td>{_badge(feature.unseen_verdict)}</td></tr>"
    )


def feature_card(feature: FeatureReport, names: dict[str, str] | None = None) -> str:
    """One feature: histograms, numbers, verdicts (`names`: the label output's class names)."""
    psi_line = (
        f"<td>{_number(feature.psi)}</td><td>alert level {_number(feature.alert_level)} "
        f"(threshold {_number(feature.threshold, 2)}), p-value {_p_value(feature.p_value)}, "
        f"noise level {_number(feature.noise_level)}</td>"
    )
    missing_line = (
        f"<td>{_percent(feature.reference_missing_rate)} → "
        f"{_percent(feature.current_missing_rate)}</td><td>{_badge(feature.missing_verdict)}</td>"
    )
    return (
        f'<div class="card{" drift" if feature.drifted else ""}">'
        f"<h3><span>{escape(feature.name)} <small>({feature.kind})</small></span>"
        f"{_badge(feature.verdict)}</h3>"
        f"{histogram_svg(feature, names)}"
        '<table class="numbers">'
        f"<tr><td>PSI</td>{psi_line}</tr>"
        f"<tr><td>rows</td><td>{feature.current_rows:,}</td>"
        f"<td>reference {feature.reference_rows:,}</td></tr>"
        f"<tr><td>missing</td>{missing_line}</tr>"
        f"{_unseen_line(feature)}"
        "</table>"
        f"{_bin_table(feature)}</div>"
    )


def render_html(report: DriftReport) -> str:
    """The whole report page."""
    version = "all versions" if report.version is None else f"version {report.version}"
    drifted = report.drifted
    verdicts = [f.verdict for f in report.features]
    moved = [f.name for f in report.outputs if f.drifted]
    summary = (
        f"<b>{len(drifted)}</b> of {len(report.features)} features drifted"
        + (f": {escape(', '.join(drifted))}" if drifted else "")
        + f"; {verdicts.count('insufficient data')} with insufficient data"
        + (
            f"; <b>{len(moved)}</b> of {len(report.outputs)} model outputs drifted"
            + (f": {escape(', '.join(moved))}" if moved else "")
            if report.outputs
            else ""
        )
        + "."
    )
    not_profiled = "".join(
        f"<li><b>{escape(name)}</b>: {escape(reason)}</li>"
        for name, reason in report.skipped.items()
    )
    if not_profiled:
        summary += f"<p>Not profiled:</p><ul>{not_profiled}</ul>"
    window = (
        f"{report.window_start:%Y-%m-%d %H:%M} → {report.window_end:%Y-%m-%d %H:%M} UTC "
        f"({report.days} days)"
    )
    skipped = report.corrupt_lines + report.mismatched_lines
    meta = (
        f'<p class="meta">Window <b>{window}</b> · <b>{report.rows:,}</b> logged rows from '
        f"{len(report.files)} files · {skipped:,} lines skipped "
        f"({report.corrupt_lines:,} corrupt, {report.mismatched_lines:,} of another width) · "
        f"{report.duplicate_lines:,} repeated job rows counted once · "
        f"PSI threshold {report.threshold:g}, missing-rate threshold "
        f"{report.missing_threshold:g}, unseen-rate threshold {report.unseen_threshold:g}, "
        f"{report.tests} tests at a family-wise {report.family_alpha:g} · "
        f"created {report.created_at:%Y-%m-%d %H:%M:%S} UTC</p>"
    )
    legend = (
        '<p class="legend">Share of rows per bin:<span style="background:'
        f'{REFERENCE_COLOUR}"></span>reference (training)<span style="background:'
        f'{CURRENT_COLOUR}"></span>current (logged)</p>'
    )
    outputs = ""
    if report.outputs:
        cards = "".join(
            feature_card(f, report.class_names if f.kind == "categorical" else None)
            for f in report.outputs
        )
        outputs = f'<h2>Model outputs</h2><div class="cards">{cards}</div>'
    features = "".join(feature_card(f) for f in report.features)
    features_section = (
        f'<h2>Features</h2><div class="cards">{features}</div>' if report.features else ""
    )
    title = f"Drift: {escape(report.model)} {version}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head><body>"
        f"<h1>{title}</h1>{meta}<p>{summary}</p>{summary_table(report)}{legend}"
        f"{features_section}{outputs}"
        "</body></html>\n"
    )
