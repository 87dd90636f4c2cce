"""The forecast models behind the shared serving contract: a series id and a horizon in, points
with prediction intervals out.

`ForecastPredictor` loads every series' selected model from the artifact. A request without
`history` gets the forecast made at training time from the end of the series (read from the
artifact: a lookup, whatever the model); a request with `history`, newer points of the series,
gets a forecast conditioned on them, starting after the last one. Requests longer than the
trained horizon are refused: the backtest measured error up to that horizon, not beyond.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.artifacts import Manifest, check_compatible, read_manifest
from common.errors import ArtifactError, InputError
from common.predictor import Predictor
from forecast.model import Forecaster, HistoryError, load

MODEL_LIBRARIES = ["prophet", "statsmodels", "torch", "numpy", "pandas"]
#: Most history points one request may carry (a year of hourly data).
MAX_HISTORY = 10_000


class HistoryPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ds: datetime = Field(description="Timestamp on the series' grid (ISO 8601).")
    y: float = Field(description="The observed value.")

    @field_validator("ds")
    @classmethod
    def _naive_utc(cls, value: datetime) -> datetime:
        # Training reads zoned timestamps as UTC, then drops the zone: so does serving.
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    @field_validator("y")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class ForecastRequest(BaseModel):
    """Which series, how far ahead, and optionally newer points to condition on."""

    model_config = ConfigDict(extra="forbid")

    series_id: str | None = Field(
        None, description="The series to forecast; may be left out when the model has one."
    )
    horizon: int | None = Field(
        None, ge=1, description="Steps ahead; default and maximum: the trained horizon."
    )
    history: list[HistoryPoint] = Field(
        default_factory=list, max_length=MAX_HISTORY,
        description="Points newer than the training data (or corrections): the forecast "
        "starts after the last one.",
    )  # fmt: skip


class ForecastPoint(BaseModel):
    ds: datetime
    yhat: float
    yhat_lower: float
    yhat_upper: float


class ForecastResponse(BaseModel):
    series_id: str
    model: str = Field(description="The model the backtest selected for this series.")
    level: float = Field(description="Nominal coverage of [yhat_lower, yhat_upper].")
    points: list[ForecastPoint]


class ForecastPredictor(Predictor[ForecastRequest, ForecastResponse]):
    project: ClassVar[str] = "forecast"
    input_model: ClassVar[type[BaseModel]] = ForecastRequest
    output_model: ClassVar[type[BaseModel]] = ForecastResponse
    examples: ClassVar[list[dict[str, Any]]] = [
        {"series_id": "store_01", "horizon": 14},
        {"series_id": "store_02", "horizon": 7,
         "history": [{"ds": "2024-12-31T00:00:00", "y": 130.0}]},
    ]  # fmt: skip
    #: Each record is a whole forecast; a few hundred per request is plenty.
    max_batch: ClassVar[int | None] = 500

    def __init__(self, path: Path, manifest: Manifest, models: dict[str, Forecaster],
                 selected: dict[str, str], cached: dict[str, pd.DataFrame]) -> None:  # fmt: skip
        super().__init__(path, manifest)
        self.models = models
        self.selected = selected
        self.cached = cached
        self.horizon = int(manifest.extra["horizon"])
        self.level = float(manifest.extra["level"])
        self.freq = str(manifest.extra["freq"])

    @classmethod
    def from_artifact(cls, path: Path) -> Self:
        manifest = read_manifest(path, project=cls.project)
        check_compatible(manifest, MODEL_LIBRARIES)
        try:
            entries = manifest.extra["series"]
            forecast = pd.read_parquet(path / "forecast.parquet")
        except (KeyError, OSError) as exc:
            raise ArtifactError(f"{path}: not a forecast artifact ({exc})") from None
        models = {e["series_id"]: load(path / e["folder"]) for e in entries}
        selected = {e["series_id"]: e["model"] for e in entries}
        cached = {str(sid): g.drop(columns=["series_id", "model"]).reset_index(drop=True)
                  for sid, g in forecast.groupby("series_id", sort=False)}  # fmt: skip
        return cls(path, manifest, models, selected, cached)

    @property
    def ids(self) -> list[str]:
        return list(self.models)

    def series_id(self, record: ForecastRequest, index: int | None) -> str:
        if record.series_id is None:
            if len(self.models) == 1:
                return self.ids[0]
            raise InputError(
                f"series_id is required: this model has {len(self.models)} series "
                f"(e.g. {', '.join(self.ids[:3])})", field="series_id", index=index,
            )  # fmt: skip
        if record.series_id not in self.models:
            raise InputError(
                f"unknown series {record.series_id!r}; known: {', '.join(self.ids[:5])}"
                + (f" and {len(self.ids) - 5} more" if len(self.ids) > 5 else ""),
                field="series_id", index=index,
            )  # fmt: skip
        return record.series_id

    def forecast(self, series_id: str, horizon: int,
                 history: pd.DataFrame | None = None) -> pd.DataFrame:  # fmt: skip
        """ds, yhat, yhat_lower, yhat_upper: the stored forecast, or one conditioned on
        `history`."""
        if history is None or history.empty:
            return self.cached[series_id].iloc[:horizon]
        return self.models[series_id].predict(horizon, history=history)

    def predict_batch(self, records: Sequence[ForecastRequest]) -> list[ForecastResponse]:
        outputs = []
        for i, record in enumerate(records):
            index = i if len(records) > 1 else None
            sid = self.series_id(record, index)
            horizon = record.horizon or self.horizon
            if horizon > self.horizon:
                raise InputError(
                    f"horizon {horizon} is longer than the trained horizon {self.horizon} "
                    "(the backtest measured error up to it, not beyond)",
                    field="horizon", index=index,
                )  # fmt: skip
            history = pd.DataFrame([p.model_dump() for p in record.history])
            try:
                frame = self.forecast(sid, horizon, history)
            except HistoryError as exc:
                raise InputError(str(exc), field="history", index=index) from None
            points = [ForecastPoint(ds=ds, yhat=a, yhat_lower=b, yhat_upper=c)
                      for ds, a, b, c in frame.itertuples(index=False)]  # fmt: skip
            outputs.append(ForecastResponse(series_id=sid, model=self.selected[sid],
                                            level=self.level, points=points))  # fmt: skip
        return outputs

    def monitoring_inputs(self, records: Sequence[ForecastRequest], outputs: Any) -> Any:
        """Nothing for the live drift window: a request carries no actual to compare with a
        forecast. Forecast monitoring runs on actuals (`python -m forecast monitor`)."""
        return {}

    def metadata(self) -> dict[str, Any]:
        extra = self.manifest.extra
        return {
            **super().metadata(),
            "freq": self.freq, "horizon": self.horizon, "level": self.level,
            "series": [{k: e[k] for k in ("series_id", "model", "points", "start", "end")}
                       for e in extra["series"]],
        }  # fmt: skip
