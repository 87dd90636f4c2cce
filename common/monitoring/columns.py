"""The columns a drift window watches, read from what a service predicted on: a frame, a
mapping of columns, or records (objects with an attribute per column).

Its own module, light to import, because the Predictor contract uses it (`monitoring_columns`)
and the rest of monitoring brings scipy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

#: Reads the named columns from several observed batches at once, in order.
ColumnReader = Callable[[Sequence[Any], Sequence[str]], Mapping[str, list[Any]]]


def columns_of(inputs: Any, names: Sequence[str]) -> dict[str, list[Any]]:
    """The named columns of a frame, a mapping of columns, or a sequence of records."""
    if isinstance(inputs, pd.DataFrame):
        return {n: inputs[n].tolist() for n in names if n in inputs}
    if isinstance(inputs, Mapping):
        return {n: list(inputs[n]) for n in names if n in inputs}
    return {n: [getattr(r, n, None) for r in inputs] for n in names}


def concat_columns(batches: Sequence[Any], names: Sequence[str]) -> dict[str, list[Any]]:
    """The named columns of several batches (frames, mappings or records), one after another."""
    columns: dict[str, list[Any]] = {}
    for batch in batches:
        for name, values in columns_of(batch, names).items():
            columns.setdefault(name, []).extend(values)
    return columns
