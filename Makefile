# a2v — two commands for a newcomer: `make demo` and `make test` (both do all set-up first).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.a2v-installed
WEIGHTS_STAMP := $(VENV)/.a2v-weights
RUN ?= runs/demo
PORT ?= 8866
export PYTHONUNBUFFERED := 1
# Waiting OpenMP threads sleep instead of spinning: torch on a busy 2-core machine is many times faster.
export OMP_WAIT_POLICY := PASSIVE
# Tests and the demo never download anything: the transformers/hub stack is told so.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help setup sysdeps sysdeps-test venv weights demo test test-fast bench bench-draws lab app export clean-nbs readme notebooks clean

help:
	@echo "make demo   set everything up, then run the tiny pipeline end to end into $(RUN)/ (CPU, offline)"
	@echo "make test   set everything up, then run the notebook tests (nbdev_test) and pytest"
	@echo "make bench  print the benchmark table    make lab  JupyterLab on nbs/"
	@echo "make bench-draws  3 data draws x 3 training seeds, every render judged (about 40 min on 2 CPU cores)"
	@echo "make app    the render panel as a page (Voila) on http://127.0.0.1:$(PORT)/ for the run in $(RUN)/ (after make demo)"

## Set-up ---------------------------------------------------------------------------------------
sysdeps:
	@bash tools/sysdeps.sh

# The browser test of the panel (tests/test_app.py) drives Debian's chromium through chromium-driver.
sysdeps-test:
	@bash tools/sysdeps.sh --test

$(STAMP): requirements.txt setup.py settings.ini
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "a2v needs Python >= 3.11, found " + sys.version.split()[0]'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt 2>&1 | grep -v -E "^WARNING: Location .* is ignored" || true
	@$(PY) -c 'import torch, torchvision, transformers, facenet_pytorch, ai_edge_litert, lpips, av, soxr, nbdev, papermill, voila, selenium' \
	  || { echo "pip install -r requirements.txt failed (see above)"; exit 1; }
	$(PY) -m pip install -q -e . --no-deps 2>&1 | grep -v -E "^WARNING: Location .* is ignored" || true
	@touch $@

venv: $(STAMP)

# Real LPIPS backbones, converted once into the cache ($$A2V_CACHE or ~/.cache/a2v); a check when present.
$(WEIGHTS_STAMP): $(STAMP) a2v/weights.py
	$(PY) -c 'from a2v.weights import prepare_offline_weights; prepare_offline_weights()'
	@touch $@

weights: $(WEIGHTS_STAMP)

setup: sysdeps venv weights

## The two commands -----------------------------------------------------------------------------
demo: setup
	A2V_FIGURES=$(CURDIR)/figures $(VENV)/bin/a2v pipeline --preset tiny --run $(RUN)
	@echo "demo finished: see $(RUN)/renders/, $(RUN)/figures/, $(RUN)/metrics.json and figures/"

# Tests write their scratch files under a private TMPDIR that is removed when they end, pass or fail:
# repeated runs on one machine do not fill its disk (notebook tests make many small run folders).
# They need about 5 GB there at their peak (4.1 GB measured): a fuller disk stops them at once, in one line.
TEST_TMP = tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/a2v-test.XXXXXX") && trap 'rm -rf "$$tmp"' EXIT && export TMPDIR="$$tmp" && \
  free_kb=$$(df -Pk "$$tmp" | awk 'NR == 2 {print $$4}') && { [ "$$free_kb" -ge 5000000 ] || { \
  echo "make test: the tests need about 5 GB of scratch space; $$(dirname "$$tmp") has $$((free_kb / 1024)) MB free (free some, or set TMPDIR)" >&2; false; }; } &&

test: setup sysdeps-test
	@git status --porcelain --untracked-files=all > $(VENV)/.a2v-status-before 2>/dev/null || true
	@$(TEST_TMP) set -x && $(VENV)/bin/nbdev_test --path nbs --n_workers 2 --timing --flags slow && $(VENV)/bin/pytest tests

## Tools ----------------------------------------------------------------------------------------
test-fast: setup
	@git status --porcelain --untracked-files=all > $(VENV)/.a2v-status-before 2>/dev/null || true
	@$(TEST_TMP) set -x && $(VENV)/bin/nbdev_test --path nbs --n_workers 2 && $(VENV)/bin/pytest tests -m "not slow"

bench: setup
	$(PY) tools/bench.py

# How far one run's numbers carry (#33): tiny runs on 3 sample-data draws x 3 training seeds in runs/bench-draws/
# (resumable), both built-in photos x both held-out sentences judged on each; prints each measure's worst case.
bench-draws: setup
	$(PY) tools/bench_draws.py

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=nbs $(if $(filter 0,$(shell id -u)),--allow-root,)

app: setup
	$(VENV)/bin/a2v app --run $(RUN) --port $(PORT)

export: venv
	$(VENV)/bin/nbdev_export

clean-nbs: venv
	$(VENV)/bin/nbdev_clean

readme: venv
	$(PY) tools/make_readme.py

# Execute every notebook in place (outputs and figures kept), then clean metadata: what is committed.
notebooks: setup
	A2V_FIGURES=$(CURDIR)/figures $(PY) tools/run_notebooks.py
	$(VENV)/bin/nbdev_clean

clean:
	rm -rf runs/ _proc/ _docs/ .pytest_cache
