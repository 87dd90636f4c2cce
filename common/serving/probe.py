"""The containers' HEALTHCHECK: exit 0 when a local HTTP endpoint answers 200, else 1.

    python -m common.serving.probe                 # the model API: /ping on its own port
    python -m common.serving.probe URL             # anything else, e.g. a dashboard's health

Python rather than curl: the slim base image has no curl, and installing it for a probe would
add a package (and its CVEs) to every image. The API's port is read the way the service reads
it (`SAGEMAKER_BIND_TO_PORT`, else 8080), so the probe follows a moved port.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from common.settings import ServeSettings


def probe(url: str, timeout: float = 3.0) -> str | None:
    """None if `url` answers 200, else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:  # 503 while the model loads
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def main(argv: list[str]) -> int:
    url = argv[0] if argv else f"http://127.0.0.1:{ServeSettings().port}/ping"
    problem = probe(url)
    if problem is not None:
        print(f"unhealthy: GET {url}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
