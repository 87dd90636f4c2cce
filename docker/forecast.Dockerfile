# syntax=docker/dockerfile:1
# The forecast API: Prophet, ETS, LSTM and baselines per series (FastAPI,
# SageMaker-compatible). Build from the repository root:
#
#   docker build -f docker/forecast.Dockerfile -t ml-portfolio/forecast-api .
#   make docker-build-forecast [MODEL=DIR|ALIAS|VERSION]   # the same, serving model baked in
#
# Run with a model mounted at /opt/ml/model (SageMaker's layout; not needed if one is baked in):
#
#   docker run -p 8080:8080 -v "$(python -m common.deploy path forecast):/opt/ml/model:ro" \
#       ml-portfolio/forecast-api serve
#
# torch (the LSTM) comes from PyPI unless TORCH_INDEX_URL names another index (below).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
# uv installs ~10x faster than pip and reads only what it is told (no machine-wide pip config),
# so the pins in constraints.txt decide every version. Copies, not links: the cache is a mount.
# The system's certificates, not uv's bundled ones, so that a company's TLS proxy works.
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS=1
# uv's cache: a cache mount by default. A builder that can mount a host folder into the build
# (podman build --volume) may point this there to reuse the host's downloads (the tests do).
ARG UV_CACHE_DIR=/root/.cache/uv
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && uv venv /opt/venv --python /usr/local/bin/python
WORKDIR /src
# Dependencies first, from the pins alone: editing the code does not reinstall them.
COPY pyproject.toml constraints.txt README.md ./
# By default torch comes from PyPI with the rest, the build these pins were resolved against
# (with ~5 GB of CUDA libraries a CPU service never loads). For a ~200 MB image, pass PyTorch's
# CPU-only wheel index (the --index-url PyTorch's install selector shows for CPU) as
# TORCH_INDEX_URL: torch is then installed from it first, and the next step finds the pinned
# version there (2.13.0+cpu satisfies ==2.13.0) and leaves it. A CUDA index suits a GPU host.
# The repository names no package index itself: which one to trust is the builder's choice.
ARG TORCH_INDEX_URL=
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ -n "$TORCH_INDEX_URL" ]; then \
        grep -E '^torch==' constraints.txt > /tmp/torch.txt \
        && uv pip install --python /opt/venv/bin/python --index-url "$TORCH_INDEX_URL" \
            -r /tmp/torch.txt; \
    fi
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/venv/bin/python -c constraints.txt \
        -r pyproject.toml --extra forecast --extra serve
COPY common ./common
COPY forecast ./forecast
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/venv/bin/python --no-deps .

FROM ${PYTHON_IMAGE}
# SageMaker sets SAGEMAKER_BIND_TO_PORT only for images that declare they honour it.
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      org.opencontainers.image.title="forecast-api" \
      org.opencontainers.image.description="Forecasts with intervals per series over HTTP"
# Prophet, statsmodels and torch load the GNU OpenMP runtime, which the slim image leaves
# out. Debian's package versions are not pinned (DL3008): the security archive replaces them,
# and a pin would break the build on the next update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
# The model: docker/model (a README, so a model must be mounted) unless MODEL names an artifact
# in the build context. Owned by root: the service only reads it.
ARG MODEL=docker/model
COPY ${MODEL} /opt/ml/model
# HOME and caches in /tmp: the user has no home, and the root filesystem may be read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    MODEL_DIR=/opt/ml/model \
    MLP_SERVE_HOST=0.0.0.0 \
    MLP_TRACKING=false
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
# /ping is 200 once the model is loaded; loading takes a few seconds.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "common.serving.probe"]
# `docker run IMAGE serve` (SageMaker's way) runs `python -m forecast serve`; Python is PID 1 and
# uvicorn's SIGTERM handler drains requests and exits 0.
ENTRYPOINT ["python", "-m", "forecast"]
CMD ["serve"]
