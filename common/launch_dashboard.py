"""Run a project's Streamlit dashboard by project name: the dashboard image's entry point.

    python -m common.launch_dashboard churn [streamlit options ...]
    DASHBOARD_PROJECT=vision python -m common.launch_dashboard [streamlit options ...]

Streamlit runs a file, not a module, and a dashboard's pages are files beside its `app.py`; in an
image the project is installed into site-packages, so this finds `<project>/dashboard/app.py`
wherever the package is and replaces itself with `streamlit run` on it (Streamlit becomes the
process that receives SIGTERM).
"""

from __future__ import annotations

import importlib.util
import os
import sys

PROJECTS = ("churn", "vision", "forecast")


def dashboard_file(project: str) -> str:
    """The path of `project`'s dashboard entry point, or ValueError naming what is wrong."""
    if project not in PROJECTS:
        raise ValueError(f"unknown project {project!r}: one of {', '.join(PROJECTS)}")
    spec = importlib.util.find_spec(f"{project}.dashboard.app")
    if spec is None or spec.origin is None:
        raise ValueError(f"{project}.dashboard.app is not installed")
    return spec.origin


def main(argv: list[str]) -> int:
    project = os.environ.get("DASHBOARD_PROJECT", "")
    if argv and not argv[0].startswith("-"):
        project, argv = argv[0], argv[1:]
    try:
        path = dashboard_file(project)
    except ValueError as exc:
        print(f"error: {exc} (give it as the first argument or in DASHBOARD_PROJECT)",
              file=sys.stderr)  # fmt: skip
        return 2
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", path, *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
