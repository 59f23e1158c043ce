# render-tag: `make demo` sets up and runs the main job; `make test` sets up and runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck pytest addon bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml shared/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./shared -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/render-tag run -o output/demo --force

lint: setup
	$(VENV)/bin/ruff check addon shared host tests bench
	$(VENV)/bin/ruff format --check addon shared host tests bench

typecheck: setup
	$(VENV)/bin/mypy shared/render_tag_shared host/render_tag addon

pytest: setup
	$(VENV)/bin/pytest

test: lint typecheck pytest

addon: setup
	$(VENV)/bin/render-tag addon build -o dist

bench: setup
	$(PY) bench/compile_bench.py
	$(PY) bench/pool_bench.py $(BENCH_ARGS)
	$(PY) bench/dask_bench.py $(BENCH_ARGS)
	$(PY) bench/render_cost_bench.py --plot output/bench/render_cost.png $(BENCH_ARGS)

clean:
	rm -rf $(VENV) dist output .pytest_cache .mypy_cache .ruff_cache

-include mk/*.mk
