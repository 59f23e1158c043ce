"""Suite-wide hooks.

pytest-blender stays opt-in (pyproject disables it): plain `pytest` always runs against the `bpy` module.
The add-on is safe to leave at interpreter exit with the Blender 4.2 `bpy` module (see
addon/callbacks.py and tests/test_headless_batch.py), so pytest exits with its own status.
"""
