"""Building blocks for a project's Streamlit dashboard, written once for churn, vision and forecast.

- `load_predictor`: the model a dashboard shows (`MODEL_DIR` if set, else the store's
  `production` alias, else `latest`), loaded once per process and path; with no model, the page
  says how to train one and stops.
- `api_url`, `post_json`, `post_csv`, `post_files`: call the project's API when `API_URL` is
  set. Its `{"error": ..., "detail": ...}` answers, and a server that cannot be reached, become an
  `ApiCallError` whose message is meant for the user; `show_api_error` displays one.
- `problems_frame`, `show_problems`: a `DataValidationError` as a table, one row per problem.
- `read_report`: the metrics, model card, plots and explanation tables saved in an artifact.
- `schema_input`: one input widget for one column of a table schema.

Nothing here runs at import: every `st.*` call happens inside a function that a page calls.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import httpx
import pandas as pd
import streamlit as st

from common.artifacts import ArtifactStore
from common.errors import DataValidationError, UserError
from common.predictor import Predictor
from common.schema import Column, Problem
from common.settings import ServeSettings, get_settings

#: An artifact directory to show instead of the store's production/latest model.
MODEL_DIR_ENV = "MODEL_DIR"
#: The project's API (e.g. http://127.0.0.1:8080); when set, predictions come from it.
API_URL_ENV = "API_URL"
#: Seconds to wait for the API. Bounded, so a hung server shows an error instead of a spinner.
API_TIMEOUT_S = 30.0

P = TypeVar("P", bound=Predictor)


# -- the model ---------------------------------------------------------------------------------


def model_dir(project: str) -> Path:
    """`MODEL_DIR` if set, else the store's production alias, else latest, as for the API;
    ArtifactError if none."""
    store = ArtifactStore(get_settings().artifacts_root, project)
    return store.resolve_serving(ServeSettings().model_dir)


# A few entries: a dashboard left running while models are promoted keeps the new one and the
# previous one, not every model it ever loaded.
@st.cache_resource(max_entries=4, show_spinner="Loading the model...")
def _load_cached(_predictor_cls: type[Predictor], class_name: str, path: str) -> Predictor:
    # Streamlit hashes the arguments into the cache key, except those starting with "_": the
    # class is named by `class_name` instead, and the path keys the model itself.
    return _predictor_cls.from_artifact(Path(path))


def load_predictor(predictor_cls: type[P], *, train_command: str) -> P:
    """The project's model, loaded once per process and artifact path; if there is none (or it
    fails verification), an error saying how to get one, and the page stops there."""
    try:
        path = model_dir(predictor_cls.project).resolve()
        class_name = f"{predictor_cls.__module__}.{predictor_cls.__qualname__}"
        return cast(P, _load_cached(predictor_cls, class_name, str(path)))
    except UserError as exc:
        stop_with_error(
            f"No {predictor_cls.project} model to show: {exc}\n\n"
            f"Train one with `{train_command}`, or set `{MODEL_DIR_ENV}` to an artifact directory."
        )


def stop_with_error(message: str) -> NoReturn:
    """Show `message` as an error and end this run of the page (no traceback for the user)."""
    st.error(message)
    st.stop()


# -- the API -----------------------------------------------------------------------------------


class ApiCallError(Exception):
    """The API could not be reached or answered with an error. `message` is for the user;
    `detail` is the answer's `detail` (e.g. one entry per invalid field or column)."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def api_url() -> str | None:
    """The API's base URL from `API_URL`, without a trailing slash; None to predict in-process."""
    return os.environ.get(API_URL_ENV, "").strip().rstrip("/") or None


def post_json(base_url: str, path: str, payload: Any) -> Any:
    """POST `payload` as JSON to `base_url + path`; the decoded JSON answer."""
    return _post(base_url + path, json=payload).json()


def post_csv(base_url: str, path: str, data: bytes) -> pd.DataFrame:
    """POST CSV bytes to `base_url + path`, asking for CSV with a header back; the answer as a
    frame."""
    headers = {"Content-Type": "text/csv", "Accept": "text/csv; header=present"}
    response = _post(base_url + path, content=data, headers=headers)
    return pd.read_csv(io.BytesIO(response.content))


def post_files(
    base_url: str,
    path: str,
    files: Mapping[str, tuple[str, bytes, str]] | Sequence[tuple[str, tuple[str, bytes, str]]],
    params: Mapping[str, Any] | None = None,
) -> Any:
    """POST files as multipart/form-data to `base_url + path`, with `params` as form fields
    beside them; the decoded JSON answer. `files` maps a form field to (file name, bytes,
    content type), or is a list of such pairs to send one field several times (`files`)."""
    # httpx writes True/False as "true"/"false" and numbers as text, which the API's models
    # parse back; None would become an empty field, so it is left out instead.
    data = {key: value for key, value in (params or {}).items() if value is not None}
    return _post(base_url + path, files=files, data=data).json()


def _post(url: str, **kwargs: Any) -> httpx.Response:
    try:
        response = httpx.post(url, timeout=API_TIMEOUT_S, **kwargs)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # refused, timed out, bad URL...
        raise ApiCallError(f"cannot reach the API at {url}: {exc}") from exc
    if response.is_error:
        error, detail = error_of(response)
        raise ApiCallError(error, detail)
    return response


def error_of(response: httpx.Response) -> tuple[str, Any]:
    """The `error` and `detail` of an error answer; for a body of another shape (say, a proxy's
    HTML page), the status and the start of the text."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], body.get("detail")
    text = response.text.strip()[:200]
    status = f"the API answered {response.status_code} {response.reason_phrase}"
    return (f"{status}: {text}" if text else status), None


def show_api_error(exc: ApiCallError) -> None:
    """The API's error message, and its per-field or per-column details as a table if any."""
    st.error(exc.message)
    if isinstance(exc.detail, list) and exc.detail and all(isinstance(d, dict) for d in exc.detail):
        st.dataframe(problems_frame(exc.detail), hide_index=True)


# -- validation problems -----------------------------------------------------------------------


def problems_frame(problems: Sequence[Problem | Mapping[str, Any]]) -> pd.DataFrame:
    """Problems (or the API's dicts of them) as one row each. Lists become comma-separated text
    and other values text, since a column of mixed types cannot be shown as a table."""
    rows = [asdict(p) if isinstance(p, Problem) else dict(p) for p in problems]
    return pd.DataFrame([{key: _cell(value) for key, value in row.items()} for row in rows])


def _cell(value: Any) -> str | int:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def show_problems(error: DataValidationError) -> None:
    """Every problem a validation found, one row each: column, message, (1-based) rows, count
    and example values."""
    n = len(error.problems)
    st.error(f"{error.source}: {n} problem{'s' if n > 1 else ''} found. Fix them and try again.")
    st.dataframe(problems_frame(error.problems), hide_index=True)


# -- an artifact's report files ----------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What evaluation saved in an artifact; any part may be absent (empty)."""

    metrics: dict[str, Any]  # metrics.json: the test split's metrics
    model_card: str | None  # model_card.md
    plots: dict[str, Path]  # plots/<name>.png, by name
    tables: dict[str, Path]  # explanations/<name>.csv, by name


def read_report(path: Path) -> Report:
    """The report files under an artifact (or report) directory."""
    metrics_file, card_file = path / "metrics.json", path / "model_card.md"
    return Report(
        metrics=json.loads(metrics_file.read_text()) if metrics_file.is_file() else {},
        model_card=card_file.read_text() if card_file.is_file() else None,
        plots={p.stem: p for p in sorted((path / "plots").glob("*.png"))},
        tables={p.stem: p for p in sorted((path / "explanations").glob("*.csv"))},
    )


# -- forms -------------------------------------------------------------------------------------


def plot_tabs(report: Report, titles: Mapping[str, str], heading: str) -> None:
    """The report's plots named in `titles` (file stem -> tab title) as tabs, under `heading`;
    nothing when the artifact has none of them."""
    names = [name for name in titles if name in report.plots]
    if not names:
        return
    st.subheader(heading)
    for tab, name in zip(st.tabs([titles[n] for n in names]), names, strict=True):
        tab.image(str(report.plots[name]), caption=f"plots/{name}.png")


def run_pages(title: str, icon: str, pages: Sequence[Any]) -> None:
    """A project's dashboard: its pages in the navigation (the first marked `default=True`),
    and a note in the sidebar saying where predictions come from."""
    st.set_page_config(page_title=title, page_icon=icon, layout="wide")
    navigation = st.navigation(list(pages))
    url = api_url()
    st.sidebar.caption(f"Predictions from the API at {url}" if url else "Predictions in-process")
    navigation.run()


def schema_input(column: Column, default: Any, *, key: str) -> Any:
    """One widget for one schema column, labelled with its name and described by its
    description: a select box for categories, a number box bounded by the column's range for
    numbers, a text box otherwise. Returns the value entered."""
    help_text = column.description or None
    if column.kind == "category" and column.categories:
        options = list(column.categories)
        index = options.index(default) if default in options else 0
        return st.selectbox(column.name, options, index=index, help=help_text, key=key)
    if column.kind in ("int", "float"):
        # Streamlit wants the bounds, value and step all of one type, int or float.
        kind = int if column.kind == "int" else float
        low = None if column.min is None else kind(column.min)
        high = None if column.max is None else kind(column.max)
        if default is not None:
            value = kind(default)
        else:  # an empty box for a value that may be missing, else the lowest allowed
            value = None if column.nullable else (low if low is not None else kind(0))
        return st.number_input(
            column.name,
            min_value=low,
            max_value=high,
            value=value,
            step=kind(1),
            format=None if kind is int else "%.2f",
            help=help_text,
            key=key,
        )
    default_text = "" if default is None else str(default)
    text = st.text_input(column.name, value=default_text, help=help_text, key=key)
    return text or None
