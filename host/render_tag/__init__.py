"""render-tag, the host: compiler, workers, dataset writers, audit.

The layout, one idea per folder, dependencies pointing down the list:
- cli/: arguments, printing and exit codes (the console script's `main`);
- pipeline.py: run = compile → render → merge → audit → preview;
- qa/: audit, verify, preview; dataset/: labels, merge, the reader, exports;
- batch/: render options, plan and resume, manifest, worker pool, launchers;
- compile/: config to recipes; extension.py: the add-on's zip; addon_source.py: where the add-on is.

`render_tag.RenderTagDataset(OUT)` reads a dataset.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "RenderTagDataset":  # lazy: the CLI should not pay for cv2/pydantic on `--help`
        from .dataset.reader import RenderTagDataset

        return RenderTagDataset
    raise AttributeError(f"module 'render_tag' has no attribute {name!r}")
