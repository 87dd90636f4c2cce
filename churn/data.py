"""Telco Customer Churn data: a synthetic twin of IBM's file, the loaders, and the splits.

`generate_customers` makes customers with exactly the layout of `churn.schema.TELCO_SCHEMA`
(IBM's `WA_Fn-UseC_-Telco-Customer-Churn.csv`) and a structure like the real file's (contract
mix, services, charges, a ~26.5% churn rate driven by contract, fiber, payment method, tenure
and support), so every pipeline runs offline and at any size; the real file, when downloaded,
drops in unchanged. `shift` moves the customer mix for monitoring demos. `split` cuts a labelled
table into the stratified parts training uses, and re-evaluation rebuilds from the same seed.

Generation is deterministic per row: row i's random numbers come from a generator seeded with
(seed, i // _BLOCK), so a frame does not depend on how the caller chunks it.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm

from churn.config import ChurnConfig
from churn.schema import ADDONS, KEY, LABEL, TELCO_SCHEMA
from common.errors import TrainingError, UserError
from common.etl import TABLE_SUFFIXES, atomic_write, read_table, stratified_split
from common.schema import Column, require_columns, validate

TELCO_URL = (
    "https://raw.githubusercontent.com/IBM/telco-customer-churn-on-icp4d/master/data/"
    "Telco-Customer-Churn.csv"
)
# Customer IDs look like IBM's "7590-VHVEG": 4 digits and 5 letters, 10^4 * 26^5 values in all.
_ID_DIGITS, _ID_LETTERS = 10_000, 26**5
_ID_SPACE = _ID_DIGITS * _ID_LETTERS
_BLOCK = 4096  # rows per seeded random block; small so unaligned chunks waste little
_N_UNIFORM, _N_NORMAL = 19, 4

# Per-contract mixes (rows: month-to-month, one year, two year), close to the real file's.
_CONTRACT_P = np.array([0.55, 0.21, 0.24])
_INTERNET_P = np.array([[0.315, 0.55, 0.135], [0.387, 0.366, 0.247], [0.371, 0.253, 0.376]])
_PAYMENT_P = np.array([[0.5, 0.22, 0.14, 0.14], [0.18, 0.23, 0.3, 0.29], [0.08, 0.23, 0.35, 0.34]])
# Kumaraswamy (a, b) shapes of tenure / 72: month-to-month piles up in the first months,
# two-year contracts near the 72-month cap, as in the real file.
_TENURE_AB = np.array([[0.8, 2.3], [1.6, 1.2], [2.6, 0.75]])
# Add-on propensity (logit) for DSL and fiber users: fiber users stream, DSL users buy support.
_ADDON_LOGIT = np.array(
    [[0.1, -0.9], [0.0, -0.1], [-0.3, 0.0], [0.1, -0.9], [-0.7, 0.5], [-0.7, 0.5]]
)
_CHURN_INTERCEPT = -0.34  # sets the overall churn rate to ~26.5%, as in IBM's file
_CONTRACT_RISK = np.array([0.0, 0.8, 1.7])  # log-odds taken off per contract length
_CHURN_NOISE = 0.3  # unobserved dissatisfaction: keeps a good model's ROC-AUC near 0.85


def _random(seed: int, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniforms (19, n) and normals (4, n) for rows start..start+n, fixed per (seed, row)."""
    first, last = start // _BLOCK, (start + n - 1) // _BLOCK
    uniforms, normals = [], []
    for block in range(first, last + 1):
        rng = np.random.default_rng([seed, block])
        uniforms.append(rng.random((_N_UNIFORM, _BLOCK), dtype=np.float32))
        normals.append(rng.standard_normal((_N_NORMAL, _BLOCK), dtype=np.float32))
    lo = start - first * _BLOCK
    # Uniforms are only compared with probabilities, so float32 (2^-24 steps) is plenty and
    # halves memory; normals feed prices, which need float64 arithmetic to round cleanly.
    return (
        np.concatenate(uniforms, axis=1)[:, lo : lo + n],
        np.concatenate(normals, axis=1)[:, lo : lo + n].astype(np.float64),
    )


def _pick(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of a category index per row; `probs` is (k,) or per row (n, k)."""
    edges = np.cumsum(np.broadcast_to(probs, (u.size, probs.shape[-1])), axis=1)[:, :-1]
    return (u[:, None] >= edges).sum(axis=1)


def _tilt(probs: np.ndarray, column: int, gain: float) -> np.ndarray:
    """Move a share `gain` of the other categories' mass onto `column`, keeping their ratios."""
    out = probs * (1.0 - gain)
    out[..., column] += gain
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _hash(values: np.ndarray, salt: int, modulus: int) -> np.ndarray:
    """splitmix64's finalizer (uint64 arithmetic wraps by design), reduced to [0, modulus)."""
    v = values.astype(np.uint64) + np.uint64(salt)
    v = (v ^ (v >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    v = (v ^ (v >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((v ^ (v >> np.uint64(31))) % np.uint64(modulus)).astype(np.int64)


def _customer_ids(index: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """IDs like "7590-VHVEG" for row indices in [0, 10^4 * 26^5), via a two-round Feistel network.

    Each round adds a hash of one half of (index % 10^4, index // 10^4) to the other, which
    subtracting undoes: a bijection (no two rows share an ID) that looks random row to row.
    """
    index = np.asarray(index, dtype=np.int64)
    low, high = index % _ID_DIGITS, index // _ID_DIGITS
    letters = (high + _hash(low, 0x5EED, _ID_LETTERS)) % _ID_LETTERS
    digits = (low + _hash(letters, 0xC0FFEE, _ID_DIGITS)) % _ID_DIGITS
    digit_chars = digits[:, None] // 10 ** np.arange(3, -1, -1) % 10 + ord("0")
    letter_chars = letters[:, None] // 26 ** np.arange(4, -1, -1) % 26 + ord("A")
    dash = np.full((index.size, 1), ord("-"))
    chars = np.hstack([digit_chars, dash, letter_chars]).astype(np.uint8)
    # Hand the 10-byte rows to Arrow as one buffer: no Python string object per row.
    offsets = np.arange(0, 10 * index.size + 1, 10, dtype=np.int64)
    ids = pa.LargeStringArray.from_buffers(index.size, pa.py_buffer(offsets), pa.py_buffer(chars))
    return pd.array(ids, dtype="str")


def _labels(column: Column, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The category strings for integer (or boolean) codes, as a pandas "str" array."""
    # Taking from a tiny index is ~100x faster than building a million Python strings.
    return pd.Index(column.categories, dtype="str").take(codes.astype(np.int64)).array


def generate_customers(
    n_rows: int, seed: int = 42, *, shift: float = 0.0, start_index: int = 0
) -> pd.DataFrame:
    """Rows start_index.. of the seed's synthetic customers, exactly as the CSV file holds them.

    Categories are strings, SeniorCitizen is 0/1 and TotalCharges is NaN for tenure 0. `shift`
    (0 = training distribution, 1 = strong drift) adds month-to-month and fiber customers and
    raises prices; the churn model itself stays the same (pure covariate shift).
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if start_index < 0 or start_index + n_rows > _ID_SPACE:
        raise ValueError(f"rows {start_index}..{start_index + n_rows} exceed 0..{_ID_SPACE}")
    if not 0.0 <= shift <= 1.0:
        raise ValueError(f"shift must be between 0 and 1, got {shift}")
    u, z = _random(seed, start_index, n_rows)

    senior = u[1] < 0.162
    partner = u[2] < 0.483
    dependents = u[3] < np.where(partner, 0.52, 0.11) * np.where(senior, 0.35, 1.0)
    contract = _pick(u[4], _tilt(_CONTRACT_P, 0, 0.5 * shift))
    a, b = _TENURE_AB[contract].T
    scaled = (1.0 - (1.0 - u[5]) ** (1.0 / b)) ** (1.0 / a)
    tenure = np.clip(np.ceil(scaled * 72), 1, 72).astype(np.int64)
    tenure[u[6] < 0.0015] = 0  # just signed up: no bill yet, and too new to have churned
    internet = _pick(u[7], _tilt(_INTERNET_P[contract], 1, 0.4 * shift))
    dsl, fiber, online = internet == 0, internet == 1, internet != 2
    # Everyone without internet has a phone line; only DSL customers go without one.
    phone = ~dsl | (u[8] >= 0.28)
    loyal = tenure / 72 - 0.45  # long-standing customers buy more lines and add-ons
    multi = phone & (u[9] < _sigmoid(-0.25 + 2.0 * loyal + 0.6 * fiber))
    engaged = z[0]  # one latent taste for extras, so add-ons come in bundles as in real data
    addon_logit = _ADDON_LOGIT[:, fiber.astype(int)] + 1.5 * loyal + 0.8 * engaged
    addons = online & (u[10:16] < _sigmoid(addon_logit))
    security, backup, _, support, tv, movies = addons
    paperless = u[16] < np.select([fiber, dsl], [0.80, 0.53], 0.31) + 0.08 * senior
    payment = _pick(u[17], _PAYMENT_P[contract])

    base = 20.0 * phone + 5.0 * multi + np.select([dsl, fiber], [25.0, 50.0], 0.0)
    base += 5.0 * addons[:4].sum(axis=0) + 10.0 * addons[4:].sum(axis=0)
    monthly = np.clip(base + (0.5 + 0.015 * base) * z[1], 18.25, 118.75) * (1.0 + 0.12 * shift)
    monthly = np.round(monthly * 20) / 20  # real prices step by 5 cents
    drift = 1.0 + np.clip(0.025 * z[2], -0.05, 0.05)
    total = np.where(tenure > 0, np.round(tenure * monthly * drift, 2), np.nan)

    # Churn log-odds: contract and tenure dominate, then fiber, e-check and missing support, as
    # in IBM's data; gender plays no part. The noise term stands for what no column records.
    logit = _CHURN_INTERCEPT - _CONTRACT_RISK[contract] - 0.65 * np.log1p(tenure)
    logit += 1.0 * fiber - 0.6 * ~online + 0.55 * (payment == 0) + 0.3 * paperless
    logit += 0.45 * (online & ~support) + 0.45 * (online & ~security) + 0.1 * (online & ~backup)
    logit += 0.1 * (tv.astype(int) + movies) + 0.45 * senior - 0.05 * partner - 0.2 * dependents
    logit += _CHURN_NOISE * z[3]
    churn = (u[18] < _sigmoid(logit)) & (tenure > 0)

    # Codes index the schema's own category tuples, so generated values cannot drift from it.
    codes = {
        "gender": u[0] < 0.495,
        "Partner": partner,
        "Dependents": dependents,
        "PhoneService": phone,
        "MultipleLines": np.where(phone, multi, 2),
        "InternetService": internet,
        **dict(zip(ADDONS, np.where(online, addons, 2), strict=True)),
        "Contract": contract,
        "PaperlessBilling": paperless,
        "PaymentMethod": payment,
        LABEL: churn,
    }
    frame = {name: _labels(TELCO_SCHEMA[name], flags) for name, flags in codes.items()}
    frame[KEY] = _customer_ids(np.arange(start_index, start_index + n_rows))
    frame |= {"SeniorCitizen": senior.astype(np.int64), "tenure": tenure}
    frame |= {"MonthlyCharges": monthly, "TotalCharges": total}
    return pd.DataFrame(frame, columns=TELCO_SCHEMA.names)


def _to_arrow(chunk: pd.DataFrame, csv: bool) -> pa.Table:
    """A chunk as Arrow; for CSV, TotalCharges becomes text so that a missing one is IBM's " "."""
    table = pa.Table.from_pandas(chunk, preserve_index=False)
    if not csv:
        return table
    i = table.schema.get_field_index("TotalCharges")
    text = pc.fill_null(pc.cast(table.column(i), pa.string()), " ")
    return table.set_column(i, "TotalCharges", text)


def write_customers(
    path: str | Path,
    n_rows: int,
    seed: int = 42,
    *,
    shift: float = 0.0,
    chunk_rows: int = 500_000,
    progress: bool = True,
) -> Path:
    """Write `n_rows` generated customers to .csv (IBM's layout) or .parquet, chunk by chunk.

    The file appears atomically: chunks go to a hidden temp file renamed at the end, so an
    interrupted run never leaves a truncated table that a later step would trust.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UserError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")
    chunks = (
        generate_customers(min(chunk_rows, n_rows - start), seed, shift=shift, start_index=start)
        for start in range(0, n_rows, chunk_rows)
    )
    csv = suffix == ".csv"
    # Every chunk has the same dtypes, so a one-row frame gives the schema of them all.
    schema = _to_arrow(generate_customers(1, seed), csv).schema
    bar = tqdm(total=n_rows, unit="rows", unit_scale=True, desc=path.name, disable=not progress)
    with bar, atomic_write(path) as tmp, open(tmp, "wb") as fh:
        if csv:
            # Arrow writes ~10x faster than DataFrame.to_csv, and prints cent-rounded floats in
            # their shortest form (42.3, 1889.5) as IBM's file does. No value holds a comma, so
            # nothing is quoted (Arrow would refuse rather than break a row).
            fh.write((",".join(schema.names) + "\n").encode())
            options = pacsv.WriteOptions(include_header=False, quoting_style="none")
            writer = pacsv.CSVWriter(fh, schema, write_options=options)
        else:
            writer = pq.ParquetWriter(fh, schema)  # one row group per chunk
        with writer:
            for chunk in chunks:
                writer.write_table(_to_arrow(chunk, csv))
                bar.update(len(chunk))
    return path


def load_customers(path: str | Path, *, require_label: bool = True) -> pd.DataFrame:
    """Read and validate a customer table: a generated one, or IBM's file as published.

    Returns it typed: categoricals, NaN for blank TotalCharges, duplicate IDs dropped (warned).
    """
    source = str(path)
    # IDs stay text even in a file whose IDs all look numeric (leading zeros would be lost).
    df = read_table(path, dtype={KEY: "str"})
    if require_label:
        require_columns(df, [LABEL], source=source)
    return validate(df, TELCO_SCHEMA, source=source)


class DownloadError(UserError):
    """The file could not be fetched (offline, blocked, timed out): the one case to fall back."""


def download_telco(dest: str | Path, url: str = TELCO_URL, timeout: float = 15.0) -> Path:
    """Download IBM's Telco churn CSV to `dest`, keeping it only if it validates."""
    dest = Path(dest)
    if dest.suffix.lower() != ".csv":
        raise UserError(f"{dest}: the Telco download is a CSV file; give a .csv destination")
    try:
        with atomic_write(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as fh:
                shutil.copyfileobj(response, fh)
            load_customers(tmp)  # refuses e.g. an HTML error page served with status 200
    except UserError as exc:
        raise UserError(f"{url} did not return the Telco churn table, not saved:\n{exc}") from exc
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts; ValueError: bad URL
        raise DownloadError(
            f"downloading {url} failed ({exc}); `python -m churn data` without --download "
            "generates the built-in data instead"
        ) from exc
    return dest


def labels(df: pd.DataFrame) -> np.ndarray:
    """The label as 0/1 integers (1 = churned)."""
    return (df[LABEL] == "Yes").to_numpy(dtype=np.int32)


def require_both_classes(df: pd.DataFrame, what: str = "the data") -> None:
    """Refuse labels with a single class: no model can be trained or scored on them."""
    counts = df[LABEL].value_counts()
    present = counts[counts > 0]
    if len(present) < 2:
        only = repr(present.index[0]) if len(present) else "none"
        raise TrainingError(
            f"column '{LABEL}' of {what} has only one class ({only} in all {len(df)} rows); "
            "churn models are trained and scored on both churners and non-churners"
        )


def split(df: pd.DataFrame, config: ChurnConfig) -> dict[str, pd.DataFrame]:
    """Stratified train/val/calibration/test splits, seeded; each must hold both classes."""
    require_both_classes(df)
    parts = stratified_split(df, LABEL, config.fractions, config.seed)
    for name, part in parts.items():
        if part[LABEL].nunique() < 2:
            rarer = int(df[LABEL].value_counts().min())
            raise TrainingError(
                f"the {name} split ({len(part)} rows) holds one class only: {len(df)} rows "
                f"with {rarer} of the rarer class are too few to train on"
            )
    return parts
