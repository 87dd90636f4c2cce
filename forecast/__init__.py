"""Time-series forecasting: Prophet, an LSTM and honest baselines; backtested, served, watched."""
