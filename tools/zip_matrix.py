"""The extension zip on several Blenders: install, enable, add a tag, render; labels and pixels compared.

    python tools/zip_matrix.py --zip dist/render_tag-0.1.0-linux_x64.zip --recipes a.json [--recipes b.json] \
        --out /tmp/matrix PYTHON [PYTHON ...]

(`make zip-matrix` in mk/bpy-matrix.mk builds the zips, the venvs and the recipes and runs this.)

Each PYTHON is the interpreter of a venv that holds a `bpy` wheel (4.2, 4.5, 5.0.1 under 3.11; 5.1 to
5.3 under 3.13). It runs as a stock Blender would: `python -I -S` with a `sys.path` of a folder that
holds only `bpy` and `numpy` (symlinks) and a fresh user profile, so pydantic, pyzmq and
render_tag_shared can come only from the zip's wheels. Per interpreter: install the zip with
`bpy.ops.extensions.package_install_files` (Blender's reports and printout kept), check it enabled and
where the bundled modules load from, add a tag and check it is the active object, then in a second
session enable the installed extension and render the recipes with DESIGN.md's batch operator.

This process (the project's venv: cv2, numpy) then compares every interpreter's labels with the first
one's (the `render_environment` block, which names the Blender build, is left out) and its PNGs
pixel by pixel, and prints a markdown table. Exit 0 when every interpreter installed, enabled and
rendered and the labels are identical; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_INSTALL = r"""
import json, os, sys
site, zip_path = sys.argv[1:3]
sys.path.insert(0, site)
import importlib.util
leaked = [n for n in ("pydantic", "zmq", "render_tag_shared", "render_tag") if importlib.util.find_spec(n)]
import bpy, addon_utils
reports = []
try:
    result = sorted(bpy.ops.extensions.package_install_files(
        repo="user_default", filepath=zip_path, enable_on_install=True))
except RuntimeError as exc:  # an operator that reports an ERROR raises it here
    result, reports = ["RuntimeError"], [str(exc)]
module = "bl_ext.user_default.render_tag"
loaded, enabled = addon_utils.check(module)
report = {"blender": bpy.app.version_string, "python": "%d.%d.%d" % sys.version_info[:3],
          "result": result, "reports": reports, "enabled": bool(enabled), "leaked": leaked}
if enabled:
    import pydantic, pydantic_core, render_tag_shared, zmq
    local = os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".local")
    report["from_zip"] = {m.__name__: m.__file__.startswith(local)
                          for m in (pydantic, pydantic_core, render_tag_shared, zmq)}
    report["compiled"] = sorted(os.path.join(*m.__file__.split(os.sep)[-2:])
                                for m in (pydantic_core._pydantic_core, zmq.backend.cython._zmq))
    bpy.ops.render_tag.add_tag(family="tag36h11", tag_id=5, size_mm=100.0)
    active = bpy.context.view_layer.objects.active
    report["active_after_add_tag"] = active.name if active else None
print("REPORT " + json.dumps(report), flush=True)
"""

_RENDER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import bpy, addon_utils
addon_utils.enable("bl_ext.user_default.render_tag", default_set=True)
for recipes, out in zip(sys.argv[2::2], sys.argv[3::2]):
    bpy.ops.render_tag.render_recipe(filepath=recipes, output_dir=out)
print("REPORT " + json.dumps({"rendered": True}), flush=True)
"""


def _isolated_env(profile: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(profile),
        "BLENDER_USER_CONFIG": str(profile / "config"),
        "BLENDER_USER_SCRIPTS": str(profile / "scripts"),
        "BLENDER_USER_RESOURCES": str(profile / "resources"),
        "BLENDER_USER_EXTENSIONS": str(profile / "extensions"),
    }


def _bare_site(python: str, where: Path) -> Path:
    """A folder holding only `bpy` and `numpy` of `python`'s venv (symlinks): a stock Blender's view."""
    out = subprocess.run(
        [python, "-c", "import importlib.util as u, os; print(os.path.dirname(u.find_spec('numpy').origin))"],
        capture_output=True,
        text=True,
        check=True,
    )
    site_packages = Path(out.stdout.strip()).parent
    where.mkdir(parents=True, exist_ok=True)
    for name in ("bpy", "numpy", "numpy.libs"):
        if (site_packages / name).exists() and not (where / name).exists():
            (where / name).symlink_to(site_packages / name)
    return where


def _run(python: str, script: str, args: list[str], profile: Path, log: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [python, "-I", "-S", "-c", script, *args],
        env=_isolated_env(profile),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    log.write_text(f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(lines[-1].removeprefix("REPORT ")) if lines else {}
    report["exit"] = proc.returncode
    if proc.returncode != 0 or not lines:
        report["tail"] = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
    return report


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "render_environment"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _compare(base: Path, other: Path) -> dict[str, Any]:
    import cv2
    import numpy as np

    labels_equal = bool(sorted((base / "labels").glob("*.json")))
    for path in sorted((base / "labels").glob("*.json")):
        twin = other / "labels" / path.name
        if not twin.is_file() or _strip(json.loads(path.read_text())) != _strip(json.loads(twin.read_text())):
            labels_equal = False
    names = sorted(p.name for p in (base / "images").glob("*.png"))
    if names != sorted(p.name for p in (other / "images").glob("*.png")):
        return {"labels_equal": False, "png": "different image sets"}
    bytes_equal, pixels, total, worst = 0, 0, 0, 0
    for name in names:
        a_bytes, b_bytes = (base / "images" / name).read_bytes(), (other / "images" / name).read_bytes()
        bytes_equal += a_bytes == b_bytes
        a = cv2.imread(str(base / "images" / name), cv2.IMREAD_UNCHANGED).astype(np.int32)
        b = cv2.imread(str(other / "images" / name), cv2.IMREAD_UNCHANGED).astype(np.int32)
        diff = np.abs(a - b)
        diff = diff.max(axis=2) if diff.ndim == 3 else diff
        pixels += int((diff > 0).sum())
        total += diff.size
        worst = max(worst, int(diff.max()))
    return {
        "labels_equal": labels_equal,
        "png": f"{bytes_equal}/{len(names)} byte-identical; {pixels} of {total} px differ, max {worst}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zip", required=True, type=Path)
    parser.add_argument("--recipes", required=True, type=Path, action="append")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("pythons", nargs="+")
    args = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    for python in args.pythons:
        label = Path(python).parents[1].name  # the venv's folder (not resolved: venvs link one Python)
        work = args.out / label
        profile = work / "profile"
        profile.mkdir(parents=True, exist_ok=True)
        site = _bare_site(python, work / "site")
        install = _run(python, _INSTALL, [str(site), str(args.zip.resolve())], profile, work / "install.log")
        row: dict[str, Any] = {"python": python, "work": work, "install": install}
        if install.get("enabled"):
            row["render"] = _run(
                python,
                _RENDER,
                [str(site), *[str(a) for r in args.recipes for a in (r.resolve(), work / "out" / r.stem)]],
                profile,
                work / "render.log",
            )
        rows.append(row)
        print(f"{label}: {json.dumps(install)}", file=sys.stderr, flush=True)

    ok = True
    base = next((r for r in rows if r.get("render", {}).get("rendered")), None)
    print(
        "| Blender (Python) | install | enable | bundled from zip | active after Add Tag | render "
        "| labels = first | PNGs vs first |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        inst, rend = row["install"], row.get("render", {})
        installed = inst.get("result") == ["FINISHED"]
        from_zip = inst.get("from_zip", {})
        bundled = "yes" if from_zip and all(from_zip.values()) and not inst.get("leaked") else "NO"
        cmp: dict[str, Any] = {}
        if base and rend.get("rendered"):
            first, this = base["work"] / "out", row["work"] / "out"
            parts = [_compare(first / r.stem, this / r.stem) for r in args.recipes]
            cmp = {
                "labels_equal": all(p["labels_equal"] for p in parts),
                "png": "; ".join(f"{r.stem}: {p['png']}" for r, p in zip(args.recipes, parts, strict=True)),
            }
        ok &= bool(inst.get("enabled") and rend.get("rendered") and cmp.get("labels_equal"))
        ok &= bundled == "yes" and inst.get("active_after_add_tag") == "tag0"
        reason = (
            ""
            if installed and inst.get("enabled")
            else " ".join(inst.get("reports", []) + inst.get("tail", []))
        )
        print(
            f"| {inst.get('blender', '?')} ({inst.get('python', '?')}) | {'yes' if installed else 'NO'} "
            f"| {'yes' if inst.get('enabled') else 'NO ' + reason[:200]} | {bundled} "
            f"| {inst.get('active_after_add_tag')} | {'yes' if rend.get('rendered') else 'NO'} "
            f"| {cmp.get('labels_equal', '-')} | {cmp.get('png', '-')} |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
