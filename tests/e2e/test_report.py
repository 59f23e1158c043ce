"""OUT/report.html end to end: the real `render-tag run` renders a tiny dataset, `verify` checks it, and
headless Chromium opens the page: no console error, every image loads, every section is there. The
screenshot is kept in test-artifacts/report/ for a person to look at.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from render_tag.cli import main as cli_main

from ..builders import REPO_ROOT
from ..chromium import visit

ARTIFACTS = REPO_ROOT / "test-artifacts" / "report"

TINY_JOB = """
dataset: {name: report-e2e, num_scenes: 3, seed: 12}
scenario:
  sampling_mode: random
  subject: {type: TAGS, tag_families: [tag36h11], size_mm: 100, tags_per_scene: [1, 2]}
camera:
  resolution: [160, 120]
  intrinsics: {fov: 60}
  samples_per_scene: 2
  min_distance: 0.4
  max_distance: 0.9
  min_elevation: 50
  max_elevation: 90
  eval_margin_px: 2
renderer: {mode: cycles, samples: 4, denoise: false}
"""

PROBE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth})),
  sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
  gates: document.querySelectorAll('#audit table tr').length,
  text: document.body.innerText.length,
  external: Array.from(document.querySelectorAll('[src],link[href],script'))
    .map(e => e.src || e.href || 'script').filter(u => !u.startsWith('data:')),
})"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    config = root / "tiny.yaml"
    config.write_text(textwrap.dedent(TINY_JOB))
    out = root / "out"
    assert cli_main(["run", str(config), "-o", str(out), "--workers", "1"]) == 0
    cli_main(["verify", str(out)])  # 160x120 misses some tags: its failures are what the page shows
    return out


def test_run_and_verify_write_the_report_and_say_so(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = dataset / "report.html"
    assert page.is_file()
    html = page.read_text(encoding="utf-8")
    for needle in ("Dataset card", "Contact sheet", "Gates", "Distributions", "Verify (OpenCV", "Cameras",
                   "Render cost", "telemetry.ndjson", "coco_labels.json"):  # fmt: skip
        assert needle in html, needle
    assert "https://" not in html and "http://" not in html  # nothing fetched at view time
    # `report` rewrites it and ends with the closing block.
    assert cli_main(["report", str(dataset)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[-2:] == [f"report: {page}", f"next: open {page}"]


def test_report_opens_in_chromium_without_errors(dataset: Path) -> None:
    seen = visit(dataset / "report.html", PROBE)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.png").write_bytes(seen.screenshot)
    assert seen.errors == []
    probe = seen.probe
    assert probe["sections"] == ["card", "sheet", "audit", "verify", "cameras", "cost", "files"]
    assert probe["external"] == []
    images = probe["images"]
    alts = [image["alt"] for image in images]
    # The contact sheet, the three distributions, the heat map, verify's offsets, the cost figures.
    assert len(images) >= 8, alts
    broken = [image for image in images if not (image["complete"] and image["width"] > 0)]
    assert broken == []
    assert probe["gates"] >= 9
    assert seen.screenshot.startswith(b"\x89PNG") and len(seen.screenshot) > 50_000


def test_the_chromium_check_sees_a_broken_image_and_a_console_error(tmp_path: Path) -> None:
    """The check above can fail: a page with a missing image and a console error is caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img alt="gone" src="missing.png">'
        "<script>console.error('boom')</script></body></html>"
    )
    seen = visit(page, PROBE)
    assert any("boom" in error for error in seen.errors), seen.errors
    assert [image["width"] for image in seen.probe["images"]] == [0]


def test_audit_json_additions_show_up_without_a_change(dataset: Path, tmp_path: Path) -> None:
    """A gate with a warning, a new distribution and an unknown section appear on the page as they are."""
    from render_tag.qa.report import write_report

    doc = json.loads((dataset / "audit.json").read_text())
    doc["gates"]["min_coverage"] = {
        "value": 0.4,
        "limit": 0.5,
        "kind": "min",
        "passed": True,
        "status": "warn",
    }
    doc["distributions"]["light_energy_w"] = {
        "count": 3, "min": 1.0, "max": 3.0, "median": 2.0, "p5": 1.1, "p95": 2.9, "mean": 2.0,
        "histogram": {"edges": [1.0, 2.0, 3.0], "counts": [1, 2]},
    }  # fmt: skip
    doc["quarantine"] = [{"image_id": "scene000001_cam00", "reason": "tag id twice"}]
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("preview.png", "recipes.json", "manifest.json"):
        (copy / name).write_bytes((dataset / name).read_bytes())
    (copy / "audit.json").write_text(json.dumps(doc))
    html = write_report(copy).read_text(encoding="utf-8")
    assert '<span class="warn">warn</span>' in html and "min_coverage" in html
    assert "light_energy_w" in html and "quarantine" in html and "scene000001_cam00" in html
