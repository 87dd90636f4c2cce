"""Unit tests of common.schema: coercion, problem collection, duplicate keys, record models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from common.errors import DataValidationError, UserError
from common.schema import (
    Column,
    DataQualityWarning,
    Problem,
    TableSchema,
    record_model,
    require_columns,
    validate,
)


def frame(**overrides: list) -> pd.DataFrame:
    """Three valid customers as they arrive from a CSV (everything text), with overrides."""
    data = {
        "id": ["c1", "c2", "c3"],
        "age": ["30", "45", "61"],
        "income": ["1000.5", "2000", "0"],
        "plan": ["basic", "pro", "basic"],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def problems_of(excinfo: pytest.ExceptionInfo[DataValidationError]) -> dict[str, Problem]:
    return {f"{p.column}: {p.message}": p for p in excinfo.value.problems}


# -- coercion ------------------------------------------------------------------------------------


def test_validate_coerces_text_to_declared_kinds(customer_schema: TableSchema) -> None:
    out = validate(frame(), customer_schema)

    assert list(out.columns) == ["id", "age", "income", "plan"]
    assert out["age"].dtype == "int64"
    assert out["age"].tolist() == [30, 45, 61]
    assert out["income"].dtype == "float64"
    assert out["income"].tolist() == [1000.5, 2000.0, 0.0]
    assert isinstance(out["plan"].dtype, pd.CategoricalDtype)
    assert list(out["plan"].cat.categories) == ["basic", "pro"]
    assert out["plan"].tolist() == ["basic", "pro", "basic"]
    assert pd.api.types.is_string_dtype(out["id"])
    assert out["id"].tolist() == ["c1", "c2", "c3"]


def test_validate_accepts_real_numbers_and_numbers_with_spaces(
    customer_schema: TableSchema,
) -> None:
    out = validate(frame(age=[30, " 45 ", 61.0], income=[1.5, "2e3", 3]), customer_schema)

    assert out["age"].dtype == "int64"
    assert out["age"].tolist() == [30, 45, 61]
    assert out["income"].tolist() == [1.5, 2000.0, 3.0]


def test_whitespace_only_strings_become_na_in_nullable_columns(
    customer_schema: TableSchema,
) -> None:
    out = validate(
        frame(income=["10", " ", ""], note=["hello", "  ", None]),
        customer_schema,
    )

    assert out["income"].iloc[0] == 10.0
    assert out["income"].iloc[1:].isna().all()
    assert out["note"].iloc[0] == "hello"
    assert out["note"].iloc[1:].isna().all()


def test_nullable_category_turns_blank_into_na() -> None:
    schema = TableSchema("t", (Column("plan", "category", nullable=True, categories=("a", "b")),))

    out = validate(pd.DataFrame({"plan": ["a", " ", None]}), schema)

    assert out["plan"].iloc[0] == "a"
    assert out["plan"].iloc[1:].isna().all()


def test_category_without_declared_categories_keeps_the_values_seen() -> None:
    schema = TableSchema("t", (Column("city", "category"),))

    out = validate(pd.DataFrame({"city": ["Oslo", "Rome", "Oslo"]}), schema)

    assert isinstance(out["city"].dtype, pd.CategoricalDtype)
    assert sorted(out["city"].cat.categories) == ["Oslo", "Rome"]


def test_nullable_int_with_missing_values_stays_float() -> None:
    schema = TableSchema("t", (Column("n", "int", nullable=True),))

    out = validate(pd.DataFrame({"n": ["1", " ", "3"]}), schema)

    assert out["n"].dtype == "float64"
    assert out["n"].iloc[0] == 1.0
    assert math.isnan(out["n"].iloc[1])


# -- every problem at once -----------------------------------------------------------------------


def test_all_problems_are_reported_in_one_error(customer_schema: TableSchema) -> None:
    df = frame(
        age=["30", "old", "61"],
        income=["1", "2", "-5"],
        plan=["basic", "pro", "gold"],
    )

    with pytest.raises(DataValidationError) as excinfo:
        validate(df, customer_schema, source="customers.csv")

    err = excinfo.value
    assert err.source == "customers.csv"
    assert len(err.problems) == 3
    assert {p.column for p in err.problems} == {"age", "income", "plan"}
    message = str(err)
    assert message.startswith("customers.csv: 3 problems found")
    # Column names, 1-based row numbers and example values appear in the message.
    assert "column 'age': is not numeric (1 row: 2; e.g. 'old')" in message
    assert "column 'income': is below the minimum 0 (1 row: 3; e.g. '-5')" in message
    assert "column 'plan': has unknown categories" in message
    assert "(1 row: 3; e.g. 'gold')" in message


def test_data_validation_error_is_a_user_error(customer_schema: TableSchema) -> None:
    with pytest.raises(UserError, match="1 problem found"):
        validate(frame(age=["x", "30", "30"]), customer_schema)


def test_row_numbers_count_data_rows_from_one_whatever_the_index(
    customer_schema: TableSchema,
) -> None:
    df = frame(age=["30", "30", "bad"])
    df.index = [100, 7, 42]

    with pytest.raises(DataValidationError) as excinfo:
        validate(df, customer_schema)

    (problem,) = excinfo.value.problems
    assert problem.rows == [3]
    assert problem.count == 1
    assert problem.examples == ["bad"]


def test_missing_required_column(customer_schema: TableSchema) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame().drop(columns="plan"), customer_schema)

    (problem,) = excinfo.value.problems
    assert (problem.column, problem.message) == ("plan", "is missing")
    assert "column 'plan': is missing" in str(excinfo.value)


def test_optional_column_may_be_absent(customer_schema: TableSchema) -> None:
    out = validate(frame(), customer_schema)

    assert "note" not in out.columns


def test_unknown_category_lists_allowed_values_and_the_bad_one(
    customer_schema: TableSchema,
) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame(plan=["basic", "platinum", "pro"]), customer_schema)

    (problem,) = excinfo.value.problems
    assert problem.column == "plan"
    assert problem.message == "has unknown categories (allowed: 'basic', 'pro')"
    assert problem.rows == [2]
    assert problem.examples == ["platinum"]


def test_unknown_categories_are_quoted_as_text_whatever_the_column_type(
    customer_schema: TableSchema,
) -> None:
    with pytest.raises(DataValidationError) as excinfo:  # e.g. a Parquet column of codes
        validate(frame(plan=[1, 2, 1]), customer_schema)

    (problem,) = excinfo.value.problems
    assert problem.rows == [1, 2, 3]
    assert problem.examples == ["1", "2"]


def test_non_numeric_values(customer_schema: TableSchema) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame(income=["abc", "1", "12,5"]), customer_schema)

    (problem,) = excinfo.value.problems
    assert (problem.column, problem.message) == ("income", "is not numeric")
    assert problem.rows == [1, 3]
    assert problem.examples == ["abc", "12,5"]


def test_infinite_values(customer_schema: TableSchema) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame(income=["inf", "1", "2"]), customer_schema)

    assert "income: is infinite" in problems_of(excinfo)
    assert problems_of(excinfo)["income: is infinite"].rows == [1]


def test_non_whole_int(customer_schema: TableSchema) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame(age=["30", "30.5", "40"]), customer_schema)

    (problem,) = excinfo.value.problems
    assert (problem.column, problem.message) == ("age", "is not a whole number")
    assert problem.rows == [2]
    assert problem.examples == ["30.5"]


def test_below_minimum_and_above_maximum(customer_schema: TableSchema) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame(age=["17", "50", "121"]), customer_schema)

    found = problems_of(excinfo)
    assert set(found) == {"age: is below the minimum 18", "age: is above the maximum 120"}
    assert found["age: is below the minimum 18"].rows == [1]
    assert found["age: is above the maximum 120"].rows == [3]
    assert found["age: is above the maximum 120"].examples == ["121"]


def test_bounds_are_inclusive(customer_schema: TableSchema) -> None:
    out = validate(frame(age=["18", "120", "50"]), customer_schema)

    assert out["age"].tolist() == [18, 120, 50]


def test_missing_values_in_non_nullable_column(customer_schema: TableSchema) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame(age=["30", " ", None], plan=["basic", "", "pro"]), customer_schema)

    found = problems_of(excinfo)
    assert set(found) == {"age: has missing values", "plan: has missing values"}
    assert found["age: has missing values"].rows == [2, 3]
    assert found["plan: has missing values"].rows == [2]


def test_a_bad_and_a_missing_value_in_one_column_are_both_reported(
    customer_schema: TableSchema,
) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame(age=["x", None, "30"]), customer_schema)

    found = problems_of(excinfo)
    assert found["age: is not numeric"].rows == [1]
    assert found["age: has missing values"].rows == [2]


def test_empty_frame_is_refused(customer_schema: TableSchema) -> None:
    with pytest.raises(DataValidationError, match="the table has no rows"):
        validate(frame().iloc[0:0], customer_schema, source="empty.csv")


def test_extra_columns_are_dropped_by_default(customer_schema: TableSchema) -> None:
    out = validate(frame(surprise=[1, 2, 3]), customer_schema)

    assert "surprise" not in out.columns


def test_extra_columns_are_refused_when_not_allowed(customer_schema: TableSchema) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame(surprise=[1, 2, 3]), customer_schema, allow_extra=False)

    (problem,) = excinfo.value.problems
    assert (problem.column, problem.message) == ("surprise", "is not in the schema")


def test_duplicate_keys_are_dropped_with_a_warning(customer_schema: TableSchema) -> None:
    df = frame(id=["c1", "c2", "c1"], age=["30", "40", "50"])

    with pytest.warns(DataQualityWarning) as record:
        out = validate(df, customer_schema, source="customers.csv")

    assert out["id"].tolist() == ["c1", "c2"]
    assert out["age"].tolist() == [30, 40]  # the first occurrence is kept
    assert list(out.index) == [0, 1]
    (warning,) = record
    text = str(warning.message)
    assert text.startswith("customers.csv: column 'id': has duplicate values")
    assert "(1 row: 3; e.g. 'c1')" in text
    assert warning.filename == __file__  # points at the caller, not at common/schema.py


def test_unique_keys_raise_no_warning(customer_schema: TableSchema) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = validate(frame(), customer_schema)
    assert caught == []
    assert len(result) == len(frame())


# -- Problem -------------------------------------------------------------------------------------


def test_problem_str_truncates_long_row_lists() -> None:
    problem = Problem("age", "is bad", rows=list(range(1, 11)), count=25, examples=[-1, "x"])

    text = str(problem)

    assert text == (
        "column 'age': is bad (25 rows: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 15 more; e.g. -1, 'x')"
    )


def test_problem_str_without_rows_or_examples() -> None:
    assert str(Problem("plan", "is missing")) == "column 'plan': is missing"
    assert str(Problem("a", "is odd", rows=[4], count=1)) == "column 'a': is odd (1 row: 4)"


def test_validation_keeps_at_most_ten_rows_and_five_examples() -> None:
    schema = TableSchema("t", (Column("n", "float"),))
    values = [f"bad{i}" for i in range(30)]

    with pytest.raises(DataValidationError) as excinfo:
        validate(pd.DataFrame({"n": values}), schema)

    (problem,) = excinfo.value.problems
    assert problem.count == 30
    assert problem.rows == list(range(1, 11))
    assert problem.examples == ["bad0", "bad1", "bad2", "bad3", "bad4"]
    assert "and 20 more" in str(problem)


# -- TableSchema ---------------------------------------------------------------------------------


def test_table_schema_getitem_and_without(customer_schema: TableSchema) -> None:
    assert customer_schema["age"].kind == "int"
    with pytest.raises(KeyError):
        customer_schema["nope"]

    smaller = customer_schema.without("plan", "note")

    assert smaller.names == ["id", "age", "income"]
    assert smaller.name == customer_schema.name
    assert smaller.key == "id"
    assert customer_schema.names == ["id", "age", "income", "plan", "note"]  # unchanged


def test_table_schema_to_dict(customer_schema: TableSchema) -> None:
    data = customer_schema.to_dict()

    assert data["name"] == "customers"
    assert data["key"] == "id"
    columns = {c["name"]: c for c in data["columns"]}
    assert columns["id"] == {
        "name": "id",
        "kind": "string",
        "required": True,
        "description": "Customer id.",
    }
    assert columns["age"] == {"name": "age", "kind": "int", "required": True, "min": 18, "max": 120}
    assert columns["plan"]["categories"] == ["basic", "pro"]
    assert columns["note"] == {
        "name": "note",
        "kind": "string",
        "required": False,
        "nullable": True,
    }
    assert columns["income"]["nullable"] is True


def test_require_columns(customer_schema: TableSchema) -> None:
    require_columns(frame(), ["id", "plan"])
    with pytest.raises(DataValidationError, match="column 'note': is missing"):
        require_columns(frame(), ["id", "note"], source="x.csv")


# -- record_model --------------------------------------------------------------------------------


def test_record_model_accepts_a_valid_record(customer_schema: TableSchema) -> None:
    Record = record_model(customer_schema, "Customer")

    record = Record(id="c1", age=30, income=12.5, plan="pro")

    assert record.model_dump() == {
        "id": "c1",
        "age": 30,
        "income": 12.5,
        "plan": "pro",
        "note": None,
    }
    assert Record.__name__ == "Customer"


def test_record_model_refuses_an_unknown_category(customer_schema: TableSchema) -> None:
    Record = record_model(customer_schema, "Customer")

    with pytest.raises(ValidationError) as excinfo:
        Record(id="c1", age=30, plan="gold")

    (error,) = excinfo.value.errors()
    assert error["loc"] == ("plan",)
    assert error["type"] == "literal_error"
    schema = Record.model_json_schema()
    assert schema["properties"]["plan"]["enum"] == ["basic", "pro"]


@pytest.mark.parametrize(("age", "kind"), [(17, "greater_than_equal"), (121, "less_than_equal")])
def test_record_model_enforces_bounds(customer_schema: TableSchema, age: int, kind: str) -> None:
    Record = record_model(customer_schema, "Customer")

    with pytest.raises(ValidationError) as excinfo:
        Record(id="c1", age=age, plan="pro")

    (error,) = excinfo.value.errors()
    assert (error["loc"], error["type"]) == (("age",), kind)
    Record(id="c1", age=18, plan="pro")
    Record(id="c1", age=120, plan="pro")


def test_record_model_refuses_extra_fields(customer_schema: TableSchema) -> None:
    Record = record_model(customer_schema, "Customer")

    with pytest.raises(ValidationError) as excinfo:
        Record(id="c1", age=30, plan="pro", churned=True)

    (error,) = excinfo.value.errors()
    assert (error["loc"], error["type"]) == (("churned",), "extra_forbidden")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_record_model_refuses_nan_and_inf(customer_schema: TableSchema, value: float) -> None:
    Record = record_model(customer_schema, "Customer")

    with pytest.raises(ValidationError) as excinfo:
        Record(id="c1", age=30, plan="pro", income=value)

    (error,) = excinfo.value.errors()
    assert (error["loc"], error["type"]) == (("income",), "finite_number")


def test_record_model_requires_non_nullable_required_columns(
    customer_schema: TableSchema,
) -> None:
    Record = record_model(customer_schema, "Customer")

    with pytest.raises(ValidationError) as excinfo:
        Record(id="c1", plan="pro")

    assert [e["loc"] for e in excinfo.value.errors()] == [("age",)]
    assert set(Record.model_json_schema()["required"]) == {"id", "age", "plan"}


def test_record_model_optional_makes_a_required_column_optional(
    customer_schema: TableSchema,
) -> None:
    Record = record_model(customer_schema, "Customer", optional=["age"])

    record = Record(id="c1", plan="pro")

    assert record.age is None
    assert "age" not in Record.model_json_schema()["required"]
    with pytest.raises(ValidationError):
        Record(id="c1", plan="pro", age=500)  # bounds still apply when given


def test_record_model_exclude_drops_a_field(customer_schema: TableSchema) -> None:
    Record = record_model(customer_schema, "Request", exclude=["plan"])

    assert "plan" not in Record.model_fields
    Record(id="c1", age=30)
    with pytest.raises(ValidationError):
        Record(id="c1", age=30, plan="pro")  # now an unknown field


# -- bugs ----------------------------------------------------------------------------------------


def test_int_too_large_for_int64_is_not_silently_wrapped() -> None:
    schema = TableSchema("t", (Column("n", "int"),))

    try:
        out = validate(pd.DataFrame({"n": ["1e20", "1"]}), schema)
    except DataValidationError:
        return  # refused: fine
    assert out["n"].iloc[0] == 10**20, f"got {out['n'].iloc[0]} for 1e20"


def test_numpy_nan_in_examples_is_shown(customer_schema: TableSchema) -> None:
    with pytest.raises(DataValidationError) as excinfo:
        validate(frame(age=[30, np.nan, 40]), customer_schema)

    (problem,) = excinfo.value.problems
    assert problem.message == "has missing values"
    assert problem.rows == [2]
