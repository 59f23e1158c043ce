"""What every scene of a job shares: the validated camera, the lens, the asset listings, where recipes go."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from render_tag_shared.assets import check_asset
from render_tag_shared.config import GenConfig
from render_tag_shared.errors import InputError
from render_tag_shared.lens import unproject_pixels
from render_tag_shared.recipe import CameraIntrinsics, Pose
from render_tag_shared.truth import Lens

__all__ = ["HDRI_SUFFIXES", "TEXTURE_SUFFIXES", "CompileContext"]

HDRI_SUFFIXES = (".hdr", ".exr")
TEXTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".hdr", ".bmp", ".webp")


class CompileContext:
    """Per-config state, computed once: validated intrinsics, field of view, asset listings, seeds."""

    def __init__(
        self,
        config: GenConfig,
        source: str = "config",
        base_dir: str | Path | None = None,
        recipe_dir: str | Path | None = None,
    ):
        self.config = config
        self.source = source
        self.base_dir = Path(base_dir) if base_dir is not None else None
        # normalised, symlinks kept: a linked asset store stays where the user's folders say it is
        self.recipe_dir = Path(os.path.abspath(recipe_dir)) if recipe_dir is not None else None
        self.job_seed = config.dataset.seed
        cam = config.camera
        try:
            self.intrinsics = CameraIntrinsics(
                k_matrix=cam.intrinsics.k_matrix(cam.resolution),
                resolution=cam.resolution,
                distortion_model=cam.intrinsics.distortion_model,
                distortion_coeffs=list(cam.intrinsics.distortion_coeffs),
                eval_margin_px=cam.eval_margin_px,
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise InputError(
                source, "camera.intrinsics", str(first["msg"]).removeprefix("Value error, ")
            ) from exc
        except ValueError as exc:  # the overscan derivation refuses a folding lens
            raise InputError(source, "camera.intrinsics.distortion_coeffs", str(exc)) from exc
        self.lens = Lens(self.intrinsics)  # checked once for every pose the sampler judges
        k = self.intrinsics.k
        self.focal = math.sqrt(k[0, 0] * k[1, 1])
        self.view_x_rad, self.view_y_rad = self._field_of_view()
        self.total_samples = config.dataset.num_scenes * cam.samples_per_scene
        self.hdris = self._assets("lighting.hdri_folder", config.lighting.hdri_folder, HDRI_SUFFIXES)
        self.backgrounds = self._assets(
            "lighting.background_folder", config.lighting.background_folder, TEXTURE_SUFFIXES
        )
        self.origin = Pose()

    def _field_of_view(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Angles (radians) from the optical axis to the left/right and top/bottom edges of the valid
        image area (eval margin inset), through the lens: where a subject centre may be aimed."""
        intr, margin = self.intrinsics, self.config.camera.eval_margin_px
        (width, height), k = intr.resolution, intr.k
        cx, cy = k[0, 2], k[1, 2]
        edges = np.array(
            [[margin - 0.5, cy], [width - 0.5 - margin, cy], [cx, margin - 0.5], [cx, height - 0.5 - margin]]
        )
        rays = unproject_pixels(edges, k, intr.distortion_model, intr.distortion_coeffs)
        limit = math.radians(80.0)  # beyond this, tan() of an aim point is no longer useful
        angles: list[float] = []
        for (x, y, z), axis in zip(rays, (0, 0, 1, 1), strict=True):
            if not np.isfinite(z):  # outside a fisheye's image circle: fall back to the pinhole
                pixel = edges[len(angles)][axis]
                angle = math.atan((pixel - k[axis, 2]) / k[axis, axis])
            else:
                angle = math.atan2(x if axis == 0 else y, z)
            angles.append(max(-limit, min(limit, angle)))
        return (angles[0], angles[1]), (angles[2], angles[3])

    # -- assets --------------------------------------------------------------------------------

    def _assets(self, field: str, folder: str | None, suffixes: tuple[str, ...]) -> list[str]:
        """Sorted files of an asset folder as absolute, normalised paths; InputError when unusable.

        A relative folder is relative to the config file's folder (`base_dir`), else to the cwd. Every
        file with an image suffix must be a readable image (assets.check_asset): refused up front."""
        if folder is None:
            return []
        path = Path(folder)
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        if not path.is_dir():
            raise InputError(self.source, field, f"folder {str(path)!r} does not exist")
        path = Path(os.path.abspath(path))
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in suffixes)
        for file in files:  # every image the scenes may draw must be one (not a folder, device, junk)
            check_asset(file, self.source, field)
        if not files:
            raise InputError(self.source, field, f"folder {str(path)!r} holds no {'/'.join(suffixes)} file")
        return files

    def asset_path(self, path: str) -> str:
        """How a recipe names an asset (recipe.ASSET_PATHS): relative to the recipe file's folder (with
        `/` separators, so recipes and their assets move together between machines) when the compiler
        knows where the recipes go, else absolute."""
        if self.recipe_dir is None:
            return path
        try:
            return Path(os.path.relpath(path, self.recipe_dir)).as_posix()
        except ValueError:  # another drive (Windows): no relative path exists
            return path

    @property
    def asset_files(self) -> list[str]:
        return self.hdris + self.backgrounds
