"""The forecast dashboard's entry point: `streamlit run forecast/dashboard/app.py`.

Streamlit runs this file from the top on every interaction. It only declares the pages and runs
the one the user chose; each page is a file beside this one that Streamlit runs as a script
(which is also how tests reach a page: `AppTest.switch_page("backtest.py")`). No page file may
be named after a package (`forecast.py`, `common.py`): Streamlit puts this folder first on
`sys.path`, where such a file would hide the package from every import.

Environment:
    MODEL_DIR   an artifact directory to show (default: the store's production model, else
                its latest, under MLP_ARTIFACTS_ROOT)
    API_URL     the forecast API, e.g. http://127.0.0.1:8082: forecasts are then requested
                from it rather than computed in this process
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from common.dashboard import run_pages

PAGES = Path(__file__).parent


def main() -> None:
    run_pages("Forecast model", ":material/timeline:", [
        st.Page(PAGES / "predict.py", title="Forecast", icon=":material/timeline:",
                default=True),
        st.Page(PAGES / "backtest.py", title="Backtest", icon=":material/insights:"),
        st.Page(PAGES / "monitoring.py", title="Monitoring", icon=":material/monitor_heart:"),
    ])  # fmt: skip


# Streamlit runs this file as `__main__`; importing it (e.g. to read its docstring) does nothing.
if __name__ == "__main__":
    main()
