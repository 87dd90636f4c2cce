"""Data contract of the churn project: the synthetic generator and the Telco loaders.

The generator must produce IBM's exact layout with a realistic structure, and the loader must
accept IBM's file as published while refusing broken files with messages that name the problem.
Nothing here touches the network: downloads are exercised through file:// URLs.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from churn.data import (
    _customer_ids,
    download_telco,
    generate_customers,
    load_customers,
    write_customers,
)
from churn.schema import KEY, LABEL, TELCO_SCHEMA
from common.errors import DataValidationError, UserError
from common.schema import DataQualityWarning, validate

# The header of IBM's WA_Fn-UseC_-Telco-Customer-Churn.csv, in the file's order.
REAL_COLUMNS = [
    "customerID", "gender", "SeniorCitizen", "Partner", "Dependents", "tenure", "PhoneService",
    "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection",
    "TechSupport", "StreamingTV", "StreamingMovies", "Contract", "PaperlessBilling",
    "PaymentMethod", "MonthlyCharges", "TotalCharges", "Churn",
]  # fmt: skip

# Rows copied from IBM's file, including a tenure-0 customer whose TotalCharges is " ".
REAL_CSV = """\
customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn
7590-VHVEG,Female,0,Yes,No,1,No,No phone service,DSL,No,Yes,No,No,No,No,Month-to-month,Yes,Electronic check,29.85,29.85,No
5575-GNVDE,Male,0,No,No,34,Yes,No,DSL,Yes,No,Yes,No,No,No,One year,No,Mailed check,56.95,1889.5,No
3668-QPYBK,Male,0,No,No,2,Yes,No,DSL,Yes,Yes,No,No,No,No,Month-to-month,Yes,Mailed check,53.85,108.15,Yes
7795-CFOCW,Male,0,No,No,45,No,No phone service,DSL,Yes,No,Yes,Yes,No,No,One year,No,Bank transfer (automatic),42.3,1840.75,No
9237-HQITU,Female,0,No,No,2,Yes,No,Fiber optic,No,No,No,No,No,No,Month-to-month,Yes,Electronic check,70.7,151.65,Yes
4472-LVYGI,Female,0,Yes,Yes,0,No,No phone service,DSL,Yes,No,Yes,Yes,Yes,No,Two year,Yes,Bank transfer (automatic),52.55, ,No
7469-LKBCI,Male,0,No,No,16,Yes,No,No,No internet service,No internet service,No internet service,No internet service,No internet service,No internet service,Two year,No,Credit card (automatic),18.95,326.8,No
"""  # noqa: E501

ADDONS = ["OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV"]
ADDONS += ["StreamingMovies"]
CATEGORY_COLUMNS = [c.name for c in TELCO_SCHEMA.columns if c.kind == "category"]


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_customers(20_000, seed=7)


def churn_rate(df: pd.DataFrame, mask: pd.Series) -> float:
    return float(df.loc[mask, LABEL].eq("Yes").mean())


def real_rows() -> pd.DataFrame:
    """REAL_CSV as raw text cells, to be broken one cell at a time."""
    return pd.read_csv(io.StringIO(REAL_CSV), dtype=str, keep_default_na=False)


def write_text(tmp_path: Path, text: str, name: str = "telco.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def write_rows(tmp_path: Path, rows: pd.DataFrame) -> Path:
    return write_text(tmp_path, rows.to_csv(index=False))


# --- schema and layout ---------------------------------------------------------------------


def test_schema_declares_the_real_files_columns() -> None:
    assert TELCO_SCHEMA.names == REAL_COLUMNS
    assert TELCO_SCHEMA.key == KEY == "customerID"
    assert not TELCO_SCHEMA[LABEL].required  # unlabelled scoring data validates too
    assert TELCO_SCHEMA["TotalCharges"].nullable
    assert all(column.description for column in TELCO_SCHEMA.columns)


def test_generated_frame_has_the_files_columns_and_types(customers: pd.DataFrame) -> None:
    assert list(customers.columns) == REAL_COLUMNS
    assert customers["SeniorCitizen"].dtype == np.int64
    assert customers["tenure"].dtype == np.int64
    assert customers["MonthlyCharges"].dtype == np.float64
    assert customers["TotalCharges"].dtype == np.float64
    assert set(customers["SeniorCitizen"].unique()) == {0, 1}


def test_every_category_is_declared_and_the_frame_validates(customers: pd.DataFrame) -> None:
    for name in CATEGORY_COLUMNS:
        unknown = set(customers[name].unique()) - set(TELCO_SCHEMA[name].categories or ())
        assert not unknown, f"{name}: {unknown}"
    validated = validate(customers, TELCO_SCHEMA, source="generated")
    assert len(validated) == len(customers)


# --- realistic structure -------------------------------------------------------------------


def test_overall_churn_rate_is_like_the_real_files(customers: pd.DataFrame) -> None:
    assert 0.25 <= customers[LABEL].eq("Yes").mean() <= 0.28


@pytest.mark.parametrize(
    ("column", "risky", "safe"),
    [
        ("Contract", "Month-to-month", "Two year"),
        ("InternetService", "Fiber optic", "DSL"),
        ("TechSupport", "No", "Yes"),
        ("OnlineSecurity", "No", "Yes"),
        ("PaperlessBilling", "Yes", "No"),
        ("SeniorCitizen", 1, 0),
    ],
)
def test_churn_is_higher_in_the_risky_group(
    customers: pd.DataFrame, column: str, risky: object, safe: object
) -> None:
    df = customers
    assert churn_rate(df, df[column] == risky) > churn_rate(df, df[column] == safe) + 0.05


def test_electronic_check_churns_more_than_every_other_payment(customers: pd.DataFrame) -> None:
    df = customers
    echeck = churn_rate(df, df["PaymentMethod"] == "Electronic check")
    for method in TELCO_SCHEMA["PaymentMethod"].categories[1:]:  # type: ignore[index]
        assert echeck > churn_rate(df, df["PaymentMethod"] == method) + 0.05, method


def test_new_customers_churn_more_than_long_standing_ones(customers: pd.DataFrame) -> None:
    df = customers
    assert churn_rate(df, df["tenure"] < 6) > churn_rate(df, df["tenure"] > 48) + 0.2


def test_gender_has_no_effect_on_churn(customers: pd.DataFrame) -> None:
    df = customers
    female, male = (churn_rate(df, df["gender"] == g) for g in ("Female", "Male"))
    assert abs(female - male) < 0.02


def test_mixes_and_ranges_are_like_the_real_files(customers: pd.DataFrame) -> None:
    contract = customers["Contract"].value_counts(normalize=True)
    for name, share in [("Month-to-month", 0.55), ("One year", 0.21), ("Two year", 0.24)]:
        assert abs(contract[name] - share) < 0.03, name
    internet = customers["InternetService"].value_counts(normalize=True)
    for name, share in [("Fiber optic", 0.44), ("DSL", 0.34), ("No", 0.22)]:
        assert abs(internet[name] - share) < 0.03, name
    assert 0.88 <= customers["PhoneService"].eq("Yes").mean() <= 0.92
    assert customers["tenure"].between(0, 72).all()
    assert 0 < customers["tenure"].eq(0).mean() < 0.005
    assert customers["MonthlyCharges"].between(18, 120).all()
    fiber = customers["InternetService"] == "Fiber optic"
    phone_only = customers["InternetService"] == "No"
    assert customers.loc[phone_only, "MonthlyCharges"].median() < 30
    assert customers.loc[fiber, "MonthlyCharges"].median() > 70


def test_total_charges_follow_tenure_times_monthly_charges(customers: pd.DataFrame) -> None:
    new = customers["tenure"] == 0
    assert customers["TotalCharges"].isna().equals(new)
    billed = customers[~new]
    expected = billed["tenure"] * billed["MonthlyCharges"]
    assert ((billed["TotalCharges"] - expected).abs() / expected).median() < 0.10


def test_services_are_consistent(customers: pd.DataFrame) -> None:
    offline = customers["InternetService"] == "No"
    for name in ADDONS:
        assert customers.loc[offline, name].eq("No internet service").all(), name
        assert not customers.loc[~offline, name].eq("No internet service").any(), name
    no_phone = customers["PhoneService"] == "No"
    assert customers["MultipleLines"].eq("No phone service").equals(no_phone)


# --- IDs, determinism, chunking and shift ---------------------------------------------------


def test_ids_look_real_and_stay_unique_across_chunks() -> None:
    first = generate_customers(2_000, seed=1)
    second = generate_customers(2_000, seed=1, start_index=2_000)
    ids = pd.concat([first[KEY], second[KEY]])
    assert ids.is_unique
    assert ids.str.fullmatch(r"\d{4}-[A-Z]{5}").all()
    # The ID map is a bijection of the row index: no collisions anywhere in a 10M-row table.
    spread = pd.Series(_customer_ids(np.arange(0, 10_000_000, 37)))
    assert spread.is_unique


def test_same_seed_same_frame_and_chunking_does_not_matter() -> None:
    whole = generate_customers(3_000, seed=5)
    pd.testing.assert_frame_equal(whole, generate_customers(3_000, seed=5))
    parts = [generate_customers(1_234, seed=5), generate_customers(1_766, 5, start_index=1_234)]
    pd.testing.assert_frame_equal(whole, pd.concat(parts, ignore_index=True))
    other = generate_customers(3_000, seed=6)
    assert not whole.drop(columns=KEY).equals(other.drop(columns=KEY))


def test_shift_adds_month_to_month_fiber_and_higher_charges() -> None:
    base = generate_customers(10_000, seed=3)
    drifted = generate_customers(10_000, seed=3, shift=1.0)

    def share(df: pd.DataFrame, column: str, value: str) -> float:
        return float(df[column].eq(value).mean())

    assert share(drifted, "Contract", "Month-to-month") > share(base, "Contract", "Month-to-month")
    assert share(drifted, "InternetService", "Fiber optic") > share(
        base, "InternetService", "Fiber optic"
    )
    assert drifted["MonthlyCharges"].mean() > base["MonthlyCharges"].mean() + 5


@pytest.mark.parametrize(
    "kwargs", [{"n_rows": 0}, {"n_rows": 10, "shift": 1.5}, {"n_rows": 10, "start_index": -1}]
)
def test_generate_refuses_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        generate_customers(**kwargs)  # type: ignore[arg-type]


# --- writing and loading -------------------------------------------------------------------


def test_csv_round_trip_keeps_ibms_format(tmp_path: Path) -> None:
    path = write_customers(
        tmp_path / "out" / "customers.csv", 6_000, seed=2, chunk_rows=2_500, progress=False
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["customers.csv"]  # no temp left
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(REAL_COLUMNS)
    assert len(lines) == 6_001  # the header is written once, not once per chunk
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    for name in ("MonthlyCharges", "TotalCharges"):  # cents, trailing zeros dropped: "42.3"
        assert raw[name].str.fullmatch(r"\d+(\.\d?[1-9])?| ").all(), name
    expected = validate(generate_customers(6_000, seed=2), TELCO_SCHEMA)
    blanks = sum(line.endswith((", ,Yes", ", ,No")) for line in lines[1:])
    assert blanks == (expected["tenure"] == 0).sum() > 0
    assert load_customers(path).equals(expected)  # exact: 2-decimal floats survive the text


def test_parquet_round_trip(tmp_path: Path) -> None:
    path = write_customers(
        tmp_path / "customers.parquet", 5_000, seed=2, chunk_rows=2_000, progress=False
    )
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    expected = validate(generate_customers(5_000, seed=2), TELCO_SCHEMA)
    assert load_customers(path).equals(expected)


def test_write_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_rows"):
        write_customers(tmp_path / "x.csv", 0, progress=False)
    with pytest.raises(UserError, match="unsupported"):
        write_customers(tmp_path / "x.json", 10, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_real_files_format_loads(tmp_path: Path) -> None:
    df = load_customers(write_text(tmp_path, REAL_CSV))
    assert list(df.columns) == REAL_COLUMNS
    assert len(df) == 7
    new = df["tenure"] == 0
    assert df.loc[new, KEY].tolist() == ["4472-LVYGI"]
    assert df["TotalCharges"].isna().equals(new)
    assert df["TotalCharges"].iloc[1] == pytest.approx(1889.5)
    assert df["SeniorCitizen"].dtype == np.int64
    assert list(df[LABEL].cat.categories) == ["No", "Yes"]
    assert df[LABEL].eq("Yes").sum() == 2


def test_the_real_files_windows_line_endings_load_the_same(tmp_path: Path) -> None:
    """IBM publishes the file with CRLF line endings; no stray \\r may reach the last column."""
    unix = load_customers(write_text(tmp_path, REAL_CSV))
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(REAL_CSV.replace("\n", "\r\n").encode())
    windows = load_customers(crlf)
    assert windows.equals(unix)
    assert set(windows[LABEL].astype(str)) == {"Yes", "No"}


# --- broken files ---------------------------------------------------------------------------


def test_missing_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="column 'Contract': is missing"):
        load_customers(write_rows(tmp_path, real_rows().drop(columns="Contract")))


def test_unknown_category_names_column_and_value(tmp_path: Path) -> None:
    rows = real_rows()
    rows.loc[2, "Contract"] = "Monthly"
    with pytest.raises(DataValidationError) as caught:
        load_customers(write_rows(tmp_path, rows))
    message = str(caught.value)
    assert "column 'Contract': has unknown categories" in message
    assert "row: 3" in message and "'Monthly'" in message


def test_non_numeric_charges_name_column_and_row(tmp_path: Path) -> None:
    rows = real_rows()
    rows.loc[1, "MonthlyCharges"] = "abc"
    pattern = re.escape("column 'MonthlyCharges': is not numeric (1 row: 2; e.g. 'abc')")
    with pytest.raises(DataValidationError, match=pattern):
        load_customers(write_rows(tmp_path, rows))


def test_charges_above_the_maximum_name_column_and_row(tmp_path: Path) -> None:
    rows = real_rows()
    rows.loc[1, "TotalCharges"] = "1e39"  # finite in float64, inf in the float32 model matrix
    pattern = re.escape("column 'TotalCharges': is above the maximum 1.2e+06 (1 row: 2;")
    with pytest.raises(DataValidationError, match=pattern):
        load_customers(write_rows(tmp_path, rows))


def test_negative_tenure_is_refused(tmp_path: Path) -> None:
    rows = real_rows()
    rows.loc[0, "tenure"] = "-3"
    with pytest.raises(DataValidationError, match="column 'tenure': is below the minimum 0"):
        load_customers(write_rows(tmp_path, rows))


def test_empty_and_header_only_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="the file is empty"):
        load_customers(write_text(tmp_path, "", "empty.csv"))
    header_only = REAL_CSV.splitlines()[0] + "\n"
    with pytest.raises(DataValidationError, match="the table has no rows"):
        load_customers(write_text(tmp_path, header_only, "header.csv"))


def test_duplicate_ids_warn_and_are_dropped(tmp_path: Path) -> None:
    rows = real_rows()
    duplicate = rows.iloc[[0]].assign(tenure="5")
    path = write_rows(tmp_path, pd.concat([rows, duplicate], ignore_index=True))
    with pytest.warns(DataQualityWarning, match="7590-VHVEG"):
        df = load_customers(path)
    assert len(df) == 7
    assert df.loc[df[KEY] == "7590-VHVEG", "tenure"].tolist() == [1]  # the first one is kept


def test_missing_label_is_refused_only_when_required(tmp_path: Path) -> None:
    path = write_rows(tmp_path, real_rows().drop(columns=LABEL))
    with pytest.raises(DataValidationError, match="column 'Churn': is missing"):
        load_customers(path)
    unlabelled = load_customers(path, require_label=False)
    assert LABEL not in unlabelled.columns and len(unlabelled) == 7


# --- download (file:// URLs, never the network) ---------------------------------------------


def test_download_keeps_a_valid_file(tmp_path: Path) -> None:
    source = write_text(tmp_path, REAL_CSV, "source.csv")
    dest = download_telco(tmp_path / "data" / "telco.csv", url=source.as_uri())
    assert dest.read_text(encoding="utf-8") == REAL_CSV
    assert sorted(p.name for p in dest.parent.iterdir()) == ["telco.csv"]


def test_download_refuses_a_page_that_is_not_the_table(tmp_path: Path) -> None:
    page = write_text(tmp_path, "<html><body>Rate limited</body></html>\n", "page.html")
    dest = tmp_path / "data" / "telco.csv"
    with pytest.raises(UserError, match="did not return the Telco churn table"):
        download_telco(dest, url=page.as_uri())
    assert list(dest.parent.iterdir()) == []


def test_download_failure_points_to_the_built_in_data(tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere.csv").as_uri()
    with pytest.raises(UserError, match="without --download"):
        download_telco(tmp_path / "telco.csv", url=missing, timeout=1)
    assert not (tmp_path / "telco.csv").exists()
