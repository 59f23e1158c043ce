"""The per-image passes' pure half: RLE, depth and normal encodings, 16-bit PNG, the outputs switch."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from render_tag_shared.imaging import encode_png
from render_tag_shared.passes import depth_png, mask_objects, normals_png, rle_decode, rle_encode
from render_tag_shared.recipe import RendererSettings, SceneRecipe
from render_tag_shared.records import ImageLabels
from render_tag_shared.truth import image_labels

from ..builders import tag_scene


def test_rle_round_trip_and_coco_layout() -> None:
    rng = np.random.default_rng(1)
    for shape in [(7, 5), (1, 1), (12, 31)]:
        mask = rng.random(shape) < 0.4
        rle = rle_encode(mask)
        assert rle["size"] == list(shape) and sum(rle["counts"]) == mask.size
        assert np.array_equal(rle_decode(rle), mask)
    mask = np.array([[1, 0], [1, 1]], dtype=bool)  # column-major, starting with a run of zeros
    assert rle_encode(mask)["counts"] == [0, 2, 1, 1]


def test_depth_and_normals_encodings() -> None:
    z = np.array([[0.4004, 70.0], [1.2345, np.inf]])
    valid = np.array([[True, True], [False, True]])
    assert depth_png(z, valid).tolist() == [[400, 0], [0, 0]]  # beyond 65.535 m and nothing: 0
    n = np.zeros((1, 2, 3))
    n[0, 0] = (0.0, 0.0, -1.0)
    coded = normals_png(n, np.array([[True, False]]))
    assert coded[0, 0].tolist() == [32768, 32768, 0] and coded[0, 1].tolist() == [0, 0, 0]


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_png_reads_back_in_opencv(tmp_path, channels: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    image = rng.integers(0, 65536, size=(9, 13, channels), dtype=np.uint16).squeeze()
    path = tmp_path / "x.png"
    path.write_bytes(encode_png(image))
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    assert np.array_equal(back if channels == 1 else back[..., ::-1], image)
    assert encode_png(image) == encode_png(image.copy())  # deterministic


def test_mask_objects_list_every_object() -> None:
    recipe = tag_scene(0)
    ids = np.zeros((4, 6), dtype=np.uint16)
    ids[1:3, 2:5] = 2
    entries = mask_objects(recipe, ids)
    assert [e.id for e in entries] == list(range(1, len(recipe.objects) + 1))
    second = entries[1]
    assert second.object_name == recipe.objects[1].name and second.area == 6
    assert second.bbox == (1.5, 0.5, 3.0, 2.0)  # OpenCV coordinates: pixel centres on integers
    assert entries[0].area == 0 and entries[0].rle is None


def test_outputs_off_keeps_recipe_and_label_bytes() -> None:
    """Recipes and labels written before masks and depth existed keep their bytes."""
    recipe = tag_scene(0)
    assert "outputs" not in recipe.renderer.model_dump(mode="json")
    assert "outputs" not in json.loads(image_labels(recipe, 0).model_dump_json())
    asked = RendererSettings(outputs=["depth", "masks", "depth"])
    assert asked.outputs == ["masks", "depth"] and asked.model_dump()["outputs"] == ["masks", "depth"]
    again = SceneRecipe.model_validate(recipe.model_dump(mode="json"))
    assert again == recipe
    assert ImageLabels.model_validate_json(image_labels(recipe, 0).model_dump_json()).outputs is None
