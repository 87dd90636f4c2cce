"""The shared layer of the three projects: settings, ETL and validation, artifacts, tracking and
the `Predictor` contract. Nothing here knows about churn, images or time series."""
