"""The extension zip as a stock Blender sees it: built, validated, installed, enabled, run.

Built with Blender's own builder and checked with its validator, then installed in a subprocess that
runs `python -I -S` with only `bpy` and `numpy` on `sys.path` (symlinks) and a fresh user profile:
pydantic, pyzmq (for the host's worker) and render_tag_shared can come from nowhere but the wheels
inside the zip. In the full venv such a test would pass even with the bundling broken. The
subprocesses end like any script (no `os._exit`): exit code 0 is part of what they check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from render_tag import extension as addon_build

from ..builders import zip_asking_for_blender, zip_without_python

MODULE = "bl_ext.user_default.render_tag"
BUNDLED = sorted(
    [
        "render_tag_shared",
        "pydantic",
        "pydantic_core",
        "annotated_types",
        "typing_extensions",
        "typing_inspection",
        "pyzmq",
    ]
)
"""The projects whose wheels every platform's zip holds (numpy is Blender's own)."""


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every platform's zip, built once for the module (wheels come from the build cache after once)."""
    out = tmp_path_factory.mktemp("dist")
    built = addon_build.build_extension(out, split_platforms=True)
    return {path.stem.rsplit("-", 1)[-1].replace("_", "-"): path for path in built}


def _names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.namelist()


def test_one_validated_zip_per_platform(zips: dict[str, Path]) -> None:
    manifest = addon_build.read_manifest(addon_build.repo_root())
    assert sorted(zips) == sorted(manifest["platforms"])
    for zip_path in zips.values():
        addon_build.validate_zip(zip_path)  # raises with Blender's words when invalid


def test_zip_holds_the_package_and_its_platform_wheels(zips: dict[str, Path]) -> None:
    for platform, zip_path in zips.items():
        names = _names(zip_path)
        assert "__init__.py" in names and "blender_manifest.toml" in names  # the package is the zip's root
        assert not [
            n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("tests/", "."))
        ]
        assert not [n for n in names if n.startswith(("addon/", "shared/", "host/"))]
        wheels = [addon_build.WheelName.parse(n) for n in names if n.startswith("wheels/")]
        assert not [n for n in names if n.startswith("wheels/numpy")]  # Blender ships numpy
        for python in ("3.11", "3.13"):  # Blender 4.2 to 5.0, and 5.1 to 5.3: one wheel per project each
            serving = sorted(w.dist for w in wheels if w.serves(python))
            assert serving == BUNDLED, (platform, python, serving)
        assert all(w.fits(platform) for w in wheels), platform
        compiled = sorted(f"{w.dist}-{w.python_tag}-{w.abi_tag}" for w in wheels if w.platform_tag != "any")
        assert compiled == [
            "pydantic_core-cp311-cp311",
            "pydantic_core-cp313-cp313",
            "pyzmq-cp311-cp311",
            "pyzmq-cp312-abi3",
        ], platform
        with zipfile.ZipFile(zip_path) as zf:
            manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        assert manifest["id"] == "render_tag" and manifest["blender_version_min"] == "4.2.0"
        assert "blender_version_max" not in manifest  # no cap without a tested reason
        # The list Blender reads on install is the generated one: every wheel in the zip, no other.
        assert sorted(manifest["build"]["generated"]["wheels"]) == sorted(
            f"./{n}" for n in names if n.startswith("wheels/")
        )
        assert set(manifest["permissions"]) == {"files"}  # no network
        assert manifest["build"]["generated"]["platforms"] == [platform]


def test_same_sources_give_the_same_zip_bytes(tmp_path: Path, zips: dict[str, Path]) -> None:
    """A second build (the shared wheel rebuilt too, in a fresh cache) gives byte-identical zips.

    Why: anyone can rebuild a released zip from its sources and compare hashes; Blender's builder
    alone stamps the build time, the files' mtimes and the folder's listing order into every zip.
    """
    cache = tmp_path / "cache"
    cache.mkdir()
    for wheel in addon_build.DEFAULT_CACHE.glob("*.whl"):  # third-party wheels: no network needed
        (cache / wheel.name).write_bytes(wheel.read_bytes())
    again = addon_build.build_extension(tmp_path / "again", split_platforms=True, cache_dir=cache)
    assert sorted(p.name for p in again) == sorted(p.name for p in zips.values())
    for path in again:
        first = zips[path.stem.rsplit("-", 1)[-1].replace("_", "-")]
        assert path.read_bytes() == first.read_bytes(), path.name
        with zipfile.ZipFile(path) as zf:  # one timestamp and sorted names, whenever it was built
            infos = zf.infolist()
        assert {i.date_time for i in infos} == {addon_build.ZIP_EPOCH}, path.name
        assert [i.filename for i in infos] == sorted(i.filename for i in infos), path.name


def test_wheel_python_rule_is_blenders() -> None:
    """Which wheel Blender installs under which Python: its `_extensions_wheel_filter_for_this_system`."""
    parse = addon_build.WheelName.parse
    assert parse("pydantic-2.0-py3-none-any.whl").serves("3.11")
    assert parse("pydantic-2.0-py3-none-any.whl").serves("3.13")
    assert parse("a-1-cp311-cp311-win_amd64.whl").serves("3.11")
    assert not parse("a-1-cp311-cp311-win_amd64.whl").serves("3.13")
    assert parse("a-1-cp312-abi3-win_amd64.whl").serves("3.13")
    assert not parse("a-1-cp312-abi3-win_amd64.whl").serves("3.11")


def _offline_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any pip download from now on fails at once: no index, no local wheel folder."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)


def test_repeated_build_needs_no_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, zips: dict[str, Path]
) -> None:
    """The module fixture filled the cache: building again works with pip cut off from every index."""
    _offline_pip(monkeypatch)
    again = addon_build.build_extension(tmp_path, split_platforms=True)
    assert sorted(p.name for p in again) == sorted(p.name for p in zips.values())


def test_a_wheel_pip_cannot_fetch_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = addon_build.WheelName.parse("./wheels/pydantic_core-0.0.0-cp311-cp311-win_amd64.whl")
    _offline_pip(monkeypatch)
    with pytest.raises(addon_build.BuildError, match=r"windows-x64, Python 3.11 \(pydantic-core==0.0.0\)"):
        addon_build.fetch_wheels([missing], ["windows-x64"], tmp_path)


def _isolated_env(profile: Path) -> dict[str, str]:
    """A fresh Blender user profile, and nothing of this process's environment that Python reads."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(profile),
        "BLENDER_USER_CONFIG": str(profile / "config"),
        "BLENDER_USER_SCRIPTS": str(profile / "scripts"),
        "BLENDER_USER_RESOURCES": str(profile / "resources"),
        "BLENDER_USER_EXTENSIONS": str(profile / "extensions"),
    }


def _bare_site(tmp_path: Path) -> Path:
    """A folder that holds only `bpy` and `numpy` (symlinks into the venv): what a stock Blender has."""
    import bpy  # noqa: F401  (locates the module; importing it here is cheap)
    import numpy

    site_packages = Path(numpy.__file__).resolve().parents[1]
    bare = tmp_path / "site"
    bare.mkdir()
    for name in ("bpy", "numpy", "numpy.libs"):
        if (site_packages / name).exists():
            (bare / name).symlink_to(site_packages / name)
    return bare


_INSTALL_AND_RUN = r"""
import importlib.util, json, os, sys
site, zip_path, out = sys.argv[1:4]
sys.path.insert(0, site)
for name in ("pydantic", "zmq", "render_tag_shared", "render_tag", "addon"):
    assert importlib.util.find_spec(name) is None, f"{name} is importable before the install"
import bpy
import addon_utils
install = bpy.ops.extensions.package_install_files
result = install(repo="user_default", filepath=zip_path, enable_on_install=True)
loaded, enabled = addon_utils.check("bl_ext.user_default.render_tag")
import pydantic, render_tag_shared, zmq
context = zmq.Context()  # libzmq loads and works: a message over an in-process socket pair
pull, push = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
pull.bind("inproc://check"); push.connect("inproc://check"); push.send(b"ping")
assert pull.recv() == b"ping"
pull.close(); push.close(); context.term()
bpy.ops.render_tag.add_tag(family="tag36h11", tag_id=7, size_mm=120.0)
bpy.ops.render_tag.set_camera_intrinsics(fx=600, fy=600, cx=319.5, cy=239.5, width=640, height=480)
bpy.ops.render_tag.export_recipe(filepath=out)
report = {
    "result": sorted(result),
    "enabled": enabled,
    "pydantic": pydantic.__file__,
    "render_tag_shared": render_tag_shared.__file__,
    "zmq": zmq.__file__,
    "extensions": bpy.utils.user_resource("EXTENSIONS"),
    "cache": str(sys.modules["bl_ext.user_default.render_tag"].cache_dir()),
}
print("REPORT " + json.dumps(report), flush=True)
"""

_ENABLE_AND_RENDER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import bpy
import addon_utils
module = addon_utils.enable("bl_ext.user_default.render_tag", default_set=True)
import zmq  # what the host's worker imports next
bpy.ops.render_tag.render_recipe(filepath=sys.argv[2], output_dir=sys.argv[3])
print("REPORT " + json.dumps({"module": module.__name__, "zmq": zmq.__file__}), flush=True)
"""


def _run_isolated(script: str, args: list[str], profile: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, *args],
        env=_isolated_env(profile),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return json.loads(lines[-1].removeprefix("REPORT "))


def test_installs_enables_and_runs_in_a_stock_blender(tmp_path: Path, zips: dict[str, Path]) -> None:
    profile = tmp_path / "profile"
    profile.mkdir()
    site = _bare_site(tmp_path)
    out = tmp_path / "exported.json"
    report = _run_isolated(_INSTALL_AND_RUN, [str(site), str(zips["linux-x64"]), str(out)], profile)

    assert report["result"] == ["FINISHED"] and report["enabled"]
    extensions = Path(report["extensions"])
    assert extensions.is_relative_to(profile)
    for module in ("pydantic", "zmq", "render_tag_shared"):  # from the zip's wheels, nowhere else
        assert Path(report[module]).is_relative_to(extensions / ".local"), report[module]
    assert (extensions / "user_default" / "render_tag" / "__init__.py").is_file()
    assert Path(report["cache"]).is_relative_to(extensions / ".user" / "user_default" / "render_tag")

    recipe = json.loads(out.read_text())["recipes"][0]
    tags = [o for o in recipe["objects"] if o["type"] == "TAG"]
    assert [(t["tag_family"], t["tag_id"], t["size_mm"]) for t in tags] == [("tag36h11", 7, 120.0)]
    assert recipe["cameras"][0]["intrinsics"]["k_matrix"] == [
        [600.0, 0.0, 319.5],
        [0.0, 600.0, 239.5],
        [0, 0, 1],
    ]

    # A later session of the same profile enables the installed extension (the bpy module reads no
    # preferences at import) and runs DESIGN.md's batch expression on a small Workbench recipe.
    data = json.loads(out.read_text())
    data["recipes"][0]["renderer"] = {"mode": "workbench", "samples": 1}
    data["recipes"][0]["cameras"][0]["intrinsics"] = {
        "k_matrix": [[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]],
        "resolution": [64, 48],
    }
    small = tmp_path / "small.json"
    small.write_text(json.dumps(data))
    rendered = tmp_path / "rendered"
    again = _run_isolated(_ENABLE_AND_RENDER, [str(site), str(small), str(rendered)], profile)
    assert again["module"] == MODULE
    assert Path(again["zmq"]).is_relative_to(extensions / ".local"), again["zmq"]
    assert [p.name for p in (rendered / "images").iterdir()] == ["scene000000_cam00.png"]
    assert [p.name for p in (rendered / "labels").iterdir()] == ["scene000000_cam00.json"]


def test_install_extension_helper(tmp_path: Path, zips: dict[str, Path]) -> None:
    """`render-tag addon install ZIP` without a Blender binary: the bpy module's Blender, a subprocess."""
    profile = tmp_path / "profile"
    profile.mkdir()
    env = {**os.environ, **_isolated_env(profile), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    output = addon_build.install_extension(zips["linux-x64"], env=env)
    assert f"installed and enabled {MODULE}" in output
    assert (profile / "extensions" / "user_default" / "render_tag" / "blender_manifest.toml").is_file()
    assert (profile / "config" / "userpref.blend").is_file()


def test_install_cli_shows_blenders_reason(tmp_path: Path, zips: dict[str, Path]) -> None:
    """`render-tag addon install` of a zip Blender refuses (it asks for Blender 9): Blender's words, exit 1.

    Why: the operator returns FINISHED when Blender refuses a zip and only prints the reason, so the
    helper once said "installed but did not enable" and hid it.
    """
    refused = zip_asking_for_blender(zips["linux-x64"], tmp_path / "render_tag-0.1.0-linux_x64.zip", "9.0.0")
    profile = tmp_path / "profile"
    profile.mkdir()
    env = {**os.environ, **_isolated_env(profile), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    cli = Path(sys.executable).with_name("render-tag")
    done = subprocess.run(
        [str(cli), "addon", "install", str(refused)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("render-tag addon install: Blender "), done.stderr
    assert "did not install render_tag-0.1.0-linux_x64.zip: render_tag: This Blender version" in first
    assert "doesn't meet the minimum supported version (9.0.0)" in first
    assert not (profile / "extensions" / "user_default" / "render_tag").exists()


def test_install_helper_shows_why_blender_did_not_enable(tmp_path: Path, zips: dict[str, Path]) -> None:
    """A zip with compiled wheels for the other Python only: installed, not enabled, and Blender says why."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    other = next(v for v in addon_build.PYTHON_VERSIONS if v != here)

    broken = zip_without_python(zips["linux-x64"], tmp_path / "render_tag-0.1.0-linux_x64.zip", here)
    profile = tmp_path / "profile"
    profile.mkdir()
    env = {**os.environ, **_isolated_env(profile), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with pytest.raises(addon_build.BuildError) as caught:
        addon_build.install_extension(broken, env=env)
    message = str(caught.value)
    assert message.startswith(f"{MODULE} is installed but did not enable: "), message
    assert f"This Python version ({here}) isn't compatible with ({other})" in message
