"""The COCO file opens in pycocotools, and the README's snippet runs as printed: a demo-like dataset
(tags of two families and a ChArUco board), scored against itself, gives AP 1.0."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from render_tag.dataset.merge import merge_dataset

from ..builders import REPO_ROOT, build_dataset, charuco_scene, tag_scene


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenes = [tag_scene(0), tag_scene(1, family="DICT_4X4_50"), charuco_scene(2, n_cameras=3)]
    root = build_dataset(tmp_path_factory.mktemp("demo"), scenes)
    merge_dataset(root)
    return root


def readme_snippet(marker: str) -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    matching = [block for block in blocks if block.startswith(f"# readme: {marker}\n")]
    assert len(matching) == 1, f"README has no python block marked `# readme: {marker}`"
    return matching[0]


def test_the_readme_snippet_runs_and_scores_ap_1(demo_like: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = readme_snippet("pycocotools")
    assert 'OUT = "output/demo"' in code
    scope: dict[str, Any] = {}
    exec(
        compile(code.replace('OUT = "output/demo"', f"OUT = {str(demo_like)!r}"), "README.md", "exec"), scope
    )
    assert scope["keypoint_ap"] == pytest.approx(1.0)
    out = capsys.readouterr().out
    assert "'tag_family': 'tag36h11'" in out and "'ppm':" in out
    families = {scope["gt"].loadCats(a["category_id"])[0]["name"] for a in scope["annotations"]}
    assert families == {"tag36h11", "DICT_4X4_50", "DICT_5X5_100"}  # the last: the ChArUco board's markers


@pytest.mark.parametrize("kind", ["bbox", "segm"])
def test_boxes_and_polygons_score_ap_1_against_themselves(demo_like: Path, kind: str) -> None:
    gt = COCO(str(demo_like / "coco_labels.json"))
    annotations = gt.loadAnns(gt.getAnnIds())
    assert {gt.loadCats(a["category_id"])[0]["supercategory"] for a in annotations} == {
        "fiducial",
        "calibration_board",
    }
    results = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0, "bbox": a["bbox"]}
        if kind == "bbox"
        else {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "score": 1.0,
            "segmentation": gt.annToRLE(a),  # results give masks as RLE
        }
        for a in annotations
    ]
    evaluation = COCOeval(gt, gt.loadRes(results), iouType=kind)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
    assert evaluation.stats[1] == pytest.approx(1.0)  # AP at IoU 0.5


def test_a_shifted_detector_scores_below_1(demo_like: Path) -> None:
    """The check can fail: corners 3 px off lose keypoint AP at tight OKS."""
    gt = COCO(str(demo_like / "coco_labels.json"))
    tags = [c["id"] for c in gt.loadCats(gt.getCatIds()) if c["supercategory"] == "fiducial"]
    results = []
    for a in gt.loadAnns(gt.getAnnIds(catIds=tags)):
        points = np.asarray(a["keypoints"], dtype=float).reshape(-1, 3)
        points[:, :2] += 3.0 * (points[:, 2:] > 0)
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0,
                        "keypoints": points.ravel().tolist()})  # fmt: skip
    evaluation = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
    evaluation.params.catIds = tags
    evaluation.params.kpt_oks_sigmas = np.full(4, 0.025)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] < 0.9
