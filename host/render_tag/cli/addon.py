"""`render-tag addon build | install`: the extension zip, and installing it into a Blender."""

from __future__ import annotations

import sys
from pathlib import Path

from ..extension import BuildError, build_extension, current_platform, install_extension
from .exits import EXIT_FAILED, EXIT_OK
from .say import done

__all__ = ["main_build", "main_install"]


def main_build(
    out_dir: str | Path = "dist", split_platforms: bool = True, cache_dir: str | Path | None = None
) -> int:
    """`render-tag addon build [-o DIR]`: prints each zip with its size; 0 on success, 1 on failure."""
    try:
        zips = build_extension(Path(out_dir), split_platforms, Path(cache_dir) if cache_dir else None)
    except BuildError as exc:
        print(f"render-tag addon build: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for zip_path in zips:
        print(f"{zip_path}  ({zip_path.stat().st_size / 1e6:.1f} MB, validated)")
    done(
        [],
        None,
        ["render-tag addon install ZIP, or in Blender: Preferences > Get Extensions > Install from Disk"],
    )
    return EXIT_OK


def main_install(
    zip_path: str | Path | None = None, blender: str | None = None, out_dir: str | Path = "dist"
) -> int:
    """`render-tag addon install [ZIP] [--blender PATH]`: builds this platform's zip when none is given."""
    try:
        if zip_path is None:
            wanted = current_platform().replace("-", "_")
            zips = build_extension(Path(out_dir), split_platforms=True)
            matching = [z for z in zips if z.stem.endswith(wanted)]
            if not matching:
                raise BuildError(
                    f"no zip for this platform ({current_platform()}) among {[z.name for z in zips]}"
                )
            zip_path = matching[0]
        print(install_extension(Path(zip_path), blender).strip())
    except BuildError as exc:
        print(f"render-tag addon install: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
