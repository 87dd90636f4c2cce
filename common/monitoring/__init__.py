"""Monitoring shared by every project: what the training data looked like, how far new data has
moved from it, how well the model is (or is estimated to be) doing, and alerts when that matters.

- `profile`: the reference profile an artifact stores at training time.
- `drift`: PSI and a statistical test per feature, and for the model's score (scipy).
- `performance`: realised metrics with labels; estimated ones without (CBPE).
- `alerts` and `sinks`: YAML rules with consecutive windows, dedupe and resolve; log, JSON-lines
  and webhook (Slack-compatible) delivery.
- `report`: one monitoring run written as JSON and HTML.
- `live`: the rolling window a running service keeps, exposed as Prometheus gauges.
"""
