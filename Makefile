# dnsrec — `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= $(abspath ../shared/data)
export DNSREC_DATA_DIR ?= $(DATA)
DATASET ?= ml-100k
ATTENTION ?= linear
LAUNCHER ?= local

.DEFAULT_GOAL := help
.PHONY: help install system-deps test check lint types format train run bench clean sweep results records slurm-up slurm-down slurm-status

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(PY) ## everything `make test` needs: .venv (torch 2.13.0 CPU first, dnsrec + dev tools + matplotlib + onnx), and as root on Debian/Ubuntu the system packages (SLURM, munge, MariaDB, PostgreSQL)
	@if ! $(PY) -c 'import torch' 2>/dev/null; then $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[dev,plot,export]'
	@if [ "$$(id -u)" -eq 0 ]; then slurm/install-deps.sh; \
	elif ! slurm/install-deps.sh --check; then \
	  echo "make install: the Python side is installed; the tests also need those system packages. Install them with:"; \
	  echo "    sudo slurm/install-deps.sh"; \
	fi

system-deps: ## only the system packages the tests use (root, Debian/Ubuntu): slurm/install-deps.sh
	slurm/install-deps.sh

test: ## run the default test suite (CPU; reads real data from DNSREC_DATA_DIR)
	$(PY) -m pytest -q -n 2 --durations=15

lint: ## ruff lint + format check
	$(VENV)/bin/ruff check dnsrec tests benchmarks
	$(VENV)/bin/ruff format --check dnsrec tests benchmarks

types: ## mypy on the package
	$(VENV)/bin/mypy

check: lint types test ## lint + types + tests

format: ## apply ruff's formatting and fixable lints
	$(VENV)/bin/ruff format dnsrec tests benchmarks
	$(VENV)/bin/ruff check --fix dnsrec tests benchmarks

train: ## train SASRec on DATASET (default ml-100k) with ATTENTION (linear|softmax)
	$(VENV)/bin/dnsrec train dataset=$(DATASET) attention=$(ATTENTION)

run: ## a whole DNS-Rec run (search + retrain) on DATASET
	$(VENV)/bin/dnsrec run dataset=$(DATASET)

sweep: ## Optuna sweep of whole DNS-Rec runs on DATASET [TRIALS= PARALLEL= LAUNCHER=local|slurm|ray EXPERIMENT= ARGS=]
	$(VENV)/bin/dnsrec sweep dataset=$(DATASET) launcher=$(LAUNCHER) $(if $(TRIALS),sweep.trials=$(TRIALS)) \
		$(if $(PARALLEL),sweep.parallel=$(PARALLEL)) $(if $(EXPERIMENT),+experiment=$(EXPERIMENT)) $(ARGS)

results: ## the recorded runs [SWEEP=name] (and the status line of that sweep)
	$(VENV)/bin/dnsrec results list $(if $(SWEEP),--sweep $(SWEEP))
	$(if $(SWEEP),$(VENV)/bin/dnsrec results status $(SWEEP))

records: ## the runs behind docs/results, committed under docs/results/records, into runs/records.db (reproduce --db sqlite:///runs/records.db reuses them)
	$(VENV)/bin/dnsrec results ingest docs/results/records/*/*/ --db sqlite:///runs/records.db

bench: ## window vs per-prefix training speed and evaluation seconds on ML-1M
	$(PY) benchmarks/training_speed.py

clean: ## remove caches and run directories (not the venv)
	rm -rf runs outputs .pytest_cache .mypy_cache .ruff_cache

slurm-up: ## start a single-node SLURM cluster with sacct (as root; packages: make install as root)
	slurm/cluster.sh up

slurm-down: ## stop it (cancels its jobs; keeps state and logs under DNSREC_SLURM_PREFIX)
	slurm/cluster.sh down

slurm-status: ## its daemons, sinfo and squeue
	slurm/cluster.sh status
