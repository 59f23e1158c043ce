"""The host as a real package: `pip wheel --no-deps .` holds everything `render-tag run` needs.

The wheel must carry the default job and the add-on's source (the workers load it), so a plain,
non-editable install renders. The test builds the wheel, checks its contents, installs it (with a
wheel of `render_tag_shared`) into a fresh venv that borrows the third-party packages of this one
(numpy, OpenCV, pyzmq, pydantic, bpy: nothing is downloaded), and runs `render-tag run` there on a
small job, from a folder outside the checkout.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from ..builders import REPO_ROOT

SMALL_JOB = """\
dataset: {name: wheel, num_scenes: 1, seed: 3}
scenario:
  subject: {type: TAGS, tag_families: [tag36h11], size_mm: 100, tags_per_scene: [1, 2]}
camera:
  resolution: [160, 120]
  intrinsics: {fov: 60}
  samples_per_scene: 1
  min_distance: 0.6
  max_distance: 1.0
renderer: {mode: cycles, samples: 4}
"""


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"{command}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(folder)]
    _run([*pip, "."], REPO_ROOT)
    _run([*pip, "./shared"], REPO_ROOT)
    found = {path.name.split("-")[0]: path for path in folder.glob("*.whl")}
    assert set(found) == {"render_tag", "render_tag_shared"}, found
    return found


def test_the_wheel_holds_the_default_job_and_the_addon(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["render_tag"]) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "render-tag = render_tag.cli:main" in archive.read(entry_points).decode()
    assert "render_tag/compile/default_job.yaml" in names
    addon = {
        name.removeprefix("render_tag/_addon/") for name in names if name.startswith("render_tag/_addon/")
    }
    source = {
        path.relative_to(REPO_ROOT / "addon").as_posix()
        for path in (REPO_ROOT / "addon").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert source and source <= addon, sorted(source - addon)
    assert {"__init__.py", "api.py", "worker.py", "blender_manifest.toml"} <= addon
    assert not [name for name in names if "__pycache__" in name or name.startswith(("tests/", "addon/"))]


def test_a_wheel_install_runs_a_job(wheels: dict[str, Path], tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
        ).strip()
    )
    # The third-party packages of this venv, appended to the new one's path (its .pth files, such as
    # the editable installs of this checkout, are not processed: render_tag comes from the wheel alone).
    (target / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
    ]
    _run([*pip, str(wheels["render_tag_shared"]), str(wheels["render_tag"])], tmp_path)

    env = {k: v for k, v in os.environ.items() if k not in ("RENDER_TAG_ADDON_DIR", "PYTHONPATH", "BLENDER")}
    where = _run(
        [
            str(python),
            "-c",
            "import render_tag, render_tag.addon_source as a, render_tag.compile as c; "
            "print(render_tag.__file__); print(a.addon_dir()); print(len(c.compile_default_job().recipes))",
        ],
        tmp_path,
        env,
    ).splitlines()
    assert all(Path(line).is_relative_to(target) for line in where[:2]), where
    assert int(where[2]) > 0, "the default job compiles from the package data"

    config = tmp_path / "small.yaml"
    config.write_text(textwrap.dedent(SMALL_JOB))
    out = tmp_path / "out"
    _run(
        [str(env_dir / "bin" / "render-tag"), "run", str(config), "-o", str(out), "--workers", "1"],
        tmp_path,
        env,
    )
    images = sorted(p.name for p in (out / "images").glob("*.png"))
    assert images == ["scene000000_cam00.png"]
    for name in ("coco_labels.json", "rich_truth.json", "ground_truth.csv", "audit.json", "preview.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    ready = [
        json.loads(line)
        for line in (out / "telemetry.ndjson").read_text().splitlines()
        if '"worker_ready"' in line
    ]
    assert ready and ready[0]["addon_version"] != "unknown"
