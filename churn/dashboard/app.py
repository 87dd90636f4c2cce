"""The churn dashboard's entry point: `streamlit run churn/dashboard/app.py`.

Streamlit runs this file from the top on every interaction. It only declares the pages and runs
the one the user chose; each page is a file beside this one that Streamlit runs as a script
(which is also how tests reach a page: `AppTest.switch_page("batch.py")`).

Environment:
    MODEL_DIR   an artifact directory to show (default: the store's production model, else
                its latest, under MLP_ARTIFACTS_ROOT)
    API_URL     the churn API, e.g. http://127.0.0.1:8080: what-if and batch predictions are
                then requested from it rather than computed in this process
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from common.dashboard import run_pages

PAGES = Path(__file__).parent


def main() -> None:
    run_pages("Churn model", ":material/insights:", [
        st.Page(PAGES / "report.py", title="Model report", icon=":material/insights:",
                default=True),
        st.Page(PAGES / "what_if.py", title="What-if", icon=":material/person_search:"),
        st.Page(PAGES / "batch.py", title="Batch scoring", icon=":material/table_view:"),
        st.Page(PAGES / "threshold.py", title="Threshold explorer", icon=":material/tune:"),
        st.Page(PAGES / "monitoring.py", title="Monitoring", icon=":material/monitor_heart:"),
    ])  # fmt: skip


# Streamlit runs this file as `__main__`; importing it (e.g. to read its docstring) does nothing.
if __name__ == "__main__":
    main()
