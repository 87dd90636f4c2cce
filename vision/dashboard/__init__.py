"""The vision model's Streamlit dashboard: `streamlit run vision/dashboard/app.py`.

`app.py` declares the pages; each page is one module beside it: `predict` (an image in, its
top classes and a Grad-CAM overlay out), `report` (how good the model is on its validation
images), `mistakes` (the wrong answers it was surest of) and `monitoring` (drift and alerts over
time). Predictions go through the same `VisionPredictor` the API serves, in-process, or through
the API itself when `API_URL` is set.
"""

from __future__ import annotations

from common.dashboard import load_predictor
from vision.serve import VisionPredictor

#: What a user without a model is told to run.
TRAIN_COMMAND = "make train-vision"


def vision_predictor() -> VisionPredictor:
    """The vision model to show (`MODEL_DIR`, else production, else latest), loaded once; with
    none, the page shows how to train one and stops."""
    return load_predictor(VisionPredictor, train_command=TRAIN_COMMAND)
