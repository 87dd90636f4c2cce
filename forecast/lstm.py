"""A small LSTM forecaster (PyTorch): one forward pass reads the last `lookback` values and
outputs the next `horizon` values at once (direct multi-step, no feeding forecasts back in).

Inputs and targets are standardised with the mean and standard deviation of the values the training
windows read (none that only held-out windows see), then shifted by the window's last value: the
network learns the path relative to where the series stands, so a level it never saw in training (a
trend, a random walk) does not push it out of its range. No calendar features: the default window
spans two seasons, so the network reads the season's phase from the values themselves.

Windows in time order (`split_windows`): training, then the last `val_fraction` held out, the
earlier half for early stopping, the later half for calibration. `horizon - 1` windows are dropped
before each held-out part, so no stopping target was read by a training window and no calibration
target was read by a training or stopping window: the weights and the epoch were both chosen
without the calibration targets, which is what makes the intervals split-conformal. Calibration
windows may read stopping targets as inputs, as a forecast reads values the model was fitted on;
that does not shrink their errors. The second gap costs `horizon - 1` training windows: a series
needs about 3.5 horizons + 11 points (60 for horizon 14, 116 for 30), not 2.25 horizons + 12.

Training: Adam on the Huber loss, early stopping on the stopping windows' loss, best weights
restored. An epoch is at most `MAX_EPOCH_WINDOWS` training windows drawn at random: neighbouring
windows overlap almost entirely, so more per epoch mostly costs time, and a long hourly series costs
no more per epoch than a short one. Everything random draws from generators seeded with `seed`: the
same data and seed give the same model, and global random state is left as it was.

Intervals are split-conformal: per horizon step, the ceil((n+1)·level)/n quantile of the n
calibration windows' absolute errors, pooled over the steps when there are fewer than
`MIN_CALIBRATION` windows (too few for a quantile per step).

Speed, measured on one thread (`torch.set_num_threads(1)`) with the default configuration: fit
on 1,000 daily points, horizon 30 (lookback 60), 1.2-1.8 s over seeds (45-60 epochs, ~30 ms
each); 2,000 hourly points, horizon 48 (lookback 96), ~2.8 s; 8,760 hourly points ~5.5 s. The
first fit in a process also pays ~3 s once: torch's optimisers import `torch._dynamo`. A
forecast takes ~1 ms.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from common.errors import ArtifactError, UserError
from forecast.config import LSTMConfig
from forecast.model import Forecaster

WEIGHTS_FILE = "lstm.pt"
STATE_FILE = "lstm.json"
#: The default window is capped: longer windows cost time and rarely help a one-layer LSTM.
MAX_LOOKBACK = 336
#: Fewer training windows than this is not enough to learn anything: the fit stops with a
#: UserError instead.
MIN_TRAIN_WINDOWS = 10
#: Fewer calibration windows than this: one conformal quantile pooled over the horizon's steps.
MIN_CALIBRATION = 10
#: Training windows per epoch at most (a random draw each epoch; see the module's docstring).
MAX_EPOCH_WINDOWS = 512


class Split(NamedTuple):
    """Window indices of one fit, in time order. Window i reads values i .. i + lookback - 1 and
    predicts the next `horizon`, i + lookback .. i + lookback + horizon - 1."""

    train: range
    stop: range  # early stopping
    calibration: range  # conformal intervals


def split_windows(windows: int, horizon: int, val_fraction: float) -> Split:
    """Training, early-stopping and calibration windows out of `windows`, in time order.

    The last `val_fraction` of the windows (at least 2) are held out: the earlier half stops
    early, the later half (with the odd one) calibrates; the latest windows are the most like
    the forecast, and the calibration set sets the interval widths. Two windows less than
    `horizon` apart share targets, so `horizon - 1` windows are dropped before each held-out part:
    every value a stopping window predicts lies after everything a training window reads, and
    every value a calibration window predicts after everything a stopping window reads. Too few
    windows leave `train` short or empty; the caller checks its length.
    """
    n_held = max(2, math.ceil(val_fraction * windows))
    n_stop = n_held // 2
    gap = horizon - 1
    cal_start = max(0, windows - (n_held - n_stop))
    stop_end = max(0, cal_start - gap)
    stop_start = max(0, stop_end - n_stop)
    return Split(
        range(max(0, stop_start - gap)), range(stop_start, stop_end), range(cal_start, windows)
    )


class _Net(nn.Module):
    """LSTM over the window, then a linear map from its last hidden state to the horizon."""

    def __init__(self, hidden: int, layers: int, horizon: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, lookback) -> (batch, horizon)
        out, _ = self.lstm(x.unsqueeze(-1))
        return self.head(out[:, -1])


def _copy(net: nn.Module) -> dict[str, torch.Tensor]:
    """The weights as they are now (a state dict holds the live tensors, which training moves)."""
    return {name: tensor.detach().clone() for name, tensor in net.state_dict().items()}


class LSTMForecaster(Forecaster):
    """Direct multi-step LSTM with split-conformal intervals. Learned: `mean_`, `std_` (the
    scaler), `lookback_`, `net_`, `conformal_` (interval half-widths, one per step)."""

    name = "lstm"

    def __init__(
        self,
        freq: str,
        season: int,
        level: float = 0.8,
        config: LSTMConfig | dict[str, Any] | None = None,
        horizon: int = 30,
        seed: int = 42,
        progress: bool = False,
    ) -> None:
        super().__init__(freq, season, level)
        self.config = config
        self.horizon = horizon
        self.seed = seed
        self.progress = progress

    def _config(self) -> LSTMConfig:
        if self.config is None:
            return LSTMConfig()
        if isinstance(self.config, LSTMConfig):
            return self.config
        return LSTMConfig.model_validate(self.config)

    def params(self) -> dict[str, Any]:
        return {"config": self._config().model_dump(), "horizon": self.horizon, "seed": self.seed}

    def _new_net(self) -> _Net:
        """The network with initial weights drawn from `seed`; the caller's global generator
        is left as it was (`fork_rng` restores it)."""
        config = self._config()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return _Net(config.hidden, config.layers, self.horizon)

    # -- windows ---------------------------------------------------------------------------
    def _split(self, n: int, lookback: int) -> Split:
        """The windows of a series of n points (see `split_windows`)."""
        windows = max(0, n - lookback - self.horizon + 1)
        return split_windows(windows, self.horizon, self._config().val_fraction)

    def _lookback(self, n: int) -> int:
        """The configured window (default: two seasons or two horizons, at most 336), shortened
        to at most half of the series' usable length and until there are enough windows."""
        wanted = self._config().lookback or min(2 * max(self.season, self.horizon), MAX_LOOKBACK)
        lookback = max(2, min(wanted, (n - self.horizon + 1) // 2))
        while lookback > 2 and len(self._split(n, lookback).train) < MIN_TRAIN_WINDOWS:
            lookback -= 1
        if len(self._split(n, lookback).train) < MIN_TRAIN_WINDOWS:
            needed = n + 1
            while len(self._split(needed, 2).train) < MIN_TRAIN_WINDOWS:
                needed += 1
            raise UserError(
                f"lstm: {n} points are too few for a {self.horizon}-step horizon; it needs at "
                f"least {needed} (enough for {MIN_TRAIN_WINDOWS} training windows and the "
                "held-out ones) - use a shorter horizon or another model"
            )
        return lookback

    def _windows(self, z: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (windows, lookback) and targets (windows, horizon), relative to each window's
        last input value."""
        w = np.lib.stride_tricks.sliding_window_view(z, self.lookback_ + self.horizon)
        anchor = w[:, self.lookback_ - 1 : self.lookback_]
        x, y = w[:, : self.lookback_] - anchor, w[:, self.lookback_ :] - anchor
        return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)

    # -- fit -------------------------------------------------------------------------------
    def _fit(self, history: pd.DataFrame) -> None:
        config = self._config()
        values = history["y"].to_numpy(dtype=float)
        self.lookback_ = self._lookback(len(values))
        split = self._split(len(values), self.lookback_)
        n_train = len(split.train)
        # The scaler sees what the training windows read and nothing more: values only the
        # held-out windows see would otherwise shape the model their errors are meant to judge.
        seen = values[: n_train + self.lookback_ + self.horizon - 1]
        self.mean_ = float(seen.mean())
        # A flat series has std 0; any positive scale then maps it to zeros.
        self.std_ = float(seen.std()) or 1.0
        x, y = self._windows((values - self.mean_) / self.std_)
        x_train, y_train = x[:n_train], y[:n_train]
        stop = slice(split.stop.start, split.stop.stop)
        cal = slice(split.calibration.start, split.calibration.stop)

        net = self._new_net()
        generator = torch.Generator().manual_seed(self.seed)
        optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
        # Huber: quadratic (MSE) for errors under one standard deviation, linear beyond, so
        # the odd outlier in a real series does not dominate the gradient.
        loss_fn = nn.HuberLoss()
        best_loss, best_state, stale = math.inf, _copy(net), 0
        for _ in tqdm(
            range(config.epochs), desc="lstm", leave=False, disable=None if self.progress else True
        ):
            net.train()
            order = torch.randperm(n_train, generator=generator)[:MAX_EPOCH_WINDOWS]
            for batch in order.split(config.batch_size):
                optimiser.zero_grad()
                loss_fn(net(x_train[batch]), y_train[batch]).backward()
                optimiser.step()
            net.eval()
            with torch.inference_mode():
                loss = loss_fn(net(x[stop]), y[stop]).item()
            if loss < best_loss:
                best_loss, stale = loss, 0
                best_state = _copy(net)
            else:
                stale += 1
                if stale >= config.patience:
                    break
        net.load_state_dict(best_state)
        net.eval()
        self.net_ = net

        # Calibrated on windows that chose neither the weights nor the epoch (see the docstring).
        with torch.inference_mode():
            errors = (net(x[cal]) - y[cal]).abs().numpy().astype(float) * self.std_
        self.conformal_ = self._conformal(errors)

    def _conformal(self, errors: np.ndarray) -> np.ndarray:
        """Interval half-width per step from the calibration errors (n windows, horizon)."""
        n = len(errors)
        # The finite-sample quantile of split conformal; beyond 1 (n too small for the level)
        # the largest error is the best the data can say.
        q = min(1.0, math.ceil((n + 1) * self.level) / n)
        if n >= MIN_CALIBRATION:
            return np.quantile(errors, q, axis=0, method="higher")
        return np.full(self.horizon, np.quantile(errors, q, method="higher"))

    # -- predict ---------------------------------------------------------------------------
    def _predict(self, history: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
        steps = len(dates)
        if steps > self.horizon:
            raise ValueError(
                f"lstm: the model was trained for {self.horizon} steps ahead; "
                f"cannot forecast {steps} (refit with a longer horizon)"
            )
        z = (history["y"].to_numpy(dtype=float)[-self.lookback_ :] - self.mean_) / self.std_
        x = torch.as_tensor(z - z[-1], dtype=torch.float32).unsqueeze(0)
        with torch.inference_mode():
            out = self.net_(x)[0, :steps].numpy().astype(float)
        yhat = (out + z[-1]) * self.std_ + self.mean_
        width = self.conformal_[:steps]
        return pd.DataFrame({"yhat": yhat, "yhat_lower": yhat - width, "yhat_upper": yhat + width})

    # -- persistence -----------------------------------------------------------------------
    def _save(self, folder: Path) -> None:
        torch.save(self.net_.state_dict(), folder / WEIGHTS_FILE)
        state = {
            "mean": self.mean_, "std": self.std_, "lookback": self.lookback_,
            "conformal": self.conformal_.tolist(),
        }  # fmt: skip
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2))

    def _load(self, folder: Path) -> None:
        state = json.loads((folder / STATE_FILE).read_text())
        self.mean_, self.std_ = float(state["mean"]), float(state["std"])
        self.lookback_ = int(state["lookback"])
        self.conformal_ = np.asarray(state["conformal"], dtype=float)
        net = self._new_net()
        try:
            weights = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
            net.load_state_dict(weights)
        except (RuntimeError, pickle.UnpicklingError) as exc:  # torch's errors for a bad file
            message = f"{folder / WEIGHTS_FILE}: not this model's weights ({exc})"
            raise ArtifactError(message) from None
        self.net_ = net.eval()
