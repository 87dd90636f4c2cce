"""Reading tables, splitting them and fingerprinting them: the edges of every pipeline.

`read_table` is the only place a file becomes a DataFrame; it turns the ways a file can be
unusable (absent, empty, unreadable) into a `UserError` naming the file. Splits are pure
functions of a frame and a seed, so the same data and seed give the same rows in every split.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES

from common.errors import DataValidationError, UserError
from common.schema import Problem, TableSchema, validate

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(
    path: str | Path,
    *,
    dtype: Mapping[str, str] | None = None,
    na_values: Mapping[str, list[str]] | None = None,
    keep_na_for: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Read a CSV or Parquet file; a missing, empty or unparseable file raises UserError.

    By default a CSV cell reading "NA", "null", "None", ... is missing, in every column. With
    `na_values`, only the columns in `keep_na_for` keep that rule and those in `na_values` get
    their own list (e.g. a name column where "NA" is a name and only "" is missing)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UserError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")
    if path.stat().st_size == 0:
        raise DataValidationError(str(path), [Problem("*", "the file is empty")])
    try:
        if suffix == ".csv":
            if na_values is None:
                return pd.read_csv(path, dtype=dtype, skipinitialspace=False)
            default = sorted(STR_NA_VALUES)
            missing = {**dict.fromkeys(keep_na_for, default), **na_values}
            return pd.read_csv(path, dtype=dtype, skipinitialspace=False,
                               keep_default_na=False, na_values=missing)  # fmt: skip
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(str(path), [Problem("*", "the file is empty")]) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from exc


def load_table(path: str | Path, schema: TableSchema, **kwargs: object) -> pd.DataFrame:
    """Read a file and validate it against `schema` (see `common.schema.validate`)."""
    return validate(read_table(path), schema, source=str(path), **kwargs)  # type: ignore[arg-type]


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Readers see the old file or the complete new one, never half of one; on failure the
    temporary file is removed. The name is unique, so concurrent writers never collide, and it
    keeps the suffix, so code that goes by suffix (read_table) can read it before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write CSV or Parquet by suffix, atomically."""
    path = Path(path)
    with atomic_write(path) as tmp:
        if path.suffix.lower() == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return path


def fingerprint(df: pd.DataFrame) -> str:
    """A sha256 of the table's content (column names, values, order), independent of file format."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, df.columns)).encode())
    row_hashes = pd.util.hash_pandas_object(df, index=False).to_numpy()
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if not fractions or any(f <= 0 for f in fractions.values()):
        raise ValueError(f"split fractions must be positive, got {dict(fractions)}")
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {sum(fractions.values()):.4f}")


def _cut(n: int, fractions: Mapping[str, float]) -> dict[str, slice]:
    """Consecutive slices of range(n) with the given fractions; rounding leftovers go last."""
    bounds = np.round(np.cumsum([0.0, *fractions.values()]) * n).astype(int)
    return {name: slice(bounds[i], bounds[i + 1]) for i, name in enumerate(fractions)}


def stratified_split(
    df: pd.DataFrame, label: str, fractions: Mapping[str, float], seed: int
) -> dict[str, pd.DataFrame]:
    """Split rows at random into named parts, keeping each class's share equal in every part."""
    _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    codes = pd.factorize(df[label], sort=True)[0]
    # Each row gets its relative position within its shuffled class; cutting all rows once by
    # that position keeps every class's share in every part without per-class rounding errors
    # adding up (which, with many small classes, would skew the part sizes).
    position = np.empty(len(df))
    for code in np.unique(codes):
        members = rng.permutation(np.flatnonzero(codes == code))
        position[members] = (np.arange(members.size) + 0.5) / members.size
    ranked = np.argsort(position, kind="stable")
    return {
        name: df.iloc[np.sort(ranked[part])].reset_index(drop=True)
        for name, part in _cut(len(df), fractions).items()
    }


def time_split(
    df: pd.DataFrame, time_column: str, fractions: Mapping[str, float]
) -> dict[str, pd.DataFrame]:
    """Split by time: the first part holds the earliest rows, the last part the latest."""
    _check_fractions(fractions)
    ordered = df.sort_values(time_column, kind="stable").reset_index(drop=True)
    return {
        name: ordered.iloc[part].reset_index(drop=True)
        for name, part in _cut(len(ordered), fractions).items()
    }
