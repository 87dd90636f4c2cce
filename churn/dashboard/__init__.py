"""The churn model's Streamlit dashboard: `streamlit run churn/dashboard/app.py`.

`app.py` declares the pages; each page is one module beside it: `report` (how good the model
is), `what_if` (one customer, edited by hand), `batch` (a CSV of customers scored),
`threshold` (what each decision threshold costs) and `monitoring` (drift and alerts over time).
Predictions go through the same
`ChurnPredictor` the API serves, in-process, or through the API itself when `API_URL` is set.
"""

from __future__ import annotations

from churn.serve import ChurnPredictor
from common.dashboard import load_predictor

#: What a user without a model is told to run.
TRAIN_COMMAND = "make train-churn"


def churn_predictor() -> ChurnPredictor:
    """The churn model to show (`MODEL_DIR`, else production, else latest), loaded once; with
    none, the page shows how to train one and stops."""
    return load_predictor(ChurnPredictor, train_command=TRAIN_COMMAND)
