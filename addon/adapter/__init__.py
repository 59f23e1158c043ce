"""The only place (besides the UI modules) that touches bpy: recipes in, Blender scenes and pixels out."""

from . import authoring, camera, datablocks, export, renderer, scene
from .camera import apply_view, k_from_blender, pinhole_settings, setup_camera
from .datablocks import abspath, orphan_counts, purge_orphans, remove_owned_orphans
from .renderer import configure_renderer, render_environment, render_linear
from .scene import WORK_SCENE, build_scene, select_camera, work_scene

__all__ = [
    "WORK_SCENE",
    "abspath",
    "apply_view",
    "authoring",
    "build_scene",
    "camera",
    "configure_renderer",
    "datablocks",
    "export",
    "k_from_blender",
    "orphan_counts",
    "pinhole_settings",
    "purge_orphans",
    "remove_owned_orphans",
    "render_environment",
    "render_linear",
    "renderer",
    "scene",
    "select_camera",
    "setup_camera",
    "work_scene",
]
