"""The serving layer, written once for every project: give `create_app` a Predictor class and
get a FastAPI app with health and readiness probes, `/predict`, SageMaker's `/ping` and
`/invocations`, the Open Inference Protocol (v2) for tabular models, Prometheus `/metrics`,
JSON logs with request ids, and one error shape. See `app.py` for where to start reading.
"""
