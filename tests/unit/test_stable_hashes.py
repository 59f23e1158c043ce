"""A recipe's hash survives any number of save/load round trips (issue 10, point 5).

The hash ties an image and its label to the recipe; `--resume` skips a job only when the label's hash
equals the recipe's. Normalising a quaternion again on load used to change its last bits about once in
100 scenes, so those scenes were rendered again on every resume. Checked here on thousands of compiled
scenes, through the two paths a recipe takes: recipes.json and the worker's render request.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import yaml

from render_tag.compile import compile_config
from render_tag.compile.compiler import DEFAULT_JOB
from render_tag_shared.config import parse_config
from render_tag_shared.geometry import normalise_quaternion, unit_quaternion
from render_tag_shared.messages import RenderRequest, decode_host_message, encode
from render_tag_shared.recipe import Pose, RecipeFile, SceneRecipe, recipe_hash
from render_tag_shared.recipe_io import dump_recipe_file, parse_recipe_file

from ..builders import DATA

ROUND_TRIPS = 3


def _configs() -> list[tuple[str, dict]]:
    """Each document of the built-in job and each test config."""
    documents = [d for d in yaml.safe_load_all(DEFAULT_JOB.read_text(encoding="utf-8")) if d]
    named = [(f"default_job[{i}]", d) for i, d in enumerate(documents)]
    named += [(p.name, yaml.safe_load(p.read_text(encoding="utf-8"))) for p in sorted(DATA.glob("*.yaml"))]
    return named


def _compiled(data: dict, scenes: int, name: str) -> RecipeFile:
    data = {**data, "dataset": {**data["dataset"], "num_scenes": scenes}}
    return compile_config(parse_config(data, name), source=name, base_dir=Path(DEFAULT_JOB).parent)


def _through_worker(recipe: SceneRecipe) -> SceneRecipe:
    message = decode_host_message(encode(RenderRequest(job_index=0, recipe=recipe, out_dir="/x")))
    assert isinstance(message, RenderRequest)
    return message.recipe


def test_recipe_hash_survives_round_trips_of_thousands_of_compiled_scenes() -> None:
    configs = _configs()
    per_config = math.ceil(3000 / len(configs))
    total, changed = 0, []
    for name, data in configs:
        compiled = _compiled(data, per_config, name)
        hashes = [recipe_hash(r) for r in compiled.recipes]
        text = dump_recipe_file(compiled)
        for trip in range(1, ROUND_TRIPS + 1):
            current = parse_recipe_file(text, name)
            for recipe, digest in zip(current.recipes, hashes, strict=True):
                worker_ok = trip > 1 or recipe_hash(_through_worker(recipe)) == digest
                if recipe_hash(recipe) != digest or not worker_ok:
                    changed.append(f"{name} scene {recipe.scene_id} after {trip} round trip(s)")
            again = dump_recipe_file(current)
            if again != text:
                changed.append(f"{name}: recipes.json bytes after {trip} round trip(s)")
            text = again
        total += len(hashes)
    assert total >= 3000
    assert not changed, f"{len(changed)} changes in {total} scenes, {ROUND_TRIPS} trips: {changed[:5]}"


def test_unit_quaternion_is_idempotent_and_normalises() -> None:
    rng = random.Random(10)
    for _ in range(20000):
        q = [rng.uniform(-1.0, 1.0) for _ in range(4)]
        once = unit_quaternion(q)
        assert unit_quaternion(once) == once
        assert Pose(rotation_quaternion=once).rotation_quaternion == once
        assert abs(sum(c * c for c in once) - 1.0) < 1e-12
        # A quaternion that is not unit is divided by its norm, as before.
        if abs(sum(c * c for c in q) - 1.0) > 1e-9:
            assert once == normalise_quaternion(q)
    assert Pose(rotation_quaternion=(2.0, 0.0, 0.0, 0.0)).rotation_quaternion == (1.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="zero length"):
        Pose(rotation_quaternion=(0.0, 0.0, 0.0, 0.0))
