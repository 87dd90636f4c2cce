"""Unit tests of common.etl: reading and writing tables, fingerprints and splits."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import DataValidationError, UserError
from common.etl import (
    atomic_write,
    fingerprint,
    load_table,
    read_table,
    stratified_split,
    time_split,
    write_table,
)
from common.schema import TableSchema, validate


@pytest.fixture
def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["c1", "c2", "c3", "c4"],
            "age": [30, 45, 61, 22],
            "income": [1000.5, np.nan, 0.0, 12.25],
            "plan": ["basic", "pro", "basic", "pro"],
        }
    )


@pytest.fixture
def labelled() -> pd.DataFrame:
    """1,000 rows, 70/30 imbalanced label, a shuffled timestamp column."""
    rng = np.random.default_rng(0)
    n = 1000
    return pd.DataFrame(
        {
            "row": np.arange(n),
            "label": np.where(np.arange(n) < 700, "stay", "churn"),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(n), unit="h"),
        }
    )


# -- read / write --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_then_read_round_trip(tmp_path: Path, customers: pd.DataFrame, suffix: str) -> None:
    path = tmp_path / "sub" / f"customers{suffix}"

    returned = write_table(customers, path)
    back = read_table(path)

    assert returned == path
    pd.testing.assert_frame_equal(back, customers, check_dtype=False)
    assert back["age"].dtype == "int64"
    assert back["income"].dtype == "float64"
    # Atomic write: only the final file, no temporary left behind.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_write_table_replaces_an_existing_file(tmp_path: Path, customers: pd.DataFrame) -> None:
    path = tmp_path / "t.csv"
    write_table(customers, path)

    write_table(customers.head(1), path)

    assert len(read_table(path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_read_table_passes_dtype_to_csv(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("id,n\n007,1\n010,2\n")

    assert read_table(path, dtype={"id": "string"})["id"].tolist() == ["007", "010"]


def test_read_table_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"

    with pytest.raises(UserError, match="no such file") as excinfo:
        read_table(path)

    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_read_table_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)

    with pytest.raises(DataValidationError, match="the file is empty") as excinfo:
        read_table(path)

    assert excinfo.value.source == str(path)
    assert str(path) in str(excinfo.value)


def test_read_table_empty_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    path.touch()

    with pytest.raises(DataValidationError, match="the file is empty"):
        read_table(path)


def test_read_table_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("a,b\n1,2\n")

    with pytest.raises(UserError, match=r"unsupported file type '\.xlsx'") as excinfo:
        read_table(path)

    assert str(path) in str(excinfo.value)


def test_read_table_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_text("this is not parquet")

    with pytest.raises(UserError, match="cannot be read as parquet") as excinfo:
        read_table(path)

    assert str(path) in str(excinfo.value)


def test_load_table_validates_with_the_file_as_source(
    tmp_path: Path, customer_schema: TableSchema
) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,age,income,plan\nc1,30,1.5,basic\nc2,200,2,pro\n")

    with pytest.raises(DataValidationError) as excinfo:
        load_table(path, customer_schema)

    assert excinfo.value.source == str(path)
    assert "column 'age': is above the maximum 120 (1 row: 2" in str(excinfo.value)


# -- fingerprints --------------------------------------------------------------------------------


def test_fingerprint_is_format_independent(
    tmp_path: Path, customers: pd.DataFrame, customer_schema: TableSchema
) -> None:
    csv = write_table(customers, tmp_path / "c.csv")
    parquet = write_table(customers, tmp_path / "c.parquet")

    from_csv = validate(read_table(csv), customer_schema)
    from_parquet = validate(read_table(parquet), customer_schema)

    assert fingerprint(from_csv) == fingerprint(from_parquet)
    assert fingerprint(from_csv) == fingerprint(validate(customers, customer_schema))
    assert len(fingerprint(from_csv)) == 64


def test_fingerprint_is_stable_for_equal_content(customers: pd.DataFrame) -> None:
    assert fingerprint(customers) == fingerprint(customers.copy())


def test_fingerprint_changes_with_content(customers: pd.DataFrame) -> None:
    changed = customers.copy()
    changed.loc[2, "age"] = 62

    assert fingerprint(changed) != fingerprint(customers)
    assert fingerprint(customers.iloc[::-1]) != fingerprint(customers)  # row order
    assert fingerprint(customers.head(3)) != fingerprint(customers)


def test_fingerprint_changes_with_column_order_and_names(customers: pd.DataFrame) -> None:
    reordered = customers[["age", "id", "income", "plan"]]

    assert fingerprint(reordered) != fingerprint(customers)
    assert fingerprint(customers.rename(columns={"plan": "tier"})) != fingerprint(customers)


def test_atomic_write_keeps_the_old_file_when_the_block_fails(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as tmp:
        assert tmp.suffix == ".csv" and tmp.parent == tmp_path
        tmp.write_text("half of the new")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    with atomic_write(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


# -- splits --------------------------------------------------------------------------------------

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def test_stratified_split_respects_fractions(labelled: pd.DataFrame) -> None:
    parts = stratified_split(labelled, "label", FRACTIONS, seed=1)

    assert list(parts) == ["train", "val", "test"]
    for name, fraction in FRACTIONS.items():
        assert abs(len(parts[name]) - fraction * len(labelled)) <= 1, name


def test_stratified_split_keeps_class_shares(labelled: pd.DataFrame) -> None:
    parts = stratified_split(labelled, "label", FRACTIONS, seed=1)

    overall = (labelled["label"] == "churn").mean()
    for name, part in parts.items():
        assert abs((part["label"] == "churn").mean() - overall) <= 0.01, name


def test_stratified_split_parts_are_disjoint_and_cover_every_row(labelled: pd.DataFrame) -> None:
    parts = stratified_split(labelled, "label", FRACTIONS, seed=1)

    rows = [set(part["row"]) for part in parts.values()]
    assert sum(len(r) for r in rows) == len(labelled)
    assert set().union(*rows) == set(labelled["row"])
    for part in parts.values():
        assert list(part.index) == list(range(len(part)))
        assert part["row"].is_monotonic_increasing  # original order kept within a part


def test_stratified_split_is_deterministic_for_a_seed(labelled: pd.DataFrame) -> None:
    first = stratified_split(labelled, "label", FRACTIONS, seed=3)
    again = stratified_split(labelled, "label", FRACTIONS, seed=3)
    other = stratified_split(labelled, "label", FRACTIONS, seed=4)

    for name in FRACTIONS:
        pd.testing.assert_frame_equal(first[name], again[name])
    assert set(first["test"]["row"]) != set(other["test"]["row"])


@pytest.mark.parametrize(
    "fractions",
    [{}, {"a": 0.5, "b": 0.6}, {"a": 0.5, "b": 0.4}, {"a": 1.2, "b": -0.2}, {"a": 1.0, "b": 0.0}],
)
def test_split_refuses_bad_fractions(labelled: pd.DataFrame, fractions: dict) -> None:
    with pytest.raises(ValueError, match="split fractions"):
        stratified_split(labelled, "label", fractions, seed=0)
    with pytest.raises(ValueError, match="split fractions"):
        time_split(labelled, "when", fractions)


def test_time_split_puts_the_earliest_rows_first(labelled: pd.DataFrame) -> None:
    parts = time_split(labelled, "when", FRACTIONS)

    assert [len(p) for p in parts.values()] == [600, 200, 200]
    assert parts["train"]["when"].is_monotonic_increasing
    for earlier, later in pairwise(parts):
        assert parts[earlier]["when"].max() <= parts[later]["when"].min(), (earlier, later)
    assert parts["train"]["when"].min() == labelled["when"].min()
    assert parts["test"]["when"].max() == labelled["when"].max()
    assert sum(len(p) for p in parts.values()) == len(labelled)


def test_time_split_keeps_ties_in_file_order() -> None:
    df = pd.DataFrame({"t": [2, 1, 1, 1, 2, 3], "row": range(6)})

    parts = time_split(df, "t", {"a": 0.5, "b": 0.5})

    assert parts["a"]["row"].tolist() == [1, 2, 3]
    assert parts["b"]["row"].tolist() == [0, 4, 5]


def test_stratified_split_respects_fractions_with_many_small_classes() -> None:
    df = pd.DataFrame({"label": ["a"] * 3 + ["b"] * 3 + ["c"] * 3})

    parts = stratified_split(df, "label", {"first": 0.5, "second": 0.5}, seed=0)

    assert sorted(len(p) for p in parts.values()) == [4, 5]
