"""The builders every test tier shares: camera poses, intrinsics, the DESIGN.md board, small datasets,
and extension zips that Blender must refuse.

No compiler and no Blender here. In the dataset builders, tags lie in the world plane z = 0 facing
+z and cameras look at them from above at several azimuths, elevations and rolls; their ground truth
is the recipe's projection (`camera_ground_truth`).
"""

from __future__ import annotations

import contextlib
import math
import re
import signal
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from render_tag.dataset.labels import write_labels_from_recipes
from render_tag.extension import WheelName
from render_tag_shared.boards import BoardDefinition
from render_tag_shared.recipe import (
    BoardObject,
    CameraIntrinsics,
    CameraRecipe,
    Pose,
    RecipeFile,
    SceneRecipe,
    TagObject,
)
from render_tag_shared.recipe_io import dump_recipe_file

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

K = [[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]]
CHARUCO = {
    "board_type": "charuco",
    "rows": 5,
    "cols": 7,
    "square_size_mm": 40.0,
    "marker_size_mm": 30.0,
    "dictionary": "DICT_5X5_100",
}
"""DESIGN.md's ChArUco board (5x7, 40 mm squares, 30 mm markers, DICT_5X5_100), in the config's units."""


def look_at(eye: Any, target: Any, roll_deg: float = 0.0, up: Any = (0.0, 0.0, 1.0)) -> list[list[float]]:
    """cam_to_world (OpenCV axes: x right, y down, z forward) of a camera at `eye` looking at `target`,
    with `up` pointing up in the image (y when the view is nearly parallel to it), then rolled."""
    eye_v, target_v = np.asarray(eye, float), np.asarray(target, float)
    z = target_v - eye_v
    z /= np.linalg.norm(z)
    up_v = np.asarray(up, float)
    if abs(float(np.dot(z, up_v / np.linalg.norm(up_v)))) > 0.99:
        up_v = np.array([0.0, 1.0, 0.0])
    x = np.cross(z, up_v)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    r = np.stack([x, y, z], axis=1)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    r = r @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = eye_v
    return m.tolist()


def quat_from_axis_angle(axis: Any, angle_rad: float) -> list[float]:
    a = np.asarray(axis, float)
    a /= np.linalg.norm(a)
    return [float(np.cos(angle_rad / 2)), *(float(c) for c in a * np.sin(angle_rad / 2))]


def pinhole(fx: float = 600.0, fy: float = 600.0, cx: float = 319.5, cy: float = 239.5,
            resolution: tuple[int, int] = (640, 480), **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A recipe's pinhole intrinsics as a dict (K and resolution; anything else passed through)."""
    return {"k_matrix": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "resolution": list(resolution), **extra}


def orbit(
    distance: float, azimuth_deg: float, elevation_deg: float, target: np.ndarray | None = None
) -> np.ndarray:
    target = np.zeros(3) if target is None else target
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return target + distance * np.array(
        [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
    )


def camera(
    name: str,
    eye: np.ndarray,
    target: np.ndarray | None = None,
    roll_deg: float = 0.0,
    k: list[list[float]] | None = None,
    resolution: tuple[int, int] = (640, 480),
    margin: float = 5.0,
    distortion: tuple[str, list[float]] = ("none", []),
) -> CameraRecipe:
    intrinsics = CameraIntrinsics(
        k_matrix=k or K,
        resolution=resolution,
        distortion_model=distortion[0],  # type: ignore[arg-type]
        distortion_coeffs=distortion[1],
        eval_margin_px=margin,
    )
    return CameraRecipe(
        name=name,
        cam_to_world=look_at(eye, np.zeros(3) if target is None else target, roll_deg),
        intrinsics=intrinsics,
    )


def tag_scene(scene_id: int, n_cameras: int = 3, family: str = "tag36h11") -> SceneRecipe:
    """Three tags side by side, seen by cameras at different azimuths, elevations and rolls."""
    tags = [
        TagObject(
            name=f"tag{i}",
            tag_family=family,
            tag_id=3 * scene_id + i,
            size_mm=80.0 + 10 * i,
            pose=Pose(position=(0.15 * (i - 1), 0.03 * i, 0.0)),
        )
        for i in range(3)
    ]
    cams = [
        camera(
            f"cam{j}",
            orbit(0.9 + 0.2 * j, 30.0 + 70.0 * j + 11 * scene_id, 55.0 + 10.0 * j),
            roll_deg=20.0 * j,
        )
        for j in range(n_cameras)
    ]
    return SceneRecipe(scene_id=scene_id, random_seed=1000 + scene_id, objects=tags, cameras=cams)


def charuco_scene(scene_id: int, n_cameras: int = 10, k: list[list[float]] | None = None) -> SceneRecipe:
    """A ChArUco board seen from `n_cameras` well spread views (enough for cv2.calibrateCamera)."""
    board = BoardObject(name="board", board=BoardDefinition.model_validate(CHARUCO))
    cams = []
    for j in range(n_cameras):
        azimuth = 360.0 * j / n_cameras
        elevation = 50.0 + 15.0 * (j % 3)
        target = np.array([0.03 * ((j % 3) - 1), 0.02 * ((j % 2) * 2 - 1), 0.0])
        cams.append(
            camera(
                f"cam{j}",
                orbit(0.75 + 0.05 * (j % 4), azimuth, elevation, target),
                target,
                roll_deg=15.0 * (j % 5) - 30.0,
                k=k,
            )
        )
    return SceneRecipe(scene_id=scene_id, random_seed=2000 + scene_id, objects=[board], cameras=cams)


def build_dataset(
    out: Path, recipes: list[SceneRecipe], write_recipes: bool = True, images: bool = False
) -> Path:
    """A labels-only dataset folder: labels/<image_id>.json (+ recipes.json; + plain grey PNGs of each
    camera's size in images/ with `images`, for the checks that look at the files)."""
    out.mkdir(parents=True, exist_ok=True)
    recipe_file = RecipeFile(job_id="job-test", recipes=recipes)
    write_labels_from_recipes(recipe_file, out)
    if write_recipes:
        (out / "recipes.json").write_text(dump_recipe_file(recipe_file), encoding="utf-8")
    if images:
        import cv2

        (out / "images").mkdir(exist_ok=True)
        for recipe in recipes:
            for index, cam in enumerate(recipe.cameras):
                width, height = cam.intrinsics.resolution
                grey = np.full((height, width), 128, dtype=np.uint8)
                cv2.imwrite(str(out / "images" / f"{recipe.image_id(index)}.png"), grey)
    return out


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raises TimeoutError in the main thread after `seconds` (SIGALRM; it also interrupts a blocking
    `open` of a FIFO): a test of "never hangs" fails instead of hanging the suite."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- extension zips


def edited_zip(src: Path, dst: Path, keep: Callable[[str], bool], manifest: Callable[[str], str]) -> Path:
    """A copy of zip `src` with only the entries `keep` accepts and its manifest passed through `manifest`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if not keep(info.filename):
                continue
            data = zin.read(info)
            if info.filename == "blender_manifest.toml":
                data = manifest(data.decode()).encode()
            zout.writestr(info, data)
    return dst


def zip_asking_for_blender(src: Path, dst: Path, minimum: str) -> Path:
    """The built zip `src` with `blender_version_min = minimum`: Blender refuses it at install."""
    old = 'blender_version_min = "4.2.0"'

    def manifest(text: str) -> str:
        assert old in text, "the built manifest no longer says " + old
        return text.replace(old, f'blender_version_min = "{minimum}"')

    return edited_zip(src, dst, lambda name: True, manifest)


def zip_without_python(src: Path, dst: Path, python: str) -> Path:
    """The built zip `src` without the compiled wheels that serve `python` ("3.13"), in files and lists.

    Blender derives a zip's Pythons from its wheel list and refuses to enable it under another Python
    (how a cp311-only zip failed on Blender 5.3). Both lists lose them (`wheels` and the generated one),
    so whichever a Blender reads, it sees a zip for the other Python only.
    """

    def keep(name: str) -> bool:
        if not name.startswith(("wheels/", "./wheels/")):
            return True
        wheel = WheelName.parse(name)
        return wheel.platform_tag == "any" or not wheel.serves(python)

    def manifest(text: str) -> str:
        for path in tomllib.loads(text)["wheels"]:
            if not keep(path):
                text = re.sub(r'\s*"' + re.escape(path) + '",?', "", text)
        edited = tomllib.loads(text)
        for listed in (edited["wheels"], edited["build"]["generated"]["wheels"]):
            assert all(keep(w) for w in listed) and len(listed) >= 7, listed
        return text

    return edited_zip(src, dst, keep, manifest)
