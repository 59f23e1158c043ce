"""Builds the Blender extension zip (one per platform) and installs it into a Blender.

The repo-root `blender_manifest.toml` names the wheels the extension bundles. A build stages the
content of `addon/`, the manifest and a `wheels/` folder in a temporary directory (the zip's root
must be the add-on package, not the repository), and hands it to Blender's own builder and
validator (`blender_ext.py`, shipped inside the `bpy` module), run with plain Python. The manifest's
third-party wheels are fetched with `pip download` for each platform and each Python of
`PYTHON_VERSIONS` and cached, so a second build needs no network; the `render_tag_shared` wheel is
built from `shared/` (and cached by a digest of its sources). The same sources give the same zip bytes
(`make_reproducible`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import importlib.util
import os
import platform as _platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from render_tag_shared.versions import MANIFEST_NAME

PYTHON_VERSIONS: tuple[str, ...] = ("3.11", "3.13")
"""The Pythons of the Blenders the zips serve: 3.11 (Blender 4.2 LTS to 5.0), 3.13 (5.1 to 5.3, and
distribution builds such as Debian 13's 4.3). Every platform's zip holds, for each of them, one wheel
of every bundled project (a pure `py3` wheel serves both); Blender installs the ones that match."""

PIP_PLATFORMS: dict[str, tuple[str, ...]] = {
    # pip does not widen a manylinux tag to older glibc versions by itself: list them.
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    # pip widens a macOS tag to every older macOS release and to universal2.
    "macos-x64": ("macosx_11_0_x86_64",),
    "macos-arm64": ("macosx_11_0_arm64",),
}
"""Blender platform name -> the wheel platform tags pip may pick for it."""

SHARED_DIST = "render_tag_shared"
DEFAULT_CACHE = Path.home() / ".cache" / "render-tag" / "wheels"


class BuildError(RuntimeError):
    """The extension could not be built, validated or installed; the message says what to do."""


@dataclass(frozen=True)
class WheelName:
    """The parts of a wheel file name that decide what pip must fetch and where it may go."""

    filename: str
    dist: str
    version: str
    python_tag: str
    abi_tag: str
    platform_tag: str

    @classmethod
    def parse(cls, path: str) -> WheelName:
        filename = path.rsplit("/", 1)[-1]
        parts = filename.removesuffix(".whl").split("-")
        if not filename.endswith(".whl") or len(parts) not in (5, 6):
            raise BuildError(f"{MANIFEST_NAME}: wheels: {path!r} is not a wheel file name")
        return cls(filename, parts[0], parts[1], parts[-3], parts[-2], parts[-1])

    @property
    def requirement(self) -> str:
        return f"{self.dist.replace('_', '-')}=={self.version}"

    def fits(self, blender_platform: str) -> bool:
        """Whether Blender would put this wheel into the zip of `blender_platform` (its own rule)."""
        if self.platform_tag == "any":
            return True
        return any(blender_platform in _blender_platforms(tag) for tag in self.platform_tag.split("."))

    def serves(self, python: str) -> bool:
        """Whether Blender would install this wheel under Python `python` ("3.13"), by its own rule.

        `py3` serves every 3.x; `cp313` serves 3.13; with the stable ABI (`abi3`) `cp312` serves 3.12
        and later.
        """
        major, minor = (int(p) for p in python.split("."))
        stable = any(abi.startswith("abi") and abi[3:] == str(major) for abi in self.abi_tag.split("."))
        for tag in self.python_tag.split("."):
            digits = tag[2:]
            if tag[:2] not in ("py", "cp") or not digits.isdigit() or int(digits[0]) != major:
                continue
            if len(digits) == 1:
                return True
            wheel_minor = int(digits[1:])
            if wheel_minor == minor or (stable and minor >= wheel_minor):
                return True
        return False


_WHEEL_OS = (("manylinux", "linux"), ("musllinux", "linux"), ("macosx", "macos"), ("win", "windows"))
_WHEEL_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def _blender_platforms(wheel_tag: str) -> list[str]:
    """`manylinux_2_17_x86_64` -> [`linux-x64`], `macosx_10_9_universal2` -> both macOS (as blender_ext)."""
    os_name = next((dst for src, dst in _WHEEL_OS if wheel_tag.startswith(src)), wheel_tag)
    if os_name == "macos" and wheel_tag.endswith("_universal2"):
        return ["macos-x64", "macos-arm64"]
    fallback = wheel_tag.rsplit("_", 1)[-1]
    arch = next((dst for src, dst in _WHEEL_ARCH.items() if wheel_tag.endswith(src)), fallback)
    return [f"{os_name}-{arch}"]


def current_platform() -> str:
    """This machine as Blender names platforms (`linux-x64`, `windows-x64`, `macos-arm64`, ...)."""
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    machine = _platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{system}-{arch}"


def repo_root() -> Path:
    """The checkout this module lives in (host/render_tag/extension.py -> the repository root)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / MANIFEST_NAME).is_file() or not (root / "addon").is_dir():
        raise BuildError(f"{root}: not a render-tag checkout (no {MANIFEST_NAME} and addon/): build from one")
    return root


def blender_ext_script() -> Path:
    """Blender's extension builder and validator, as shipped in the installed `bpy` module."""
    spec = importlib.util.find_spec("bpy")  # locates the package without importing Blender
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the `bpy` module is not installed: `pip install 'bpy==4.2.*'` (or `make setup`)")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise BuildError("the installed `bpy` module has no scripts/addons_core/bl_pkg/cli/blender_ext.py")


def _run(cmd: Sequence[str | Path], what: str, env: dict[str, str] | None = None) -> str:
    """Runs a tool and turns a failure into a BuildError that shows the tool's own words."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout + proc.stderr


def read_manifest(root: Path) -> dict[str, object]:
    with (root / MANIFEST_NAME).open("rb") as fh:
        return tomllib.load(fh)


def _manifest_wheels(manifest: dict[str, object]) -> list[WheelName]:
    wheels = manifest.get("wheels")
    if not isinstance(wheels, list) or not all(isinstance(w, str) for w in wheels):
        raise BuildError(f"{MANIFEST_NAME}: wheels: must be a list of wheel paths")
    return [WheelName.parse(w) for w in wheels]


_SHARED_IGNORE = ("*.egg-info", "build", "dist", "__pycache__", "*.pyc", ".*")


def _shared_source_hash(shared: Path) -> str:
    """A digest of the files a wheel of shared/ is built from (what the copy below takes)."""
    digest = hashlib.sha256()
    for path in sorted(shared.rglob("*")):
        rel = path.relative_to(shared)
        if path.is_dir() or any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in _SHARED_IGNORE):
            continue
        digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def build_shared_wheel(root: Path, out_dir: Path, cache_dir: Path | None = None) -> Path:
    """The render_tag_shared wheel, built from a copy of shared/ (the source tree stays untouched).

    With `cache_dir`, a wheel of the same sources is reused: a repeated build needs no pip at all
    (building needs setuptools, which pip fetches when the running Python has no recent one).
    """
    cached_dir = cache_dir / "render_tag_shared" / _shared_source_hash(root / "shared") if cache_dir else None
    cached = sorted(cached_dir.glob(f"{SHARED_DIST}-*.whl")) if cached_dir and cached_dir.is_dir() else []
    if len(cached) == 1:
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(cached[0], out_dir / cached[0].name))
    with tempfile.TemporaryDirectory(prefix="render-tag-shared-") as tmp:
        src = Path(tmp) / "shared"
        shutil.copytree(root / "shared", src, ignore=shutil.ignore_patterns(*_SHARED_IGNORE))
        cmd: list[str | Path] = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        if _can_build_without_isolation():
            cmd.append("--no-build-isolation")  # offline: the running Python already has the backend
        cmd += ["-w", out_dir, src]
        env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}  # stable timestamps inside the wheel
        _run(cmd, "building the render_tag_shared wheel (pip wheel shared/)", env=env)
    built = sorted(out_dir.glob(f"{SHARED_DIST}-*.whl"))
    if len(built) != 1:
        raise BuildError(f"pip wheel shared/ left {len(built)} {SHARED_DIST} wheels in {out_dir}")
    if cached_dir is not None:
        cached_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built[0], cached_dir / built[0].name)
    return built[0]


def _can_build_without_isolation() -> bool:
    """setuptools >= 70.1 builds wheels by itself; older ones need the `wheel` package too."""
    try:
        major, minor = (int(p) for p in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    if (major, minor) >= (70, 1):
        return True
    try:
        importlib.metadata.version("wheel")
    except importlib.metadata.PackageNotFoundError:
        return False
    return (major, minor) >= (68, 0)


def fetch_wheels(wheels: Sequence[WheelName], platforms: Sequence[str], cache_dir: Path) -> dict[str, Path]:
    """Puts every third-party wheel of the manifest in `cache_dir` (pip download on a miss).

    Returns file name -> cached path. Fails with the platform and pip's words when a wheel cannot be
    fetched, and names the manifest entry to change when pip resolves other files than it lists.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    for blender_platform in platforms:
        if blender_platform not in PIP_PLATFORMS:
            raise BuildError(f"{MANIFEST_NAME}: platforms: no wheel tags known for {blender_platform!r}")
        for python in PYTHON_VERSIONS:
            needed = [w for w in wheels if w.fits(blender_platform) and w.serves(python)]
            if all((cache_dir / w.filename).is_file() for w in needed):
                continue
            where = f"{blender_platform}, Python {python}"
            with tempfile.TemporaryDirectory(prefix="render-tag-wheels-") as tmp:
                cmd: list[str | Path] = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
                cmd += ["--only-binary=:all:", "--python-version", python]
                cmd += ["--implementation", "cp", "--abi", "cp" + python.replace(".", "")]
                for tag in PIP_PLATFORMS[blender_platform]:
                    cmd += ["--platform", tag]
                cmd += ["-d", tmp, *sorted({w.requirement for w in needed})]
                try:
                    _run(cmd, f"pip download of the {where} wheels")
                except BuildError as exc:
                    wanted = ", ".join(w.requirement for w in needed)
                    raise BuildError(
                        f"cannot fetch the wheels for {where} ({wanted}); "
                        f"a build needs PyPI once, then works from the cache in {cache_dir}.\n{exc}"
                    ) from exc
                got = {p.name: p for p in Path(tmp).glob("*.whl")}
                for wheel in needed:
                    if wheel.filename not in got:
                        others = sorted(n for n in got if WheelName.parse(n).dist == wheel.dist)
                        raise BuildError(
                            f"{MANIFEST_NAME}: wheels: lists {wheel.filename} but pip fetched "
                            f"{others or 'nothing'} for {where}: list what pip gives in the manifest"
                        )
                    shutil.copy2(got[wheel.filename], cache_dir / wheel.filename)
    return {w.filename: cache_dir / w.filename for w in wheels}


def check_dependencies_listed(wheels: Sequence[WheelName], platforms: Sequence[str]) -> None:
    """Every platform's zip must hold the whole dependency set for every Python: one wheel per project.

    Two wheels of one project for the same platform and Python would leave the choice to Blender
    (it installs the newest version): refused too.
    """
    dists = {w.dist for w in wheels}
    for blender_platform in platforms:
        for python in PYTHON_VERSIONS:
            serving = [w for w in wheels if w.fits(blender_platform) and w.serves(python)]
            where = f"{blender_platform} under Python {python}"
            if missing := sorted(dists - {w.dist for w in serving}):
                raise BuildError(f"{MANIFEST_NAME}: wheels: no {', '.join(missing)} wheel for {where}")
            for dist in sorted(dists):
                if len(same := [w.filename for w in serving if w.dist == dist]) > 1:
                    raise BuildError(f"{MANIFEST_NAME}: wheels: {where} would get {' and '.join(same)}")


def staged_manifest_text(text: str, wheel_paths: Sequence[str]) -> str:
    """The manifest with its `wheels` list replaced (the shared wheel's real file name goes in)."""
    listing = "wheels = [\n" + "".join(f'  "{p}",\n' for p in wheel_paths) + "]"
    new, count = re.subn(r"^wheels\s*=\s*\[.*?\]", listing, text, count=1, flags=re.S | re.M)
    if count != 1:
        raise BuildError(f"{MANIFEST_NAME}: no `wheels = [...]` list to rewrite")
    return new


def stage(root: Path, stage_dir: Path, wheel_files: Sequence[Path]) -> None:
    """Lays out the zip's root: the add-on package's files, the manifest and wheels/."""
    shutil.copytree(
        root / "addon",
        stage_dir,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "tests"),
        dirs_exist_ok=True,
    )
    wheels_dir = stage_dir / "wheels"
    wheels_dir.mkdir()
    for wheel in wheel_files:
        shutil.copy2(wheel, wheels_dir / wheel.name)
    text = (root / MANIFEST_NAME).read_text(encoding="utf-8")
    (stage_dir / MANIFEST_NAME).write_text(
        staged_manifest_text(text, [f"./wheels/{w.name}" for w in wheel_files]), encoding="utf-8"
    )


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The timestamp of every entry of a built zip (the earliest a zip can hold)."""


def make_reproducible(zip_path: Path) -> None:
    """Rewrites a zip so that the same files give the same bytes: sorted, one timestamp, 0644.

    Blender's builder takes the staged files' times and the folder's listing order, and stamps the
    manifest it generates with the time of the build.
    """
    import zipfile

    with zipfile.ZipFile(zip_path) as src:
        entries = [(info, src.read(info)) for info in src.infolist()]
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w") as dst:
        for info, data in sorted(entries, key=lambda entry: entry[0].filename):
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            fixed.create_system = 3  # Unix: the mode bits below are read
            fixed.external_attr = (0o40755 if info.is_dir() else 0o100644) << 16
            fixed.compress_type = info.compress_type  # stored stays stored (Blender keeps wheels so)
            level = 9 if info.compress_type == zipfile.ZIP_DEFLATED else None
            dst.writestr(fixed, data, compresslevel=level)
    os.replace(tmp, zip_path)


def validate_zip(zip_path: Path) -> None:
    """Blender's own validator on a built zip (the check extensions.blender.org applies)."""
    _run(
        [sys.executable, blender_ext_script(), "validate", zip_path],
        f"Blender's validator on {zip_path.name}",
    )


def build_extension(
    out_dir: Path,
    split_platforms: bool = True,
    cache_dir: Path | None = None,
    root: Path | None = None,
) -> list[Path]:
    """Builds (and validates) the extension zip, one per platform when `split_platforms`."""
    root = root or repo_root()
    cache_dir = cache_dir or DEFAULT_CACHE
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root)
    platforms = manifest.get("platforms")
    if not isinstance(platforms, list) or not platforms or not all(isinstance(p, str) for p in platforms):
        raise BuildError(f"{MANIFEST_NAME}: platforms: must list the platforms to build for")
    wheels = _manifest_wheels(manifest)
    third_party = [w for w in wheels if w.dist != SHARED_DIST]
    if len(third_party) == len(wheels):
        raise BuildError(f"{MANIFEST_NAME}: wheels: must list the {SHARED_DIST} wheel")
    check_dependencies_listed(wheels, platforms)
    cached = fetch_wheels(third_party, platforms, cache_dir)
    script = blender_ext_script()

    with tempfile.TemporaryDirectory(prefix="render-tag-addon-") as tmp:
        shared_wheel = build_shared_wheel(root, Path(tmp) / "shared-dist", cache_dir)
        ordered = [shared_wheel if w.dist == SHARED_DIST else cached[w.filename] for w in wheels]
        stage_dir = Path(tmp) / "stage"
        stage(root, stage_dir, ordered)
        cmd: list[str | Path] = [
            sys.executable,
            script,
            "build",
            "--source-dir",
            stage_dir,
            "--output-dir",
            out_dir,
        ]
        if split_platforms:
            cmd.append("--split-platforms")
        _run(cmd, "Blender's extension builder")

    stem = f"{manifest['id']}-{manifest['version']}"
    names = [f"{stem}-{p.replace('-', '_')}.zip" for p in platforms] if split_platforms else [f"{stem}.zip"]
    zips = [out_dir / name for name in names]
    for zip_path in zips:
        if not zip_path.is_file():
            raise BuildError(f"Blender's builder did not write {zip_path}")
        make_reproducible(zip_path)
        validate_zip(zip_path)
    return zips


_INSTALL_WITH_BPY = """
import contextlib, io, os, sys
import bpy
import addon_utils
zip_path, repo, module = sys.argv[-3:]
pkg_id = module.rsplit(".", 1)[-1]
# In background mode Blender prints the messages of its install step ("ERROR <id>: <reason>") with
# print() and the operator returns FINISHED whether or not it installed: keep the printout.
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    try:
        result = bpy.ops.extensions.package_install_files(
            repo=repo, filepath=zip_path, enable_on_install=True
        )
    except RuntimeError as exc:  # what the operator itself reported as an error
        print("ERROR", exc)
        result = {"CANCELLED"}
sys.stdout.write(printed.getvalue())
reasons = [line.split(" ", 1)[1].strip() for line in printed.getvalue().splitlines()
           if line.startswith(("ERROR ", "WARNING ")) and " " in line]
repos = {r.module: r for r in bpy.context.preferences.extensions.repos}
directory = repos[repo].directory if repo in repos else ""
installed = bool(directory) and os.path.isfile(os.path.join(directory, pkg_id, "blender_manifest.toml"))
because = ": " + "; ".join(reasons) if reasons else " (Blender printed no reason; see above)"
if not installed:
    name = os.path.basename(zip_path)
    sys.exit(f"REFUSED Blender {bpy.app.version_string} did not install {name}{because}")
loaded, enabled = addon_utils.check(module)
if not enabled:
    sys.exit(f"REFUSED {module} is installed but did not enable{because}")
bpy.ops.wm.save_userpref()
print(f"installed and enabled {module}", flush=True)
print(f"(the bpy module reads no preferences at import: enable it with addon_utils.enable({module!r}))")
"""


def install_extension(
    zip_path: Path,
    blender: str | None = None,
    repo: str = "user_default",
    env: dict[str, str] | None = None,
) -> str:
    """Installs and enables the zip: in a Blender binary when given, else in the `bpy` module's Blender.

    Runs in a subprocess either way, so the caller's own Blender state (if any) is not disturbed.
    """
    zip_path = Path(zip_path).resolve()
    if not zip_path.is_file():
        raise BuildError(f"{zip_path}: no such extension zip")
    if blender:
        cmd: list[str | Path] = [
            blender,
            "--command",
            "extension",
            "install-file",
            "-r",
            repo,
            "-e",
            zip_path,
        ]
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, check=False)
        return _checked_binary_install(proc, blender, zip_path.name)
    module = f"bl_ext.{repo}.{_manifest_id_of(zip_path)}"
    cmd = [sys.executable, "-c", _INSTALL_WITH_BPY, zip_path, repo, module]
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        refused = [line.removeprefix("REFUSED ") for line in output if line.startswith("REFUSED ")]
        if refused:  # Blender's own reason first, then what it printed
            raise BuildError(refused[-1])
        tail = "\n".join(output[-15:])
        raise BuildError(f"installing into the bpy module's Blender failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout + proc.stderr


_REASON_PREFIXES = ("ERROR ", "Error: ")
"""How Blender starts the lines that say why it refused a zip (install step, enable step)."""


def _checked_binary_install(proc: subprocess.CompletedProcess[str], blender: str, name: str) -> str:
    """The output of `blender --command extension install-file -e`, or a BuildError with Blender's reason.

    Why: a zip refused at install (e.g. by its Blender version range) still exits 0, with an `ERROR ...`
    line and "should have been installed but not found"; only a refusal at enable exits non-zero.
    """
    output = proc.stdout + proc.stderr
    lines = output.strip().splitlines()
    reasons = [line.strip() for line in lines if line.startswith(_REASON_PREFIXES)]
    because = "; ".join(r.removeprefix("ERROR ").removeprefix("Error: ") for r in reasons)
    tail = "\n".join(lines[-15:])
    if not any(line.startswith("STATUS Installed") for line in lines):
        raise BuildError(f"{blender} did not install {name}: {because or 'it printed no reason'}\n{tail}")
    if proc.returncode != 0 or reasons:
        because = because or f"exit {proc.returncode}"
        raise BuildError(f"{blender} installed {name} but did not enable it: {because}\n{tail}")
    return output


def _manifest_id_of(zip_path: Path) -> str:
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        data = tomllib.loads(zf.read(MANIFEST_NAME).decode("utf-8"))
    return str(data["id"])
