# render-tag: `make demo` sets up and runs the main job; `make test` sets up and runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup poppler demo test lint typecheck pytest addon bench clean chromium

setup: $(STAMP) poppler

# pdftoppm (Debian's poppler-utils) rasterises printable targets in the tests: installed when root.
poppler:
	@command -v pdftoppm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q poppler-utils >/dev/null; } \
	  || { echo "pdftoppm is missing: apt-get install poppler-utils (the target tests need it)" >&2; exit 1; }

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

# tests/e2e/test_report.py opens report.html in Debian's headless Chromium; installed here when missing
# (as root, as CI runs), otherwise the test fails and names the package.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "make: headless Chromium is missing: apt-get install -y chromium (tests/e2e/test_report.py needs it)"

pytest: setup chromium
	$(VENV)/bin/pytest

test: lint typecheck pytest

addon: setup
	$(VENV)/bin/render-tag addon build -o dist

bench: setup
	$(PY) bench/compile_bench.py
	$(PY) bench/pool_bench.py $(BENCH_ARGS)
	$(PY) bench/dask_bench.py $(BENCH_ARGS)
	$(PY) bench/realism_bench.py
	$(PY) bench/render_cost_bench.py --plot output/bench/render_cost.png $(BENCH_ARGS)

clean:
	rm -rf $(VENV) dist output .pytest_cache .mypy_cache .ruff_cache

-include mk/*.mk
