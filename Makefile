# pinpoint: `make demo` and `make test` each set up .venv from nothing and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# idle OpenMP threads spin briefly, then sleep (see prover/__init__.py)
export OMP_WAIT_POLICY ?= PASSIVE
export GOMP_SPINCOUNT ?= 100000

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pinpoint demo

lint: $(STAMP)
	$(BIN)/ruff check protocol prover verifier pinpoint tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pytest benchmarks -o python_files='bench_*.py' --benchmark-only --benchmark-columns=min,median,mean,rounds

clean:
	rm -rf $(VENV) build *.egg-info
