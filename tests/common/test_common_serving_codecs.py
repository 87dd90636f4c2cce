"""Unit tests of the serving codecs: content types, Accept negotiation, CSV and JSON tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from common.serving.codecs import (
    media_type,
    negotiate,
    read_csv,
    require_content_type,
    write_table,
)
from common.serving.errors import ApiError

OFFERED = ("application/json", "text/csv")


def test_media_type_drops_parameters_and_case() -> None:
    assert media_type("Text/CSV; charset=utf-8") == "text/csv"
    assert media_type(None) == ""


def test_require_content_type_names_what_was_sent() -> None:
    assert require_content_type("text/csv; charset=utf-8", OFFERED) == "text/csv"
    with pytest.raises(ApiError, match="'image/png'") as exc:
        require_content_type("image/png", OFFERED)
    assert exc.value.status == 415


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, ("text/csv", False)),
        ("", ("text/csv", False)),
        ("*/*", ("text/csv", False)),
        ("application/json", ("application/json", False)),
        ("application/xml, application/json;q=0.9", ("application/json", False)),
        ("text/csv; header=present", ("text/csv", True)),
        ("application/*", ("application/json", False)),
    ],
)
def test_negotiate(accept: str | None, expected: tuple[str, bool]) -> None:
    assert negotiate(accept, OFFERED, default="text/csv") == expected


@pytest.mark.parametrize(
    ("accept", "offered"), [("image/png", OFFERED), ("text/*", ("application/json",))]
)
def test_negotiate_refuses_what_it_cannot_give(accept: str, offered: tuple[str, ...]) -> None:
    with pytest.raises(ApiError) as exc:
        negotiate(accept, offered, default=offered[0])
    assert exc.value.status == 406


def test_read_csv_handles_bom_crlf_quotes_and_blank_fields(customer_schema) -> None:
    body = (
        b'\xef\xbb\xbfid,age,income,plan,note\r\nc1,30,,pro,"hello, world"\r\nc2,40,10.5,basic,\r\n'
    )
    frame = read_csv(body, customer_schema, max_rows=10)
    assert list(frame.columns) == ["id", "age", "income", "plan", "note"]
    assert frame["note"].tolist() == ["hello, world", ""]
    assert frame["income"].tolist() == ["", "10.5"]  # text: validation decides what "" means


def test_read_csv_without_header_uses_schema_order(customer_schema) -> None:
    frame = read_csv(b"c1,30,1.0,pro,hi\n", customer_schema, max_rows=10)
    assert frame.iloc[0].to_dict() == {
        "id": "c1", "age": "30", "income": "1.0", "plan": "pro", "note": "hi"
    }  # fmt: skip
    required_only = read_csv(b"c1,30,1.0,pro\n", customer_schema, max_rows=10)
    assert list(required_only.columns) == ["id", "age", "income", "plan"]


def test_read_csv_counts_rows_against_the_limit(customer_schema) -> None:
    with pytest.raises(ApiError, match="batch of 3 rows is above") as exc:
        read_csv(b"c,30,1,pro\n" * 3, customer_schema, max_rows=2)
    assert exc.value.status == 413


def test_read_csv_lists_lines_with_the_wrong_field_count(customer_schema) -> None:
    body = b"id,age,income,plan\nc1,30,1,pro\nc2,30\nc3,30,1,pro,x,y\n"
    with pytest.raises(ApiError, match="line 3: 2 fields, expected 4; line 4: 6 fields"):
        read_csv(body, customer_schema, max_rows=10)


def test_write_table() -> None:
    frame = pd.DataFrame({"id": ["a", None], "p": [0.25, float("nan")], "ok": [True, False]})
    assert write_table(frame, "text/csv") == b'"a",0.25,true\n,,false\n'
    assert write_table(frame, "text/csv", header=True).startswith(b'"id","p","ok"\n')
    assert json.loads(write_table(frame, "application/json")) == {
        "predictions": [{"id": "a", "p": 0.25, "ok": True}, {"id": None, "p": None, "ok": False}]
    }
