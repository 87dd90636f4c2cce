"""Request bodies in, response bodies out: content types, CSV and JSON tables.

CSV is read with pyarrow (a 10,000-row batch parses in ~7 ms) as text, so that validation, not
the parser, decides what a bad value is and reports it with its row. The header is optional
(SageMaker batch transform sends bare lines); a CSV response has one line per input line and,
as SageMaker expects, no header unless asked for with `Accept: text/csv; header=present`
(RFC 4180's parameter).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from common.schema import TableSchema
from common.serving.errors import ApiError, too_many_rows

JSON = "application/json"
CSV = "text/csv"
_MAX_BAD_LINES = 10


def media_type(header: str | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`; a missing header -> ''."""
    return (header or "").split(";", 1)[0].strip().lower()


def require_content_type(header: str | None, accepted: tuple[str, ...]) -> str:
    kind = media_type(header)
    if kind not in accepted:
        sent = f"'{kind}'" if kind else "no Content-Type"
        raise ApiError(415, f"unsupported content type: {sent}; send one of {', '.join(accepted)}")
    return kind


def negotiate(accept: str | None, offered: tuple[str, ...], default: str) -> tuple[str, bool]:
    """The response type the client accepts (first match in its order; q-values are not
    weighed) and whether a CSV header was asked for. 406 if none of `offered` is acceptable."""
    if not accept or not accept.strip():
        return default, False
    for part in accept.split(","):
        kind = media_type(part)
        params = part.lower().replace(" ", "")
        if kind in ("*/*", "text/*", "application/*"):
            candidates = [default, *offered]
            match = next((c for c in candidates if kind == "*/*" or c.startswith(kind[:-1])), None)
            if match is not None:
                return match, False
            continue
        if kind in offered:
            return kind, "header=present" in params
    raise ApiError(406, f"cannot answer in {accept!r}; accepted: {', '.join(offered)}")


def read_csv(body: bytes, schema: TableSchema, *, max_rows: int) -> pd.DataFrame:
    """CSV bytes -> a frame of strings with the schema's column names, or a 4xx naming the
    line. Headerless lines must hold every column in the schema's order, or only the required
    ones."""
    if not body.strip():
        raise ApiError(400, "empty body: send CSV lines, one row each (header optional)")
    body = body.removeprefix(b"\xef\xbb\xbf")  # Excel's UTF-8 byte-order mark
    try:
        first = next(csv.reader([body.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")]))
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"malformed CSV: line 1 is not UTF-8 ({exc.reason})") from None
    names = [c.name for c in schema.columns]
    # A header when most fields are column names: one value that happens to equal a name
    # ("plan") does not make a data line a header.
    has_header = sum(field.strip() in names for field in first) > len(first) / 2
    if has_header:
        repeated = sorted({f for f in first if first.count(f) > 1})
        if repeated:
            raise ApiError(400, f"CSV header repeats columns: {', '.join(repeated)}")
        column_names = None
        read_as = first
    else:
        required = [c.name for c in schema.columns if c.required]
        if len(first) == len(names):
            column_names = names
        elif len(first) == len(required):
            column_names = required
        else:
            raise ApiError(
                400,
                f"CSV without a header must have {len(names)} fields ({', '.join(names)}) or "
                f"{len(required)} (without the optional ones); line 1 has {len(first)}",
            )
        read_as = column_names

    bad: list[str] = []

    def on_bad_line(row: Any) -> str:
        bad.append(
            f"line {row.number}: {row.actual_columns} fields, expected {row.expected_columns}"
        )
        return "skip"

    try:
        table = pa_csv.read_csv(
            io.BytesIO(body),
            # One thread: line numbers are only known in order, and a batch this size parses
            # in milliseconds anyway.
            read_options=pa_csv.ReadOptions(column_names=column_names, use_threads=False),
            # An empty line is read as a row of empty fields (which validation then reports),
            # not skipped: a batch must get exactly one answer per line it sends.
            parse_options=pa_csv.ParseOptions(
                invalid_row_handler=on_bad_line, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(read_as, pa.string()),
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed CSV: {exc}") from None
    if bad:
        more = f" and {len(bad) - _MAX_BAD_LINES} more" if len(bad) > _MAX_BAD_LINES else ""
        raise ApiError(
            400, f"CSV with the wrong number of fields: {'; '.join(bad[:_MAX_BAD_LINES])}{more}"
        )
    if table.num_rows > max_rows:
        raise ApiError(413, too_many_rows(table.num_rows, max_rows))
    frame = table.to_pandas()
    if has_header:
        frame.columns = [c.strip() for c in frame.columns]
    return frame


def write_table(frame: pd.DataFrame, kind: str, header: bool = False) -> bytes:
    """A flat prediction table as CSV lines or as `{"predictions": [row, ...]}`.

    CSV is written by pyarrow, ~7x faster than pandas' `to_csv` on 10,000 rows; it quotes
    every string, writes booleans as true/false and missing values as empty fields.
    """
    if kind == CSV:
        sink = io.BytesIO()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=header))
        return sink.getvalue()
    # json.dumps, not pandas' to_json, which rounds floats to 15 digits: the same row must get
    # the same number from /predict and /invocations.
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return json.dumps({"predictions": rows}, allow_nan=False).encode()


def json_records(body: bytes) -> list[Any]:
    """A JSON body as a list of records: one object, a list, or `{"instances": [...]}` (the
    convention of SageMaker's and TensorFlow Serving's JSON)."""
    data = parse_json(body)
    if isinstance(data, dict) and set(data) == {"instances"}:
        data = data["instances"]
    return data if isinstance(data, list) else [data]


def parse_json(body: bytes) -> Any:
    """A JSON body, or 400 saying why it is not one (empty, malformed, not UTF-8)."""
    if not body.strip():
        raise ApiError(400, "empty body: send a JSON object (one record) or a list of them")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} at character {exc.pos}") from None
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"malformed JSON: not UTF-8 ({exc.reason})") from None
    except (ValueError, RecursionError) as exc:  # e.g. a 5,000-digit number, or deep nesting
        raise ApiError(400, f"malformed JSON: {exc}") from None
