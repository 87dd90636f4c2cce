"""Predict page: one image in, the model's top classes and a Grad-CAM overlay out.

Upload a photo (JPEG, PNG, WebP, GIF, BMP or TIFF), or pick an example (a shape drawn by
`vision.shapes.render`, so the page works with no file at hand). The page shows the top class
and its calibrated confidence, the top-k probabilities as bars, and the image beside its
Grad-CAM overlay: the regions that pushed the model towards its answer. With `API_URL` set the
image goes to the API's `/predict` as a multipart upload; otherwise the same `VisionPredictor`
predicts in-process. A file that is no usable image (empty, not an image, truncated, too large,
too small) gets an error saying which, never a traceback.

The prediction and example functions are plain functions of bytes, so tests call them directly
as well as through the page.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image
from pydantic import ValidationError
from streamlit.runtime.uploaded_file_manager import UploadedFile

from common.dashboard import ApiCallError, api_url, post_files, show_api_error
from common.errors import InputError
from vision.dashboard import vision_predictor
from vision.images import decode
from vision.serve import ImagePrediction, VisionPredictor
from vision.shapes import SHAPES
from vision.shapes import render as render_shape

#: What the uploader accepts: the formats `vision.images.decode` reads.
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
#: Widget keys are "predict.<name>", so tests (and session state) can address each one.
FORM = "predict"
EXAMPLE_SIZE = 96  # the built-in data's size (`make data-vision`)
EXAMPLE_SEED = 2024  # fixed: the same example every run, so a user can compare settings
SHOWN_SIDE = 512  # the picture shown is at most this many pixels on a side
MAX_TOP_K = 1000  # ImageRecord's own bound, when the classes are not known here (API mode)
LISTED_CLASSES = 12  # the caption names this many classes at most (an ImageNet model has 1000)


# -- predicting --------------------------------------------------------------------------------


def predict_in_process(
    predictor: VisionPredictor, data: bytes, *, top_k: int = 3, gradcam: bool = True
) -> ImagePrediction:
    """One prediction by the in-process model; InputError naming the problem for a bad image."""
    record = VisionPredictor.record_from_bytes(data, {"top_k": top_k, "gradcam": gradcam})
    return predictor.predict(record)


def predict_with_api(
    url: str, data: bytes, name: str, *, top_k: int = 3, gradcam: bool = True
) -> ImagePrediction:
    """One prediction by the API's `/predict` (a multipart upload, as `curl -F file=@...`);
    ApiCallError with the API's message for a bad image or an unreachable API."""
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    answer = post_files(
        url, "/predict", {"file": (name, data, content_type)}, {"top_k": top_k, "gradcam": gradcam}
    )
    return ImagePrediction.model_validate(answer)


# -- examples ----------------------------------------------------------------------------------


def example_names(classes: Sequence[str] | None) -> list[str]:
    """The shapes to offer as examples: those among the model's classes, or every shape when
    the classes are unknown (API mode) or none of them is a shape (a model of photos)."""
    known = [name for name in SHAPES if classes is None or name in classes]
    return known or list(SHAPES)


@st.cache_data(show_spinner=False)
def example_png(shape: str, size: int = EXAMPLE_SIZE, seed: int = EXAMPLE_SEED) -> bytes:
    """One rendered shape as PNG bytes, drawn like the built-in data (same size, same noise)."""
    image = render_shape(shape, size, np.random.default_rng([seed, SHAPES.index(shape)]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- showing -----------------------------------------------------------------------------------


def shown_image(data: bytes) -> np.ndarray:
    """The image as the model read it (upright, RGB), at most SHOWN_SIDE pixels on a side: the
    browser cannot show every format the model reads (TIFF), nor should it get 40 megapixels."""
    picture = Image.fromarray(decode(data).permute(1, 2, 0).numpy())
    picture.thumbnail((SHOWN_SIDE, SHOWN_SIDE))
    return np.asarray(picture)


def top_k_frame(prediction: ImagePrediction) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "class": [score.label for score in prediction.top_k],
            "probability": [score.probability for score in prediction.top_k],
        }
    )


def top_k_chart(prediction: ImagePrediction) -> alt.Chart:
    """The top-k classes as horizontal bars, most probable first."""
    return (
        alt.Chart(top_k_frame(prediction), title=f"Top {len(prediction.top_k)} classes")
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", title="calibrated probability",
                    scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            y=alt.Y("class:N", sort=None, title=None, axis=alt.Axis(labelLimit=300)),
            tooltip=["class", alt.Tooltip("probability:Q", format=".1%")],
        )
    )  # fmt: skip


def show_prediction(prediction: ImagePrediction, data: bytes, name: str) -> None:
    label, confidence, size = st.columns(3)
    label.metric("Prediction", prediction.label)
    confidence.metric(
        "Confidence",
        f"{prediction.confidence:.1%}",
        help="Calibrated probability (temperature scaling): of the images the model answers "
        "with about 80% confidence, about 80% are right.",
    )
    size.metric("Image size", f"{prediction.width} x {prediction.height} px")

    panels = st.columns(3 if prediction.gradcam_png else 2)
    panels[0].image(shown_image(data), caption=name, width="stretch")
    if prediction.gradcam_png:
        panels[1].image(
            base64.b64decode(prediction.gradcam_png),
            caption=f"Grad-CAM for “{prediction.label}”: warm colours mark what pushed the "
            "model towards it, on the centre crop it saw",
            width="stretch",
        )
    panels[-1].altair_chart(top_k_chart(prediction), width="stretch")


# -- the page ----------------------------------------------------------------------------------


def listed(names: Sequence[str], most: int = LISTED_CLASSES) -> str:
    """Names for a sentence: all of a few, the first `most` and a count of the rest."""
    shown = ", ".join(names[:most])
    return f"{shown} and {len(names) - most} more" if len(names) > most else shown


def chosen_image(upload: UploadedFile | None, example: str | None) -> tuple[str, bytes] | None:
    """(file name, bytes) of the upload if any, else of the example chosen, else None."""
    if upload is not None:
        return upload.name, upload.getvalue()
    if example is not None:
        return f"{example}.png", example_png(example)
    return None


def render() -> None:
    st.title("Predict")
    url = api_url()
    # Predicting in-process needs a model: say so before an image is chosen, not after.
    predictor = None if url else vision_predictor()
    classes = predictor.classes if predictor is not None else None
    source = f"from the API at {url}" if url else "computed in-process"
    known = f" It knows {len(classes)} classes: {listed(classes)}." if classes else ""
    st.caption(f"Upload an image or try an example. Predictions are {source}.{known}")

    image_col, options_col = st.columns([2, 1])
    upload = image_col.file_uploader("Image", type=UPLOAD_TYPES, key=f"{FORM}.upload")
    example = options_col.selectbox(
        "…or try an example",
        example_names(classes),
        index=None,
        placeholder="a rendered shape",
        key=f"{FORM}.example",
        help="A shape drawn like the built-in training data. Used when no file is uploaded.",
    )
    top = len(classes) if classes else MAX_TOP_K
    top_k = options_col.number_input(
        "Classes to show (top k)", min_value=1, max_value=top, value=min(3, top), step=1,
        key=f"{FORM}.top_k",
    )  # fmt: skip
    gradcam = options_col.checkbox(
        "Grad-CAM overlay", value=True, key=f"{FORM}.gradcam",
        help="Where the model looked: costs about 3x a plain prediction.",
    )  # fmt: skip

    chosen = chosen_image(upload, example)
    if chosen is None:
        return
    name, data = chosen
    try:
        if url is not None:
            prediction = predict_with_api(url, data, name, top_k=int(top_k), gradcam=gradcam)
        else:
            assert predictor is not None, "in-process predictions need a predictor"
            prediction = predict_in_process(predictor, data, top_k=int(top_k), gradcam=gradcam)
    except InputError as exc:
        st.error(f"Cannot classify {name}: {exc.message}")
        return
    except ApiCallError as exc:
        show_api_error(exc)
        return
    except ValidationError as exc:  # an option in-process, or an answer of odd shape
        st.error(f"No prediction for {name}: {exc}")
        return
    show_prediction(prediction, data, name)


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
