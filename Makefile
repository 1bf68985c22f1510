# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test lint demo clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first: a bare `torch` would pull several GB of CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# Debian's chromium for the end-to-end review test (Playwright drives it; nothing is downloaded by Playwright)
	[ -x /usr/bin/chromium ] || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check pipeline tests benchmarks
	$(VENV)/bin/ruff format --check pipeline tests benchmarks

test: lint
	$(PY) -m pytest

# the whole pipeline of dvc.yaml on the bundled data: segment, embed, train, evaluate, code the new study, report
demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	@echo
	@$(VENV)/bin/imri report reports/metrics.json --headline
	@echo
	@echo "report: reports/report.html   coded new study: runs/new_study/ (segments.csv, review_queue.csv, coded.qdpx)"

bench: setup
	$(PY) benchmarks/bench_code.py --repeats 9

clean:
	rm -rf runs .pytest_cache
