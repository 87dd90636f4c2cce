"""Mistakes page: the validation images the model got wrong with the highest confidence.

Training saves them in the artifact's `mistakes.json` (the image's path, its true and predicted
class, the confidence and the probability given to the true class), most confident first. They
are where to look first: a mislabelled image, two classes that look alike, a background the
model learnt instead of the object. The gallery reads each image from the absolute path
training saved; if the data has moved since, the page says which images are missing, and if all
are, shows `plots/mistakes.png`, the same gallery drawn at training time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from common.errors import UserError
from vision.dashboard import TRAIN_COMMAND, vision_predictor
from vision.images import decode

MISTAKES_FILE = "mistakes.json"
COLUMNS = 4
THUMBNAIL_SIDE = 256


@dataclass(frozen=True)
class Mistake:
    """One confident wrong answer on a validation image."""

    path: Path
    true: str
    predicted: str
    confidence: float  # the probability of the (wrong) predicted class
    true_probability: float

    @property
    def title(self) -> str:
        return f"{self.true} → {self.predicted} ({self.confidence:.0%})"


def read_mistakes(artifact: Path) -> list[Mistake] | None:
    """The artifact's mistakes, most confident first; None if it saved none (no file)."""
    file = artifact / MISTAKES_FILE
    if not file.is_file():
        return None
    rows: list[dict[str, Any]] = json.loads(file.read_text())
    return [
        Mistake(Path(r["path"]), r["true"], r["predicted"], float(r["confidence"]),
                float(r["true_probability"]))
        for r in rows
    ]  # fmt: skip


def thumbnail(path: Path) -> np.ndarray | None:
    """The image at `path`, upright and RGB, at most THUMBNAIL_SIDE pixels on a side; None if
    the file is gone or no longer a readable image."""
    try:
        picture = Image.fromarray(decode(path.read_bytes()).permute(1, 2, 0).numpy())
    except (OSError, UserError):  # missing, unreadable, or not an image any more
        return None
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return np.asarray(picture)


def mistakes_frame(mistakes: list[Mistake]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "true": [m.true for m in mistakes],
            "predicted": [m.predicted for m in mistakes],
            "confidence": [m.confidence for m in mistakes],
            "p(true class)": [m.true_probability for m in mistakes],
            "file": [str(m.path) for m in mistakes],
        }
    )


def render() -> None:
    predictor = vision_predictor()
    st.title("Mistakes")
    mistakes = read_mistakes(predictor.path)
    if mistakes is None:
        st.info(
            f"This artifact has no `{MISTAKES_FILE}`, so there is no gallery of mistakes to "
            f"show. Retrain with `{TRAIN_COMMAND}` to get one."
        )
        return
    n_images = predictor.manifest.metrics.get("val", {}).get("n_images")
    on = f"the {n_images:,} validation images" if n_images else "the validation images"
    if not mistakes:
        st.success(f"No mistakes on {on}: nothing to show.")
        return

    st.caption(
        f"The {len(mistakes)} wrong answers on {on} that the model was surest of, most "
        "confident first: true class → predicted class (its confidence)."
    )
    data = predictor.manifest.extra.get("data")
    pictures = [thumbnail(m.path) for m in mistakes]
    missing = [m for m, p in zip(mistakes, pictures, strict=True) if p is None]
    if missing:
        show_missing(predictor.path, data, missing, len(mistakes))
    if len(missing) < len(mistakes):
        show_gallery(mistakes, pictures)

    st.subheader("As a table")
    st.dataframe(
        mistakes_frame(mistakes),
        hide_index=True,
        width="stretch",
        column_config={
            name: st.column_config.ProgressColumn(name, format="percent", min_value=0.0,
                                                  max_value=1.0)
            for name in ("confidence", "p(true class)")
        },
    )  # fmt: skip


def show_missing(artifact: Path, data: str | None, missing: list[Mistake], total: int) -> None:
    """Say which images cannot be read, and fall back on the gallery saved at training time.
    `data` is the image folder the model was trained on, as the manifest recorded it."""
    restore = f" Restore `{data}` to see them here." if data else ""
    which = "None" if len(missing) == total else f"{len(missing)}"
    verb = "can" if len(missing) == total else "cannot"
    st.warning(
        f"{which} of the {total} images {verb} be read where training found them (e.g. "
        f"`{missing[0].path}`): the data has moved or been deleted since.{restore}"
    )
    saved = artifact / "plots" / "mistakes.png"
    if len(missing) == total and saved.is_file():
        st.image(str(saved), caption="plots/mistakes.png: the gallery drawn at training time")


def show_gallery(mistakes: list[Mistake], pictures: list[np.ndarray | None]) -> None:
    """A grid, COLUMNS wide: each image titled true → predicted (confidence)."""
    for start in range(0, len(mistakes), COLUMNS):
        row = zip(st.columns(COLUMNS), mistakes[start : start + COLUMNS],
                  pictures[start : start + COLUMNS], strict=False)  # fmt: skip
        for column, mistake, picture in row:
            with column:
                if picture is not None:
                    st.image(picture, width="stretch")
                else:
                    st.caption(":material/hide_image: file missing")
                st.caption(
                    f"**{mistake.title}**  \n"
                    f"p({mistake.true}) = {mistake.true_probability:.0%} · `{mistake.path.name}`"
                )


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
