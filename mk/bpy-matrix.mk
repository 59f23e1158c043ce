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
