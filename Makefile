# jobgate developer targets. `make demo` and `make test` set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := $(shell find client workers profiles -type f -not -path '*/__pycache__/*')

.PHONY: install system-deps lint typecheck test pytest demo bench bench-s3 bench-slurm clean

install: system-deps $(STAMP)

system-deps:
	@scripts/system-deps

# A strict editable install links every source file into build/, where mypy can
# follow the jobgate.client / jobgate.workers mapping; new files need a re-run.
$(STAMP): pyproject.toml $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

lint: install
	$(BIN)/ruff check client workers tests scripts bench
	$(BIN)/ruff format --check client workers tests scripts bench

typecheck: install
	$(BIN)/mypy

# Three test processes: most tests wait on services and jobs, not on the CPU. A test
# module stays in one process (its module fixtures, its order); each process has its
# own Redis and its own Slurm.
pytest: install
	$(BIN)/pytest -n 3 --dist loadfile

test: lint typecheck pytest

demo: install
	$(BIN)/python scripts/demo.py

bench: install
	$(BIN)/python bench/core.py

bench-s3: install
	$(BIN)/python bench/s3.py

# Issue 13's goals on the private Slurm (as root); BENCH_ARGS="--scale 1000" is quicker.
bench-slurm: install
	$(BIN)/python bench/slurm.py $(BENCH_ARGS)

clean:
	rm -rf build dist .devstack .pytest_cache .mypy_cache .ruff_cache *.egg-info
