"""render-tag, the host: compiler, workers, dataset writers, audit.

`render_tag.RenderTagDataset(OUT)` reads a dataset.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "RenderTagDataset":  # lazy: the CLI should not pay for cv2/pydantic on `--help`
        from .dataset import RenderTagDataset

        return RenderTagDataset
    raise AttributeError(f"module 'render_tag' has no attribute {name!r}")
