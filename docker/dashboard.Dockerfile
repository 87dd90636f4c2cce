# syntax=docker/dockerfile:1
# One project's Streamlit dashboard; PROJECT (churn, vision or forecast) picks which. Build from
# the repository root:
#
#   docker build -f docker/dashboard.Dockerfile --build-arg PROJECT=churn \
#       -t ml-portfolio/churn-dashboard .
#
# It shows the model at /opt/ml/model (mounted, or baked in with MODEL as in the API images) and
# asks the API at API_URL for predictions (without API_URL it predicts in-process):
#
#   docker run -p 8501:8501 -e API_URL=http://churn-api:8080 \
#       -v "$(python -m common.deploy path churn):/opt/ml/model:ro" ml-portfolio/churn-dashboard
#
# docker/compose.yaml runs one per project beside its API.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
ARG PROJECT=churn
# As in the API images: uv, the system's certificates, copies from a cache mount.
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS=1
ARG UV_CACHE_DIR=/root/.cache/uv
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && uv venv /opt/venv --python /usr/local/bin/python
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
# vision needs torch and torchvision, forecast torch: from PyPI, or first from TORCH_INDEX_URL
# when it names an index, e.g. PyTorch's CPU-only one (see docker/vision.Dockerfile); churn
# needs neither.
ARG TORCH_INDEX_URL=
RUN --mount=type=cache,target=/root/.cache/uv \
    case "$PROJECT" in vision) wanted='^(torch|torchvision)==' ;; forecast) wanted='^torch==' ;; \
        *) wanted='' ;; esac; \
    if [ -n "$TORCH_INDEX_URL" ] && [ -n "$wanted" ]; then \
        grep -E "$wanted" constraints.txt > /tmp/torch.txt \
        && uv pip install --python /opt/venv/bin/python --index-url "$TORCH_INDEX_URL" \
            -r /tmp/torch.txt; \
    fi
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/venv/bin/python -c constraints.txt \
        -r pyproject.toml --extra "${PROJECT}" --extra dashboard
COPY common ./common
COPY ${PROJECT} ./${PROJECT}
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/venv/bin/python --no-deps .

FROM ${PYTHON_IMAGE}
ARG PROJECT=churn
LABEL org.opencontainers.image.title="${PROJECT}-dashboard" \
      org.opencontainers.image.description="The ${PROJECT} model's Streamlit dashboard"
# The models' libraries load the GNU OpenMP runtime, which the slim image leaves out. Debian's
# package versions are not pinned (DL3008): the security archive replaces them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
ARG MODEL=docker/model
COPY ${MODEL} /opt/ml/model
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    MODEL_DIR=/opt/ml/model \
    MLP_TRACKING=false \
    DASHBOARD_PROJECT=${PROJECT}
WORKDIR /tmp
USER 10001:10001
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "common.serving.probe", "http://127.0.0.1:8501/_stcore/health"]
ENTRYPOINT ["python", "-m", "common.launch_dashboard"]
CMD ["--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true", \
     "--browser.gatherUsageStats=false"]
