# The bpy version tiers beside `make test` (Blender 4.2 LTS, Python 3.11, in .venv).
#
#   make test-bpy53   the Blender-dependent tests on bpy 5.3 (Blender 5.3, Python 3.13)
#
# The tier's venv lives outside the checkout, in $(RENDER_TAG_CACHE), and is (re)built when
# the pyprojects or tools/requirements-bpy53.txt change. Python 3.13 is found as a developer's
# machine offers it (tools/find-python.sh: python3.13 on PATH, else pyenv); without one the target
# fails and says what to install. The project goes in with --no-deps --ignore-requires-python
# (the host's pyproject says <3.12 and pins bpy 4.2); its dependencies for 3.13 are listed in
# tools/requirements-bpy53.txt.

RENDER_TAG_CACHE ?= $(HOME)/.cache/render-tag
BPY53_VENV ?= $(RENDER_TAG_CACHE)/venv-bpy5.3
BPY53_REQS := tools/requirements-bpy53.txt
# The stamp names this checkout too: the venv holds one editable install, of the last checkout set up.
BPY53_STAMP := $(BPY53_VENV)/.installed-$(shell (echo $(CURDIR); cat pyproject.toml shared/pyproject.toml $(BPY53_REQS)) 2>/dev/null | sha256sum | cut -c1-12)

# The tests that need Blender: scene build, render (GT judged by OpenCV), operators and UI,
# the extension zip, headless batch, the worker pool. One variable: point it at tests/blender/
# once the suite is laid out that way.
BLENDER_TESTS ?= tests/test_addon_scene.py tests/test_addon_render.py tests/test_ui.py \
	tests/test_extension.py tests/test_headless_batch.py tests/test_pool.py tests/test_render_flow.py

TIER_PYTEST_ARGS ?=

.PHONY: setup-bpy53 test-bpy53

setup-bpy53: $(BPY53_STAMP)

$(BPY53_STAMP): pyproject.toml shared/pyproject.toml $(BPY53_REQS) tools/find-python.sh
	@PY313=$$(sh tools/find-python.sh 3.13) || exit 1; \
	if ! test -x $(BPY53_VENV)/bin/python || \
	   ! $(BPY53_VENV)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then \
		rm -rf $(BPY53_VENV) && echo "creating $(BPY53_VENV) with $$PY313" && $$PY313 -m venv $(BPY53_VENV) || exit 1; \
	fi
	$(BPY53_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BPY53_VENV)/bin/python -m pip install --quiet -r $(BPY53_REQS)
	$(BPY53_VENV)/bin/python -m pip install --quiet --no-deps --ignore-requires-python -e ./shared -e .
	rm -f $(BPY53_VENV)/.installed-*
	touch $@

test-bpy53: setup-bpy53
	RENDER_TAG_TIER_BPY=5.3 RENDER_TAG_TIER_PYTHON=3.13 \
	$(BPY53_VENV)/bin/python -m pytest -p tests.matrix.tier_guard $(TIER_PYTEST_ARGS) $(BLENDER_TESTS)

# ---------------------------------------------------------------------------------------------
# make zip-matrix: the linux zip of this checkout on bpy 4.2 (.venv), 4.5 and 5.0.1 (Python 3.11)
# and 5.3 (Python 3.13), each as a stock Blender sees it (tools/zip_matrix.py): install, enable,
# Add Tag makes the tag active, render tests/matrix/data/*.yaml; labels compared, PNGs measured.
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
	for job in tests/matrix/data/*.yaml; do \
		$(VENV)/bin/render-tag compile $$job -o $(MATRIX_OUT)/$$(basename $$job .yaml).json || exit 1; done
	$(PY) tools/zip_matrix.py --zip $(MATRIX_OUT)/dist/render_tag-*-linux_x64.zip \
		$(foreach j,$(wildcard tests/matrix/data/*.yaml),--recipes $(MATRIX_OUT)/$(basename $(notdir $(j))).json) \
		--out $(MATRIX_OUT)/run $(PY) $(foreach v,$(MATRIX_BPY311),$(RENDER_TAG_CACHE)/venv-bpy$(v)/bin/python) \
		$(BPY53_VENV)/bin/python

.PHONY: zip-matrix
