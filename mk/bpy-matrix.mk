# The bpy version tiers beside `make test` (Blender 4.2 LTS, Python 3.11, OpenCV 4.11, in .venv).
#
#   make test-bpy53   the whole suite (unit, blender, e2e) on bpy 5.3 (Blender 5.3, Python 3.13),
#                     with the newest OpenCV pyproject allows (5.1 today): `make test` covers the
#                     OpenCVs whose CharucoDetector adds +0.5 px, this tier those that do not.
#
# The tier's venv lives outside the checkout, in $(RENDER_TAG_CACHE), shared by every checkout on the
# machine: its dependencies are (re)installed when the pyprojects change, and the checkout under test
# is installed into it (`-e`, no deps, seconds) when it is not the last one that ran. The tier holds a
# lock on the venv from set-up to the end of pytest, so two checkouts never swap it under each other.
# Python 3.13 is found as a developer's machine offers it (tools/find-python.sh: python3.13 on PATH,
# else pyenv); without one the target fails and says what to install. pyproject's environment markers
# pick bpy 5.3, numpy 2 and the newest OpenCV for Python 3.13. Any skipped test fails the tier
# (tests/tier_guard.py).

RENDER_TAG_CACHE ?= $(HOME)/.cache/render-tag
BPY53_VENV ?= $(RENDER_TAG_CACHE)/venv-tier-bpy5.3
BPY53_LOCK := $(BPY53_VENV).lock
BPY53_DEPS := $(BPY53_VENV)/.deps-$(shell cat pyproject.toml shared/pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)

# The whole suite but the opt-in binary tier (tests/binary, `make test-blender`).
BPY53_TESTS ?= tests/unit tests/blender tests/e2e

TIER_PYTEST_ARGS ?=

.PHONY: setup-bpy53 test-bpy53 bpy53-checkout bpy53-pytest

setup-bpy53:
	@mkdir -p $(RENDER_TAG_CACHE)
	flock $(BPY53_LOCK) $(MAKE) --no-print-directory bpy53-checkout

test-bpy53:
	@mkdir -p $(RENDER_TAG_CACHE)
	flock $(BPY53_LOCK) $(MAKE) --no-print-directory bpy53-pytest

# The targets below run under the lock (through the two above).
$(BPY53_DEPS): pyproject.toml shared/pyproject.toml tools/find-python.sh
	@PY313=$$(sh tools/find-python.sh 3.13) || exit 1; \
	if ! test -x $(BPY53_VENV)/bin/python || \
	   ! $(BPY53_VENV)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then \
		rm -rf $(BPY53_VENV) && echo "creating $(BPY53_VENV) with $$PY313" && $$PY313 -m venv $(BPY53_VENV) || exit 1; \
	fi
	$(BPY53_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BPY53_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ./shared -e '.[dev]'
	rm -f $(BPY53_VENV)/.deps-* $(BPY53_VENV)/.checkout
	echo $(CURDIR) > $(BPY53_VENV)/.checkout
	touch $@

bpy53-checkout: $(BPY53_DEPS)
	@if [ "$$(cat $(BPY53_VENV)/.checkout 2>/dev/null)" != "$(CURDIR)" ]; then \
		echo "pointing $(BPY53_VENV) at $(CURDIR)"; \
		$(BPY53_VENV)/bin/python -m pip install --quiet --no-deps -e ./shared -e . && \
		echo $(CURDIR) > $(BPY53_VENV)/.checkout; \
	fi

bpy53-pytest: bpy53-checkout
	RENDER_TAG_TIER_BPY=5.3 RENDER_TAG_TIER_PYTHON=3.13 \
	$(BPY53_VENV)/bin/python -m pytest -p tests.tier_guard $(TIER_PYTEST_ARGS) $(BPY53_TESTS)

# ---------------------------------------------------------------------------------------------
# make zip-matrix: the linux zip of this checkout on bpy 4.2 (.venv), 4.5 and 5.0.1 (Python 3.11)
# and 5.3 (Python 3.13), each as a stock Blender sees it (tools/zip_matrix.py): install, enable,
# Add Tag makes the tag active, render tests/data/matrix/*.yaml; labels compared, PNGs measured.
# Each extra bpy gets its own venv in $(RENDER_TAG_CACHE) holding nothing but bpy and its wheels.

MATRIX_OUT ?= $(RENDER_TAG_CACHE)/zip-matrix
MATRIX_BPY311 ?= 4.5 5.0
# (each X.Y installs the newest bpy==X.Y.*: 4.5.15 and 5.0.1 today)

$(RENDER_TAG_CACHE)/venv-bpy%/.bpy-only:
	@PY311=$$(sh tools/find-python.sh 3.11) || exit 1; \
	rm -rf $(@D) && $$PY311 -m venv $(@D) && $(@D)/bin/python -m pip install --quiet 'bpy==$*.*' && touch $@

zip-matrix: setup setup-bpy53 $(foreach v,$(MATRIX_BPY311),$(RENDER_TAG_CACHE)/venv-bpy$(v)/.bpy-only)
	rm -rf $(MATRIX_OUT) && mkdir -p $(MATRIX_OUT)/dist
	$(VENV)/bin/render-tag addon build -o $(MATRIX_OUT)/dist
	for job in tests/data/matrix/*.yaml; do \
		$(VENV)/bin/render-tag compile $$job -o $(MATRIX_OUT)/$$(basename $$job .yaml).json || exit 1; done
	$(PY) tools/zip_matrix.py --zip $(MATRIX_OUT)/dist/render_tag-*-linux_x64.zip \
		$(foreach j,$(wildcard tests/data/matrix/*.yaml),--recipes $(MATRIX_OUT)/$(basename $(notdir $(j))).json) \
		--out $(MATRIX_OUT)/run $(PY) $(foreach v,$(MATRIX_BPY311),$(RENDER_TAG_CACHE)/venv-bpy$(v)/bin/python) \
		$(BPY53_VENV)/bin/python

.PHONY: zip-matrix
