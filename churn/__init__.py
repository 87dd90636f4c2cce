"""Customer churn: Telco data → calibrated gradient-boosted model → explanations."""
