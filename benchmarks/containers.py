"""The service images, built and started for real: build time, image size, cold start.

    python -m benchmarks.containers [--service churn vision forecast] [--engine podman]

For each service it trains nothing: it takes the store's serving model (`production`, else
`latest`; train one first, e.g. `make train-churn`), builds `docker/<service>.Dockerfile` with
that model baked in, starts the image with `serve` as SageMaker would, and times the first 200
from `/ping`. Results go to benchmarks/results/containers.json.

The helpers here (`Engine`, `build_context`, `Container`) are also what tests/docker/images.py
drives, so the figures and the tests exercise the same commands. The engine is `docker` unless
`CONTAINER_ENGINE` names another (`podman`), as in the Makefile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("churn", "vision", "forecast")


@dataclass
class Engine:
    """A container engine's command line (docker or podman)."""

    name: str

    @classmethod
    def find(cls) -> Engine | None:
        """CONTAINER_ENGINE if set, else podman or docker, whichever is on PATH and answers."""
        wanted = os.environ.get("CONTAINER_ENGINE")
        for name in [wanted] if wanted else ["podman", "docker"]:
            if shutil.which(name) is not None:
                return cls(name)
        return None

    def run(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        done = subprocess.run([self.name, *args], capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args[:3])} failed:\n{done.stderr[-3000:]}")
        return done.stdout.strip()

    def usable(self) -> str | None:
        """None if the engine can run containers here, else why not."""
        try:
            self.run("info", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return f"{self.name} is installed but not usable: {exc}"
        return None

    def build(self, dockerfile: str, context: Path, tag: str, args: dict[str, str]) -> float:
        """Build `tag`; returns the seconds it took."""
        command = ["build", "-f", str(context / dockerfile), "-t", tag, "--network=host"]
        command += [f"--build-arg={k}={v}" for k, v in args.items()]
        if self.name == "podman":
            # Docker's image format: OCI's has no HEALTHCHECK. No intermediate images: a torch
            # image's builder stage alone is ~6 GB of disk.
            command += ["--format=docker", "--layers=false"]
            # A podman build can mount a host folder: uv's cache, so that torch and the rest are
            # copied from disk instead of downloaded again (the Dockerfiles read UV_CACHE_DIR).
            cache = uv_cache_dir()
            if cache is not None:
                command += [f"--volume={cache}:/host-uv-cache",
                            "--build-arg=UV_CACHE_DIR=/host-uv-cache"]  # fmt: skip
        start = time.perf_counter()
        self.run(*command, str(context), timeout=1800)
        return time.perf_counter() - start

    def image_bytes(self, tag: str) -> int:
        return int(self.run("image", "inspect", tag, "--format", "{{.Size}}"))


def uv_cache_dir() -> str | None:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        return None
    done = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True)
    return done.stdout.strip() or None


def build_context(into: Path, projects: tuple[str, ...], model: Path | None) -> Path:
    """A build context holding what the Dockerfiles copy: code, pins, and the model (if any)
    at build/model, readable by the image's non-root user."""
    into.mkdir(parents=True, exist_ok=True)
    for name in ["pyproject.toml", "constraints.txt", "README.md", ".dockerignore"]:
        shutil.copy2(REPO / name, into / name)
    for folder in ["common", *projects, "docker"]:
        shutil.copytree(REPO / folder, into / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "k8s"))  # fmt: skip
    if model is not None:
        shutil.copytree(model.resolve(), into / "build" / "model", symlinks=False)
    return into


def readable_copy(model: Path, into: Path) -> Path:
    """`model` copied where a container's non-root user can read it (pytest's tmp dirs are 0700)."""
    target = into / "model"
    shutil.copytree(model.resolve(), target)
    for path in [into, *target.rglob("*"), target]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


@dataclass
class Container:
    """A running container of `image`, on the host network, answering on `port`; `health` is
    the path that answers 200 once it is ready."""

    engine: Engine
    image: str
    port: int
    volumes: list[str] = field(default_factory=list)
    health: str = "/ping"
    name: str = field(default_factory=lambda: f"mlp-test-{os.getpid()}-{time.monotonic_ns()}")
    started: float = 0.0

    def start(self, *command: str) -> None:
        # A read-only root with a writable /tmp, as docker/k8s runs them: nothing may write
        # anywhere else (the images point HOME and the libraries' caches at /tmp).
        args = ["run", "-d", "--name", self.name, "--network=host", "--read-only",
                "--tmpfs=/tmp", "-e", f"SAGEMAKER_BIND_TO_PORT={self.port}"]  # fmt: skip
        for volume in self.volumes:
            args += ["-v", volume]
        self.started = time.perf_counter()
        self.engine.run(*args, self.image, *command)

    def port_in_use(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180) -> float:
        """Seconds from `start` to the first 200 from `health`; fails with the container's log."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}{self.health}", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except (urllib.error.URLError, OSError):
                pass
            state = self.engine.run("inspect", "-f", "{{.State.Running}}", self.name, check=False)
            if state != "true":
                break
            time.sleep(0.2)
        raise RuntimeError(f"no 200 from {self.health}; log:\n{self.logs()}")

    def logs(self) -> str:
        done = subprocess.run([self.engine.name, "logs", "--tail", "40", self.name],
                              capture_output=True, text=True)  # fmt: skip
        return done.stdout + done.stderr

    def stop(self, timeout: int = 20) -> tuple[int, float]:
        """SIGTERM, then (after `timeout`) SIGKILL: the exit code and the seconds it took."""
        start = time.perf_counter()
        self.engine.run("stop", "-t", str(timeout), self.name, timeout=timeout + 30)
        seconds = time.perf_counter() - start
        code = self.engine.run("inspect", "-f", "{{.State.ExitCode}}", self.name)
        return int(code), seconds

    def remove(self) -> None:
        self.engine.run("rm", "-f", self.name, check=False)


def measure(engine: Engine, service: str, port: int) -> dict[str, float]:
    from common.artifacts import ArtifactStore
    from common.settings import get_settings

    model = ArtifactStore(get_settings().artifacts_root, service).resolve_serving(None)
    tag = f"localhost/ml-portfolio/{service}-api:bench"
    with tempfile.TemporaryDirectory() as tmp:
        context = build_context(Path(tmp), (service,), model)
        args = {"MODEL": "build/model"}
        if "TORCH_INDEX_URL" in os.environ:
            args["TORCH_INDEX_URL"] = os.environ["TORCH_INDEX_URL"]
        build_s = engine.build(f"docker/{service}.Dockerfile", context, tag, args)
    container = Container(engine, tag, port)
    try:
        container.start("serve")
        cold_start_s = container.wait_ready()
        exit_code, stop_s = container.stop()
    finally:
        container.remove()
    size = engine.image_bytes(tag)
    engine.run("rmi", "-f", tag, check=False)
    return {"build_s": round(build_s, 1), "image_mb": round(size / 1e6),
            "cold_start_s": round(cold_start_s, 2), "sigterm_exit_code": exit_code,
            "sigterm_s": round(stop_s, 2)}  # fmt: skip


def main() -> None:
    from benchmarks.measure import free_port, save

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", nargs="+", choices=SERVICES, default=list(SERVICES))
    args = parser.parse_args()
    engine = Engine.find()
    if engine is None or (problem := engine.usable()) is not None:
        raise SystemExit(problem if engine else "neither podman nor docker is installed")
    results = {s: measure(engine, s, free_port()) for s in args.service}
    save("containers", {"engine": engine.name, "services": results})


if __name__ == "__main__":
    main()
