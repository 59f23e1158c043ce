"""The only place (besides the UI) that touches bpy: recipes in, Blender scenes and pixels out.

Modules, bottom up: `datablocks` (what render-tag owns, images, orphans), `settings` (recipe ↔
`render_tag` property values), `renderer`, `camera`, `scene` (build a recipe), `authoring` (objects
placed by hand), `export` (a scene back into a recipe). Nothing here imports `ui/`, `props.py` or
`prefs.py`: the core runs headless in a worker the same as under the N-panel.
"""
