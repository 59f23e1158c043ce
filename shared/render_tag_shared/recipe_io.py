"""Recipe files on disk: parse, load and dump recipes.json, and the asset-path rule (ASSET_PATHS).

The models live in `recipe`; this module is the one place that turns them into files and back, so
the same recipes always give the same bytes and every reader resolves asset paths the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from .errors import input_error_from_validation
from .inputs import MAX_RECIPE_FILE_BYTES, parse_json, read_input_text
from .recipe import PlaneObject, RecipeFile, SceneRecipe, is_builtin_asset

__all__ = [
    "dump_recipe_file",
    "load_recipe_file",
    "parse_recipe_file",
    "rebase_asset_paths",
    "recipe_assets",
    "resolve_asset_paths",
]


def parse_recipe_file(text: str, source: str) -> RecipeFile:
    """Parses recipes.json (or a single recipe, wrapped) and names the file and field on failure."""
    data = parse_json(text, source)
    if isinstance(data, dict) and "recipes" not in data and "scene_id" in data:
        data = {"recipes": [data]}
    if isinstance(data, list):
        data = {"recipes": data}
    try:
        return RecipeFile.model_validate(data)
    except ValidationError as exc:
        raise input_error_from_validation(source, exc, data=data, model=RecipeFile) from exc


def load_recipe_file(path: str | Path) -> RecipeFile:
    """Reads recipes.json; relative asset paths come back absolute, resolved against the file's folder
    (ASSET_PATHS), because whoever renders a recipe no longer knows which file it came from."""
    path = Path(path)
    text = read_input_text(path, max_bytes=MAX_RECIPE_FILE_BYTES)
    loaded = parse_recipe_file(text, str(path))
    resolved = [resolve_asset_paths(recipe, path.parent) for recipe in loaded.recipes]
    return loaded.model_copy(update={"recipes": resolved})


def dump_recipe_file(recipes: RecipeFile) -> str:
    """The canonical text of a recipe file: stable key order, so the same recipes give the same bytes."""
    return json.dumps(recipes.model_dump(mode="json"), indent=1, sort_keys=False, allow_nan=False) + "\n"


def _resolved(path: str | None, folder: Path) -> str | None:
    if path is None or is_builtin_asset(path) or Path(path).is_absolute():
        return path
    return os.path.normpath(Path(folder, path))


def _map_asset_paths(recipe: SceneRecipe, change: Callable[[str | None], str | None]) -> SceneRecipe:
    world = recipe.world
    hdri = world.hdri
    if hdri is not None:
        hdri = hdri.model_copy(update={"path": change(hdri.path)})
    world = world.model_copy(update={"hdri": hdri, "background_texture": change(world.background_texture)})
    objects = [
        o.model_copy(update={"texture": change(o.texture)}) if isinstance(o, PlaneObject) else o
        for o in recipe.objects
    ]
    return recipe.model_copy(update={"world": world, "objects": objects})


def recipe_assets(recipe: SceneRecipe, prefix: str = "") -> list[tuple[str, str]]:
    """Every asset file of a recipe (ASSET_PATHS; Blender's built-in HDRIs are not files) with the field
    that names it, e.g.
    `("recipes[3].objects[0].texture", "/data/wood.png")`; `prefix` leads each field."""
    lead = f"{prefix}." if prefix else ""
    found: list[tuple[str, str]] = []
    if recipe.world.hdri is not None and not is_builtin_asset(recipe.world.hdri.path):
        found.append((f"{lead}world.hdri.path", recipe.world.hdri.path))  # a built-in is checked by name
    if recipe.world.background_texture is not None:
        found.append((f"{lead}world.background_texture", recipe.world.background_texture))
    for index, obj in enumerate(recipe.objects):
        if isinstance(obj, PlaneObject) and obj.texture is not None:
            found.append((f"{lead}objects[{index}].texture", obj.texture))
    return found


def resolve_asset_paths(recipe: SceneRecipe, folder: str | Path) -> SceneRecipe:
    """The recipe with its relative asset paths (ASSET_PATHS) made absolute against `folder`, the folder
    of the recipe file it came from: what a worker, which sees one recipe and not the file, can open."""
    root = Path(os.path.abspath(folder))
    return _map_asset_paths(recipe, lambda path: _resolved(path, root))


def rebase_asset_paths(recipe: SceneRecipe, source: str | Path, target: str | Path) -> SceneRecipe:
    """The recipe of a file in folder `source` as a file in folder `target` must say it: relative asset
    paths re-expressed relative to `target` (absolute ones stay), e.g. when a render copies
    recipes.json into its output folder."""
    old, new = Path(os.path.abspath(source)), Path(os.path.abspath(target))

    def change(path: str | None) -> str | None:
        if path is None or is_builtin_asset(path) or Path(path).is_absolute():
            return path
        try:
            return Path(os.path.relpath(os.path.normpath(old / path), new)).as_posix()
        except ValueError:  # another drive (Windows): only an absolute path reaches it
            return os.path.normpath(old / path)

    return _map_asset_paths(recipe, change)
