"""A dataset on disk: per-image labels, the merged dataset files, the reader, and exports."""

from .reader import RenderTagDataset

__all__ = ["RenderTagDataset"]
