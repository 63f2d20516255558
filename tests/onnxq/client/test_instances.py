"""Rows as the client sends them: arrays and lists in feature order, DataFrames by name, NaN as
null (JSON has no NaN; the server reads null as a missing value)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from onnxq.client.client import instances


def test_an_array_and_a_list_keep_their_order_with_nan_as_null() -> None:
    rows = np.array([[1.5, np.nan], [3.0, 4.0]], dtype=np.float32)
    assert instances(rows) == [[1.5, None], [3.0, 4.0]]
    assert instances([[1.5, math.nan], (3, 4)]) == [[1.5, None], [3, 4]]


def test_a_dataframe_goes_by_column_name() -> None:
    frame = pd.DataFrame({"b": [2.0, np.nan], "a": [1.0, 3.0]})
    assert instances(frame) == [{"b": 2.0, "a": 1.0}, {"b": None, "a": 3.0}]


@pytest.mark.parametrize("rows", [np.zeros(3), "1,2,3", 7])
def test_anything_but_rows_is_refused(rows: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        instances(rows)
