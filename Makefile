# Every target that has a "## " comment shows in `make help` (the default).
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV ?= .venv
UV_VERSION ?= 0.13.9
# Which extras `make install` puts in the venv; later projects add theirs here.
EXTRAS ?= churn,vision,forecast,serve,dashboard,dev,deploy
BIN := $(VENV)/bin
PY := $(BIN)/python
# uv does not read pip's configuration, so a machine-wide find-links (e.g. a local CPU-only
# torch wheel) cannot swap in a different build than the one pinned in constraints.txt.
UV := $(BIN)/uv
# Touched after each install: targets that run Python depend on it, so they work on a fresh clone.
INSTALLED := $(VENV)/.installed

# The file `train-churn` uses: IBM's real one after `make data-churn` online, else generated.
CHURN_DATA ?= data/churn/telco.csv
CHURN_ROWS ?= 7043
# `make demo` always trains on built-in data, in its own file, so it never overwrites the above.
CHURN_DEMO_DATA := data/churn/telco_builtin.csv
CHURN_MONITOR_DATA := data/churn/monitoring
# The built-in image set (rendered shapes); point VISION_DATA at any folder of class folders.
VISION_DATA ?= data/vision/shapes
VISION_MONITOR_DATA := data/vision/monitoring
VISION_DEMO_DATA := data/vision/shapes_builtin
# The built-in data trains from scratch (nothing to download) at 64 px: a few minutes on two
# cores. For your own photos drop these: `python -m vision train --data DIR` fine-tunes
# torchvision's pretrained mobilenet_v3_small at 224 px, which needs far fewer epochs.
VISION_TRAIN_ARGS ?= --weights none --backbone resnet18 --image-size 64 --epochs 30 --batch-size 16 --patience 8
# The built-in series (6 daily series, 3 years each); point FORECAST_DATA at any CSV or Parquet
# file of ds,y or series_id,ds,y columns.
FORECAST_DATA ?= data/forecast/daily.csv
FORECAST_DEMO_DATA := data/forecast/daily_builtin.csv
FORECAST_MONITOR_DATA := data/forecast/monitoring
FORECAST_TRAIN_ARGS ?=
# Local ports: each project's API gets its own, so all three can run side by side.
CHURN_PORT ?= 8080
VISION_PORT ?= 8081
DASHBOARD_PORT ?= 8501
VISION_DASHBOARD_PORT ?= 8502
FORECAST_PORT ?= 8082
FORECAST_DASHBOARD_PORT ?= 8503

.PHONY: help install demo test test-fast lint format constraints data-churn train-churn \
        evaluate-churn promote-churn serve-churn dashboard-churn monitor-churn mlflow-ui clean \
        bench-churn bench-serve-churn bench-monitor-churn data-vision train-vision promote-vision \
        serve-vision dashboard-vision monitor-vision bench-vision bench-vision-api data-forecast train-forecast \
        promote-forecast serve-forecast dashboard-forecast monitor-forecast bench-forecast \
        bench-containers docker-build-churn docker-build-vision docker-build-forecast \
        docker-run-churn docker-run-vision docker-run-forecast compose-up compose-down

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# A torch with a local label (2.13.0+cpu, e.g. from a pip configured with a local wheel folder)
# satisfies the pin ==2.13.0, so uv would keep it; PyPI's torchvision then fails at import
# ("operator torchvision::nms does not exist"). Such a torch is replaced by the pinned build.
install: $(PY) ## Create .venv and install the project with pinned versions (EXTRAS=...)
	@reinstall=; if $(PY) -c "import sys, importlib.metadata as m; sys.exit('+' not in m.version('torch'))" \
	    2>/dev/null; then echo "install: replacing the local torch build with the pinned one"; \
	  reinstall="--reinstall-package torch --reinstall-package torchvision"; fi; \
	$(UV) pip install --python $(PY) --quiet -c constraints.txt -e ".[$(EXTRAS)]" $$reinstall
	@touch $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt | $(PY)
	$(MAKE) --no-print-directory install

demo: install ## Train every project on its built-in data and print where the reports are
	$(PY) -m churn data --rows $(CHURN_ROWS) --out $(CHURN_DEMO_DATA)
	@test -d $(VISION_DEMO_DATA) || $(PY) -m vision data --out $(VISION_DEMO_DATA)
	@test -f $(FORECAST_DEMO_DATA) || $(PY) -m forecast data --out $(FORECAST_DEMO_DATA)
	@churn=$$($(PY) -m churn train --data $(CHURN_DEMO_DATA)) && \
	vision=$$($(PY) -m vision train --data $(VISION_DEMO_DATA) $(VISION_TRAIN_ARGS)) && \
	forecast=$$($(PY) -m forecast train --data $(FORECAST_DEMO_DATA)) && echo && \
	  echo "churn model card:    $$churn/model_card.md" && \
	  echo "churn plots:         $$churn/plots/" && \
	  echo "vision model card:   $$vision/model_card.md" && \
	  echo "vision plots:        $$vision/plots/" && \
	  echo "forecast model card: $$forecast/model_card.md" && \
	  echo "forecast plots:      $$forecast/plots/" && \
	  echo "experiments:         make mlflow-ui, then http://127.0.0.1:5000"

# pytest exits 5 when it collects no test (an optional group, e.g. PYTEST_ARGS="-m browser",
# on a machine without its tool); that is not a failure, so it is reported and passed.
test: install ## Run the whole test suite (PYTEST_ARGS="-m 'not slow'" to select)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected for this selection"; exit 0; fi; \
	exit $$rc

test-fast: $(INSTALLED) ## Quick run: skip the slow end-to-end trainings, browsers and containers
	$(PY) -m pytest -m "not slow and not browser and not container"

lint: $(INSTALLED) ## Check style with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED) ## Reformat the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

constraints: $(PY) ## Re-pin every dependency of every extra into constraints.txt
	$(UV) pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
	  --no-emit-index-url --no-header -o constraints.txt

data-churn: $(INSTALLED) ## Download IBM's Telco churn file (or generate the built-in one when offline)
	$(PY) -m churn data --download --out $(CHURN_DATA) --rows $(CHURN_ROWS)

$(CHURN_DATA): | $(INSTALLED)
	$(PY) -m churn data --rows $(CHURN_ROWS) --out $(CHURN_DATA)

train-churn: $(INSTALLED) $(CHURN_DATA) ## Train, calibrate and evaluate the churn model; prints the artifact dir
	$(PY) -m churn train --data $(CHURN_DATA)

evaluate-churn: $(INSTALLED) ## Re-evaluate the latest churn model on its own test split
	$(PY) -m churn evaluate

promote-churn: $(INSTALLED) ## Promote the latest churn model to `production` if it passes the metric gate
	$(PY) -m churn promote latest

serve-churn: $(INSTALLED) ## Serve the churn model (production, else latest) on port CHURN_PORT (8080); docs at /docs
	$(PY) -m churn serve --port $(CHURN_PORT)

# The dashboard talks to the local API; if none answers on CHURN_PORT, one is started for the
# dashboard's lifetime (and stopped with it).
dashboard-churn: $(INSTALLED) ## Open the churn dashboard on port DASHBOARD_PORT (8501), against the local API
	@api=http://127.0.0.1:$(CHURN_PORT); \
	if ! curl -sf $$api/ready >/dev/null 2>&1; then \
	  $(PY) -m churn serve --port $(CHURN_PORT) & pid=$$!; trap "kill $$pid" EXIT; \
	  for i in $$(seq 60); do curl -sf $$api/ready >/dev/null 2>&1 && break; sleep 0.5; done; \
	fi; \
	API_URL=$$api $(BIN)/streamlit run churn/dashboard/app.py --server.headless true \
	  --server.address 127.0.0.1 --server.port $(DASHBOARD_PORT)

# Two generated batches of 2,000 customers, scored by the served model (production, else latest):
# one drawn like the training data, one with the generator's injected shift (more month-to-month
# and fiber customers, higher charges). Reports and alert history go to monitoring/churn/.
monitor-churn: $(INSTALLED) ## Monitor the churn model on a batch like training (no alert) and a shifted one (alerts)
	@$(PY) -m churn data --rows 2000 --seed 101 --out $(CHURN_MONITOR_DATA)/batch_same.csv >/dev/null
	@$(PY) -m churn data --rows 2000 --seed 102 --shift 1.0 \
	  --out $(CHURN_MONITOR_DATA)/batch_shifted.csv >/dev/null
	@echo "== a batch like the training data: expect no alert (exit 0)"
	$(PY) -m churn monitor --current $(CHURN_MONITOR_DATA)/batch_same.csv --labels
	@echo "== a shifted batch: expect alerts, and exit status 3 for the critical ones"
	@$(PY) -m churn monitor --current $(CHURN_MONITOR_DATA)/batch_shifted.csv --labels; rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "== critical alert raised (exit 3), as expected"; \
	else echo "== expected exit 3 (critical alert), got $$rc"; exit 1; fi

$(VISION_DATA): | $(INSTALLED)
	$(PY) -m vision data --out $(VISION_DATA)

data-vision: $(VISION_DATA) ## Write the built-in image set (rendered shapes, 6 classes) to VISION_DATA

train-vision: $(INSTALLED) $(VISION_DATA) ## Train the vision model on VISION_DATA (built-in: no download); prints the artifact dir
	$(PY) -m vision train --data $(VISION_DATA) $(VISION_TRAIN_ARGS)

promote-vision: $(INSTALLED) ## Promote the latest vision model to `production` if it passes the accuracy gate
	$(PY) -m vision promote latest

serve-vision: $(INSTALLED) ## Serve the vision model on port VISION_PORT (8081); docs at /docs
	$(PY) -m vision serve --port $(VISION_PORT)

dashboard-vision: $(INSTALLED) ## Open the vision dashboard on port VISION_DASHBOARD_PORT (8502), against the local API
	@api=http://127.0.0.1:$(VISION_PORT); \
	if ! curl -sf $$api/ready >/dev/null 2>&1; then \
	  $(PY) -m vision serve --port $(VISION_PORT) & pid=$$!; trap "kill $$pid" EXIT; \
	  for i in $$(seq 120); do curl -sf $$api/ready >/dev/null 2>&1 && break; sleep 0.5; done; \
	fi; \
	API_URL=$$api $(BIN)/streamlit run vision/dashboard/app.py --server.headless true \
	  --server.address 127.0.0.1 --server.port $(VISION_DASHBOARD_PORT)

# Two generated batches of 300 images, predicted by the served model: one drawn like the training
# data, one with a camera-and-lighting change (darker, flatter, larger). Reports and alert
# history go to monitoring/vision/.
monitor-vision: $(INSTALLED) ## Monitor the vision model on images like training (no alert) and shifted ones (alerts)
	@rm -rf $(VISION_MONITOR_DATA)
	@$(PY) -m vision data --per-class 50 --seed 101 --out $(VISION_MONITOR_DATA)/same >/dev/null
	@$(PY) -m vision data --per-class 50 --seed 102 --shift 1.0 \
	  --out $(VISION_MONITOR_DATA)/shifted >/dev/null
	@echo "== images like the training data: expect no alert (exit 0)"
	$(PY) -m vision monitor --current $(VISION_MONITOR_DATA)/same --labels
	@echo "== shifted images: expect alerts, and exit status 3 for the critical ones"
	@$(PY) -m vision monitor --current $(VISION_MONITOR_DATA)/shifted --labels; rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "== critical alert raised (exit 3), as expected"; \
	else echo "== expected exit 3 (critical alert), got $$rc"; exit 1; fi

$(FORECAST_DATA): | $(INSTALLED)
	$(PY) -m forecast data --out $(FORECAST_DATA)

data-forecast: $(FORECAST_DATA) ## Write the built-in series (6 daily series, 3 years) to FORECAST_DATA
train-forecast: $(INSTALLED) $(FORECAST_DATA) ## Backtest every model per series, pick by MASE, publish; prints the artifact dir
	$(PY) -m forecast train --data $(FORECAST_DATA) $(FORECAST_TRAIN_ARGS)
promote-forecast: $(INSTALLED) ## Promote the latest forecast model to `production` if it is no worse than seasonal naive
	$(PY) -m forecast promote latest
serve-forecast: $(INSTALLED) ## Serve the forecasts on port FORECAST_PORT (8082); docs at /docs
	$(PY) -m forecast serve --port $(FORECAST_PORT)
dashboard-forecast: $(INSTALLED) ## Open the forecast dashboard on port FORECAST_DASHBOARD_PORT (8503), against the local API
	@api=http://127.0.0.1:$(FORECAST_PORT); \
	if ! curl -sf $$api/ready >/dev/null 2>&1; then \
	  $(PY) -m forecast serve --port $(FORECAST_PORT) & pid=$$!; trap "kill $$pid" EXIT; \
	  for i in $$(seq 120); do curl -sf $$api/ready >/dev/null 2>&1 && break; sleep 0.5; done; \
	fi; \
	API_URL=$$api $(BIN)/streamlit run forecast/dashboard/app.py --server.headless true \
	  --server.address 127.0.0.1 --server.port $(FORECAST_DASHBOARD_PORT)
# The built-in series continued for one horizon (30 days) past the training data, twice: as
# generated (no alert), and with a level shift of 3 standard deviations from day 10 (alerts,
# exit 3). The model must have been trained on FORECAST_DATA as generated (`make train-forecast`).
monitor-forecast: $(INSTALLED) ## Monitor forecasts on a healthy stream of actuals (no alert) and a level-shifted one (alerts)
	@rm -rf $(FORECAST_MONITOR_DATA)
	@$(PY) -m forecast data --out $(FORECAST_MONITOR_DATA)/train.csv \
	  --actuals $(FORECAST_MONITOR_DATA)/healthy.csv --actual-periods 30 >/dev/null
	@$(PY) -m forecast data --out $(FORECAST_MONITOR_DATA)/train.csv \
	  --actuals $(FORECAST_MONITOR_DATA)/shifted.csv --actual-periods 30 --shift 3 \
	  --shift-after 10 >/dev/null
	@cmp -s $(FORECAST_MONITOR_DATA)/train.csv $(FORECAST_DATA) || { echo "== $(FORECAST_DATA) \
	is not the built-in series: the demo's actuals continue those (make data-forecast)"; exit 1; }
	@echo "== actuals continuing the training data: expect no alert (exit 0)"
	$(PY) -m forecast monitor --actuals $(FORECAST_MONITOR_DATA)/healthy.csv
	@echo "== actuals with a level shift: expect alerts, and exit status 3 for the critical ones"
	@$(PY) -m forecast monitor --actuals $(FORECAST_MONITOR_DATA)/shifted.csv; rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "== critical alert raised (exit 3), as expected"; \
	else echo "== expected exit 3 (critical alert), got $$rc"; exit 1; fi
mlflow-ui: $(INSTALLED) ## Open the MLflow UI on the local tracking database (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri "$$($(PY) -m common.settings tracking-uri)" \
	  --host 127.0.0.1 --port 5000

clean: ## Remove artifacts, data, caches and the venv
	rm -rf artifacts data mlruns .pytest_cache .ruff_cache $(VENV)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

bench-churn: $(INSTALLED) ## Benchmarks: `make train-churn` wall time, and a 1M-row run's time and peak memory
	$(PY) -m benchmarks.train_churn
	$(PY) -m benchmarks.train_churn_1m

bench-serve-churn: $(INSTALLED) ## Benchmark the churn API against in-process prediction (needs wrk)
	$(PY) -m benchmarks.serve_churn

bench-monitor-churn: $(INSTALLED) ## Benchmark churn monitoring: false alarms, detection of shifts, CBPE error
	$(PY) -m benchmarks.monitor_churn

bench-vision: $(INSTALLED) ## Benchmark vision: training images/s, eager vs ONNX latency, API vs in-process
	$(PY) -m benchmarks.vision
bench-vision-api: $(INSTALLED) ## Benchmark only the vision API against in-process decode + forward (~2 min)
	$(PY) -m benchmarks.vision_api
bench-forecast: $(INSTALLED) ## Benchmark forecast: MASE per model, fit/backtest time, 100 series, API p50, monitoring
	$(PY) -m benchmarks.forecast
	$(PY) -m benchmarks.monitor_forecast
bench-containers: $(INSTALLED) ## Build and start each API image: build time, image size, cold start to /ping
	CONTAINER_ENGINE=$(CONTAINER_ENGINE) $(PY) -m benchmarks.containers

# Containers (docker/). The engine is `docker` unless CONTAINER_ENGINE=podman.
CONTAINER_ENGINE ?= docker
# The model docker-build-<service> bakes in: MODEL (an artifact directory, alias or version),
# else the store's production model, else its latest. MODEL=none bakes none: mount one at
# /opt/ml/model when running the image.
MODEL ?=
# Extra `build` options, e.g. --build-arg TORCH_INDEX_URL=<PyTorch's CPU-only wheel index> for
# ~200 MB of torch in the vision and forecast images instead of PyPI's ~5 GB build.
DOCKER_BUILD_ARGS ?=
# podman builds OCI images by default, a format without HEALTHCHECK: ask for Docker's.
ENGINE_BUILD := $(CONTAINER_ENGINE) build $(if $(filter podman,$(CONTAINER_ENGINE)),--format docker)
SERVICES := churn vision forecast
API_PORT_churn := $(CHURN_PORT)
API_PORT_vision := $(VISION_PORT)
API_PORT_forecast := $(FORECAST_PORT)
# Where an API's model is on this machine (see MODEL).
model_of = $(PY) -m common.deploy path $(1) $(if $(filter-out none,$(MODEL)),$(MODEL))

docker-build-churn: ## Build the churn API image, model baked in (MODEL=..., CONTAINER_ENGINE=podman)
docker-build-vision: ## Build the vision API image, model baked in (MODEL=..., CONTAINER_ENGINE=podman)
docker-build-forecast: ## Build the forecast API image, model baked in (MODEL=..., CONTAINER_ENGINE=podman)
$(addprefix docker-build-,$(SERVICES)): docker-build-%: $(INSTALLED)
	@rm -rf build/model && mkdir -p build
	@if [ "$(MODEL)" != none ]; then \
	  model=$$($(call model_of,$*)) && cp -rL "$$model" build/model && chmod -R a+rX build/model \
	  && echo "model: $$model"; \
	fi
	$(ENGINE_BUILD) -f docker/$*.Dockerfile -t ml-portfolio/$*-api:latest \
	  $$([ -d build/model ] && echo --build-arg MODEL=build/model) $(DOCKER_BUILD_ARGS) .
	@rm -rf build/model

docker-run-churn: ## Run the churn API image as SageMaker would (`serve`) on 127.0.0.1:CHURN_PORT
docker-run-vision: ## Run the vision API image as SageMaker would (`serve`) on 127.0.0.1:VISION_PORT
docker-run-forecast: ## Run the forecast API image as SageMaker would (`serve`) on 127.0.0.1:FORECAST_PORT
$(addprefix docker-run-,$(SERVICES)): docker-run-%:
	$(CONTAINER_ENGINE) run --rm -p 127.0.0.1:$(API_PORT_$*):8080 ml-portfolio/$*-api:latest serve

# compose mounts each project's serving model (production, else latest), the artifact store
# and the monitoring folder (`make monitor-*` writes it; the dashboards' Monitoring pages read it).
COMPOSE = CHURN_MODEL_DIR=$$($(PY) -m common.deploy path churn) \
	VISION_MODEL_DIR=$$($(PY) -m common.deploy path vision) \
	FORECAST_MODEL_DIR=$$($(PY) -m common.deploy path forecast) \
	ARTIFACTS_DIR=$$($(PY) -c "from common.settings import get_settings as s; \
	print(s().artifacts_root.resolve())") \
	MONITORING_DIR=$$($(PY) -c "from common.settings import get_settings as s; \
	p = s().monitoring_root; p.mkdir(parents=True, exist_ok=True); print(p.resolve())") \
	HOST_UID=$$(id -u) HOST_GID=$$(id -g) $(CONTAINER_ENGINE) compose -f docker/compose.yaml

compose-up: $(INSTALLED) ## Build and start APIs, dashboards, MLflow UI and Prometheus (docker/compose.yaml)
	@for p in $(SERVICES); do $(PY) -m common.deploy path $$p >/dev/null \
	  || { echo "compose-up serves every project: make train-$$p first" >&2; exit 1; }; done
	$(COMPOSE) up -d --build
	@echo "dashboards: http://127.0.0.1:$(DASHBOARD_PORT) (churn), :$(VISION_DASHBOARD_PORT) (vision)," \
	  ":$(FORECAST_DASHBOARD_PORT) (forecast); Prometheus: http://127.0.0.1:9090"

compose-down: ## Stop and remove the compose stack
	$(CONTAINER_ENGINE) compose -p ml-portfolio down
