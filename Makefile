# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test lint demo clean bench fuzz

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first: a bare `torch` would pull several GB of CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	# the exact versions of constraints.txt: the outputs in dvc.lock (model.json names its libraries) come back the same
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,ray]'
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check pipeline tests benchmarks
	$(VENV)/bin/ruff format --check pipeline tests benchmarks

test: lint
	# a Chromium for the review app's browser tests: found, installed only as root with apt, or skipped with what to run
	sh scripts/find-browser.sh $(PY)
	$(PY) -m pytest

# the whole pipeline of dvc.yaml on the bundled data: segment, embed, train, evaluate, code the new study, report
demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	@echo
	@$(VENV)/bin/imri report reports/metrics.json --headline
	@echo
	@echo "report: reports/report.html   coded new study: runs/new_study/ (segments.csv, review_queue.csv, coded.qdpx)"

# issue 13: imri code on a study-sized corpus (350,000 words made from the bundled transcripts) against the
# fp32 encoder alone, in fresh processes with an empty embedding cache; the README's Performance section
bench: setup
	$(PY) benchmarks/bench_study.py --fp32-code

# the long property-based run of the readers, codebooks and CLI (tests/test_fuzz*.py with the imri-fuzz Hypothesis profile;
# make test runs a few dozen cases per property); its figures go in docs/reliability.md
fuzz: setup
	IMRI_FUZZ_PROFILE=imri-fuzz $(PY) -m pytest tests/test_fuzz.py tests/test_fuzz_codebook_cli.py -p no:cacheprovider --hypothesis-show-statistics

clean:
	rm -rf runs .pytest_cache
