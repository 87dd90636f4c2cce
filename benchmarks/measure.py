"""Helpers shared by the benchmark scripts: timing a command and recording its peak memory, and
running a server under load (CPU pinning, free ports, readiness)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Measurement:
    command: str
    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str = ""


def measure(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measurement:
    """Run `cmd`, returning its wall time, the peak RSS of its largest process and its stdout.

    `os.wait4` reports the child's own resource use, so the peak is that of the command (the
    largest of its processes), not of this script.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.PIPE, text=True
    )
    stdout = proc.stdout.read() if proc.stdout else ""  # until the command closes it (exits)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return Measurement(
        command=" ".join(cmd),
        wall_s=round(wall, 2),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        returncode=os.waitstatus_to_exitcode(status),
        stdout=stdout.strip(),
    )


def save(name: str, payload: dict) -> Path:
    """Write results with the machine they were measured on, and print them."""
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "benchmark": name,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        **payload,
    }  # fmt: skip
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=lambda o: asdict(o)))
    print(json.dumps(payload, indent=2, default=lambda o: asdict(o)))
    return path


# -- servers under load: shared by the API benchmarks ---------------------------------------


def pinned(cmd: list[str], cpu: int) -> list[str]:
    """`cmd` pinned to one CPU, where the machine has two and `taskset` exists."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


@contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run this process's block on one CPU (where the machine has two), then let it go."""
    before = os.sched_getaffinity(0)
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready in {timeout:.0f} s")


# wrk prints its own latency histogram; this script asks for the percentiles the issues use.
# The body is read from a file, byte for byte (a Lua long string would rewrite line ends).
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
local file = assert(io.open("{body_path}", "rb"))
wrk.body = file:read("*all")
file:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "seconds": %.3f, "errors": %d, "non_2xx": %d, '
    .. '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f}}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3))
end
"""


def wrk(url: str, body: bytes, content_type: str, connections: int, seconds: float,
        workdir: Path) -> dict:  # fmt: skip
    """POST `body` to `url` with `wrk` (pinned to CPU 1) for `seconds` over `connections`
    keep-alive connections: its latency percentiles and rate. Any failure stops it."""
    body_path = workdir / "wrk-body"
    body_path.write_bytes(body)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.format(content_type=content_type, body_path=body_path))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    out = subprocess.run(pinned(command, 1), capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["requests_per_s"] = round(result["requests"] / result["seconds"], 1)
    if result["errors"] or result["non_2xx"]:
        raise RuntimeError(f"wrk saw failures: {result}")
    return result


def client_p50(port: int, body: bytes, content_type: str, seconds: float,
               path: str = "/predict") -> float:  # fmt: skip
    """p50 latency in ms of POSTing `body` over one keep-alive connection for `seconds` (at
    least 50 requests; the first 10 are warm-up and left out). Anything but a 200 stops it."""
    client = KeepAliveClient(port, path)
    request = client.request_bytes(body, content_type)
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(samples) < 50:
        samples.append(client.post(request))
    client.close()
    return round(statistics.median(samples[10:]) * 1e3, 3)


class KeepAliveClient:
    """POSTs over one keep-alive HTTP/1.1 connection, on a raw socket, timing each request.

    Unlike wrk, which runs for whole seconds, it can send a block of a few dozen requests
    between other work (see vision_api). On a server that answers at once its p50 is ~0.01 ms
    above wrk's here (0.126 vs 0.115 ms), against ~0.15 ms for http.client. It expects what
    uvicorn sends: a Content-Length on every response, no chunked bodies. `client_p50` is it
    run for some seconds."""

    def __init__(self, port: int, path: str = "/predict") -> None:
        self.port, self.path = port, path
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray(1 << 20)

    def request_bytes(self, body: bytes, content_type: str) -> bytes:
        head = (f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
        return head.encode("latin-1") + body

    def post(self, request: bytes) -> float:
        """Send one request built by `request_bytes`; seconds until the whole answer is in.
        Anything but a 200 stops it."""
        view = memoryview(self.buffer)
        start = time.perf_counter()
        self.sock.sendall(request)
        received = 0
        end_of_head = -1
        while end_of_head < 0:
            received += self._receive(view[received:])
            end_of_head = self.buffer.find(b"\r\n\r\n", 0, received)
        head = bytes(self.buffer[:end_of_head]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"an answer without Content-Length: {head[:300]!r}")
        length = int(head[at + 17 :].split(b"\r\n", 1)[0])
        if end_of_head + 4 + length > len(self.buffer):  # a big answer: room for all of it
            view.release()
            self.buffer.extend(bytes(end_of_head + 4 + length - len(self.buffer)))
            view = memoryview(self.buffer)
        while received < end_of_head + 4 + length:
            received += self._receive(view[received:])
        seconds = time.perf_counter() - start
        if not head.startswith(b"http/1.1 200"):
            raise RuntimeError(f"{self.path} answered {bytes(self.buffer[:received])[:300]!r}")
        return seconds

    def _receive(self, into: memoryview) -> int:
        count = self.sock.recv_into(into)
        if count == 0:
            raise RuntimeError("the server closed the connection")
        return count

    def close(self) -> None:
        self.sock.close()
