"""Benchmark: the churn API against the same model predicting the same rows in-process.

    python -m benchmarks.serve_churn [--model DIR] [--family xgboost] [--seconds 10]

Measures, with one uvicorn worker on 127.0.0.1 and the full response (calibrated probability,
decision, band, three reason codes):
- single-row `/predict` latency p50/p95/p99 at concurrency 1,
- requests/s at concurrency 16,
- rows/s for a 10,000-row `text/csv` batch to `/invocations`,
and the in-process figures for the same rows (the limit). Load comes from `wrk` (Debian's
`wrk` package) in its own process, so the client's cost is not the server's. With two or more
CPUs and `taskset`, the server (and the in-process run) are pinned to CPU 0 and wrk to CPU 1,
so that the scheduler moving them about does not add to the noise.

Without --model it trains one on generated data (with --family, only that family) in a
temporary store. Results go to benchmarks/results/serve_churn[_FAMILY].json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.measure import free_port, on_cpu, pinned, save, wait_ready, wrk


def train_model(root: Path, family: str | None) -> Path:
    from churn.config import ChurnConfig
    from churn.data import write_customers
    from churn.train import run
    from common.settings import Settings

    data = write_customers(root / "telco.csv", 7043, seed=42, progress=False)
    config = ChurnConfig(families=(family,)) if family else ChurnConfig()
    return run(data, config, Settings(artifacts_root=root / "artifacts", tracking=False))


def post_csv(url: str, body: bytes) -> float:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "text/csv"}, method="POST"
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = response.read()
    seconds = time.perf_counter() - start
    assert answer.count(b"\n") == body.count(b"\n"), "one answer line per input line"
    return seconds


def in_process(model: Path, rows: list[dict], csv_body: bytes, repeats: int) -> dict:
    """The limit: the same predictor on the same rows, no HTTP."""
    from churn.serve import REQUEST_SCHEMA, ChurnPredictor, CustomerRecord
    from common.schema import validate
    from common.serving.codecs import read_csv

    predictor = ChurnPredictor.from_artifact(model)
    record = CustomerRecord(**rows[0])
    single = []
    for _ in range(2000):
        start = time.perf_counter()
        predictor.predict_batch([record])
        single.append(time.perf_counter() - start)
    table = validate(read_csv(csv_body, REQUEST_SCHEMA, max_rows=10**6), REQUEST_SCHEMA)
    batch = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict_table(table)
        batch.append(time.perf_counter() - start)
    quantiles = statistics.quantiles(single, n=100)
    return {
        "family": predictor.model.family,
        "single_p50_ms": round(statistics.median(single) * 1e3, 3),
        "single_p99_ms": round(quantiles[98] * 1e3, 3),
        "batch_10k_rows_per_s": round(len(table) / statistics.median(batch)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="Artifact directory (default: train one).")
    parser.add_argument("--family", choices=["logistic", "xgboost", "lightgbm"])
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the load (Debian/Ubuntu: apt-get install wrk)")

    from churn.data import generate_customers
    from churn.schema import LABEL

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = args.model or train_model(workdir, args.family)
        rows_frame = generate_customers(10_000, seed=11).drop(columns=LABEL)
        csv_body = rows_frame.to_csv(index=False, header=False).encode()
        rows = json.loads(rows_frame.head(1).to_json(orient="records"))
        # This is a 2-core VM with noisy neighbours: medians of many repeats, not one run.
        with on_cpu(0):  # where the server will run
            limit = in_process(model, rows, csv_body, repeats=15)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "MLP_TRACKING": "false"}
        serve = [sys.executable, "-m", "churn", "serve", "--model", str(model),
                 "--port", str(port)]  # fmt: skip
        server = subprocess.Popen(
            pinned(serve, 0), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_ready(url)
            body, kind = json.dumps(rows[0]).encode(), "application/json"
            wrk(f"{url}/predict", body, kind, 1, 2, workdir)  # warm-up
            latency = wrk(f"{url}/predict", body, kind, 1, args.seconds, workdir)
            throughput = wrk(f"{url}/predict", body, kind, 16, args.seconds, workdir)
            with on_cpu(1):  # the client, like wrk, beside the server
                post_csv(url, csv_body)  # warm-up
                batch_s = statistics.median(post_csv(url, csv_body) for _ in range(15))
        finally:
            server.terminate()
            server.wait(timeout=30)

    csv_rows_per_s = round(10_000 / batch_s)
    results = {
        "model": str(model) if args.model else f"trained here ({limit['family']})",
        "in_process": limit,
        "api": {
            "single_row_c1": latency,
            "c16": throughput,
            "csv_10k_seconds": round(batch_s, 3),
            "csv_10k_rows_per_s": csv_rows_per_s,
            "csv_vs_in_process": round(csv_rows_per_s / limit["batch_10k_rows_per_s"], 3),
        },
        "goals": {"p50_ms": 1.5, "p99_ms": 3.0, "c16_requests_per_s": 2000, "csv_ratio": 0.55},
    }
    save(f"serve_churn_{limit['family']}", results)


if __name__ == "__main__":
    main()
