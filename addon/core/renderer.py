"""Render engines and the linear render: settings from the recipe, pixels into numpy.

Data renders are linear: the `Raw` view transform (never AgX or Filmic, which grey out white), no
look, exposure 0, gamma 1, no dithering, no compositor and no sequencer. The frame is written as an
uncompressed 32-bit float OpenEXR into a temporary folder and read back with numpy
(`render_tag_shared.exr`; the render result's own pixels are not readable without a window, and the
compositor's API changed in 5.0);
tone mapping, noise and quantisation then happen in `render_tag_shared.imaging`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

import bpy
import numpy as np

from render_tag_shared.devices import ComputeDevice, DeviceChoice, choose_device
from render_tag_shared.exr import UnsupportedExr, read_exr
from render_tag_shared.recipe import RendererSettings
from render_tag_shared.regions import MarkerRegion

from .datablocks import custom_prop, need, pixel_buffer, set_enum, temporarily

LIGHT_TREE_MIN_LIGHTS = 8
"""Cycles' light tree only pays off with many lights; below this many, lights are sampled without it.

Measured on the default job's scenes (1-2 lights and the world, 640x480, 16 samples, one thread): the
tree cost 10-15 % of the render time, and the per-pixel noise between two seeds was 5 % lower with it
on one scene and 22 % higher on another. The expected image is the same either way."""
BLENDER_DEFAULT_BOUNCES = 4
"""Cycles' default diffuse and glossy bounce limits, which a recipe's `max_bounces` caps."""

EEVEE_IDS = ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE")
"""EEVEE's engine id: BLENDER_EEVEE_NEXT in 4.2 to 4.4, BLENDER_EEVEE again from 5.0."""


def render_environment(scene: bpy.types.Scene) -> dict[str, str]:
    """What bit-identical pixels depend on (DESIGN.md): the Blender build, the engine and device that
    rendered `scene`, the denoiser, and the CPU model.

    Blender's Python API does not report the OIDN build; it ships with the Blender build, whose hash
    stands for it here.
    """
    import platform

    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            models = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    build = bpy.app.build_hash
    environment = {
        "blender": bpy.app.version_string,
        "blender_build": build.decode() if isinstance(build, bytes) else str(build),
        "engine": scene.render.engine,
        "cpu": cpu,
    }
    if scene.render.engine == "CYCLES":
        stored = scene.get(DEVICE_PROP)
        if isinstance(stored, str):  # what was asked for, the backend, and why auto fell back
            environment.update(json.loads(stored))
        environment["device"] = scene.cycles.device
        environment["denoiser"] = scene.cycles.denoiser if scene.cycles.use_denoising else "none"
    return environment


def _set_engine(scene: bpy.types.Scene, mode: str) -> str:
    if mode == "cycles":
        set_enum(scene.render, "engine", "CYCLES")
        return "CYCLES"
    if mode == "workbench":
        set_enum(scene.render, "engine", "BLENDER_WORKBENCH")
        return "BLENDER_WORKBENCH"
    for engine in EEVEE_IDS:
        try:
            set_enum(scene.render, "engine", engine)
        except TypeError:
            continue
        return engine
    raise RuntimeError(f"this Blender has none of the EEVEE engines {EEVEE_IDS}")


DEVICE_PROP = "render_tag_device"
"""Scene custom property: the device choice of the last `configure_renderer` (JSON), for the labels."""


def _cycles_preferences() -> Any:
    """Cycles' add-on preferences (its own class, not in the stubs), or None without Cycles."""
    user = bpy.context.preferences
    addon = user.addons.get("cycles") if user is not None else None
    return addon.preferences if addon is not None else None


def cycles_devices() -> tuple[list[ComputeDevice], list[str]]:
    """Every device Cycles reports for each compute backend of this build, and those backends.

    Asked per backend (not from `compute_device_type`): a factory-startup Blender has none set, which
    is how a GPU used to be missed and the CPU used silently.
    """
    prefs = _cycles_preferences()
    if prefs is None:
        return [], []
    backends = [str(item[0]) for item in prefs.get_device_types(bpy.context) if item[0] != "NONE"]
    devices = [
        ComputeDevice(backend, str(entry.name), str(entry.id))
        for backend in backends
        for entry in prefs.get_devices_for_type(backend)
        if entry.type == backend
    ]
    return devices, backends


def select_device(scene: bpy.types.Scene, requested: str) -> DeviceChoice:
    """Point Cycles at the device `renderer.device` asks for (`render_tag_shared.devices` decides).

    GpuUnavailableError (before anything renders) for `gpu` without a GPU; `auto` without one renders on
    the CPU and says so on stderr (the worker's log). The choice is kept on the scene for the labels.
    """
    devices, backends = cycles_devices() if requested.lower() != "cpu" else ([], [])
    choice = choose_device(requested, devices, backends)
    cycles = need(scene.cycles, "Cycles settings")
    if choice.device == "GPU":
        prefs = _cycles_preferences()
        prefs.compute_device_type = choice.backend
        wanted = {(d.backend, d.id) for d in choice.devices}
        for entry in prefs.devices:  # only the chosen GPUs: no CPU mixed in, so pixels are one device's
            entry.use = (str(entry.type), str(entry.id)) in wanted
    cycles.device = choice.device
    if choice.fallback is not None:
        print(
            f"render_tag: warning: renderer.device auto: {choice.fallback}; rendering on the CPU",
            file=sys.stderr,
        )
    scene[DEVICE_PROP] = json.dumps(choice.environment(), sort_keys=True)
    return choice


def configure_renderer(scene: bpy.types.Scene, settings: RendererSettings) -> str:
    """Engine, sampling and colour management for a data render; returns the engine id used."""
    engine = _set_engine(scene, settings.mode)
    render = scene.render
    render.film_transparent = False
    # no compositor, sequencer, stamp or dither: nothing may touch the pixels after the renderer. Persistent
    # data stays off: over the cameras of a scene it gave identical pixels and no measurable gain (README).
    for flag in ("use_compositing", "use_sequencer", "use_persistent_data", "use_stamp"):
        if hasattr(render, flag):
            setattr(render, flag, False)
    render.dither_intensity = 0.0
    render.filter_size = settings.filter_width_px
    view = need(scene.view_settings, "view settings")
    set_enum(view, "view_transform", "Raw")
    set_enum(view, "look", "None")
    view.exposure = 0.0
    view.gamma = 1.0
    view.use_curve_mapping = False
    set_enum(need(scene.display_settings, "display settings"), "display_device", "sRGB")
    if engine == "CYCLES":
        cycles = need(scene.cycles, "Cycles settings")
        select_device(scene, settings.device)
        cycles.samples = settings.samples
        cycles.use_adaptive_sampling = settings.noise_threshold is not None
        if settings.noise_threshold is not None:
            cycles.adaptive_threshold = settings.noise_threshold
        cycles.use_denoising = settings.denoise
        if settings.denoise:
            cycles.denoiser = "OPENIMAGEDENOISE"
        # The worker's scene outlives each recipe: every setting a recipe may change is set from Blender's
        # defaults, never from the scene's current value, so no recipe inherits from the one before it.
        cycles.max_bounces = settings.max_bounces
        cycles.diffuse_bounces = min(settings.max_bounces, BLENDER_DEFAULT_BOUNCES)
        cycles.glossy_bounces = min(settings.max_bounces, BLENDER_DEFAULT_BOUNCES)
        cycles.sample_clamp_direct = 0.0
        cycles.sample_clamp_indirect = 10.0
        set_enum(cycles, "sampling_pattern", "AUTOMATIC")
        cycles.seed = settings.seed % (2**31)
        cycles.use_animated_seed = False
        cycles.filter_width = settings.filter_width_px
        cycles.pixel_filter_type = settings.filter_type.upper()
        cycles.use_auto_tile = False
        if hasattr(cycles, "use_light_tree"):  # 3.5 and later
            lights = sum(1 for obj in scene.objects if obj.type == "LIGHT")
            tree = settings.light_tree
            cycles.use_light_tree = lights >= LIGHT_TREE_MIN_LIGHTS if tree is None else tree
    elif engine == "BLENDER_WORKBENCH":
        display = need(scene.display, "display settings")
        shading = need(display.shading, "shading")
        shading.light = "FLAT"
        shading.color_type = "TEXTURE"
        shading.show_shadows = False
        shading.show_cavity = False
        shading.show_specular_highlight = False
        # its 32-sample pattern shifts corners by a tenth of a pixel; supersampled, one sample per centre
        display.render_aa = "OFF" if settings.supersample > 1 else "32"
    else:
        eevee = need(scene.eevee, "EEVEE settings")
        eevee.taa_render_samples = 1 if settings.supersample > 1 else settings.samples
    scene[SUPERSAMPLE_PROP] = settings.supersample
    return engine


SUPERSAMPLE_PROP = "render_tag_supersample"
"""Scene custom property: `renderer.supersample`, for `render_linear` (each camera resets the percentage)."""


def reduce_supersampled(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Average each factor x factor block: the mean of the block's pixel centres is the low-res centre.

    High-res pixel u_s (OpenCV's convention, centre of the top-left pixel at 0) sits at
    (u_s + 0.5) / factor - 0.5 in the image, so block k's centres average to exactly k: no offset.
    """
    if factor == 1:
        return pixels
    h, w, channels = pixels.shape[0] // factor, pixels.shape[1] // factor, pixels.shape[2]
    # whole rows first, then neighbouring pixels: contiguous adds, 5x faster than numpy's strided sum
    rows = pixels.reshape(h, factor, w * factor * channels)  # a view: no copy of the large image
    summed = rows[:, 0].copy()
    for i in range(1, factor):
        summed += rows[:, i]
    columns = summed.reshape(h, w, factor, channels)
    reduced: np.ndarray = columns[:, :, 0].copy()
    for j in range(1, factor):
        reduced += columns[:, :, j]
    return reduced * np.float32(1.0 / (factor * factor))


def _linear_output(scene: bpy.types.Scene, path: str, half: bool = False) -> None:
    settings = scene.render.image_settings
    settings.file_format = "OPEN_EXR"
    settings.color_depth = "16" if half else "32"
    settings.exr_codec = "NONE"
    settings.color_mode = "RGBA"
    if hasattr(settings, "color_management"):
        settings.color_management = "FOLLOW_SCENE"
    scene.render.filepath = path
    scene.render.use_file_extension = False


def render_linear(scene: bpy.types.Scene) -> np.ndarray:
    """Render the scene's camera and return the linear float32 RGBA image (H, W, 4), row 0 on top."""
    factor = int(custom_prop(scene, SUPERSAMPLE_PROP, 1))
    with tempfile.TemporaryDirectory(prefix="render_tag_") as tmp:
        path = os.path.join(tmp, "frame.exr")
        # A supersampled frame is large; Workbench's flat texture colours lose nothing in half floats
        # (11-bit mantissa, averaged over factor^2 samples, against an 8-bit image).
        _linear_output(scene, path, half=factor > 1 and scene.render.engine == "BLENDER_WORKBENCH")
        window = getattr(bpy.context, "window", None)
        previous = window.scene if window is not None else None
        if window is not None and previous != scene:
            window.scene = scene
        scene.render.resolution_percentage = 100 * factor  # shift and sensor are relative: same projection
        try:
            bpy.ops.render.render(write_still=True, scene=scene.name)
        finally:
            scene.render.resolution_percentage = 100
            if window is not None and previous is not None and window.scene != previous:
                window.scene = previous
        if not os.path.exists(path):
            raise RuntimeError(f"Blender did not write the render of scene {scene.name!r}")
        try:
            pixels = read_exr(path)
        except UnsupportedExr:  # another Blender's writer: its own loader reads anything it writes
            pixels = load_with_blender(path)
    return reduce_supersampled(pixels, factor)


def load_with_blender(path: str) -> np.ndarray:
    """(H, W, 4) float32 of an image file through `bpy.data.images`, row 0 on top."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        w, h = image.size
        pixels = np.empty(w * h * 4, dtype=np.float32)
        pixel_buffer(image).foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(h, w, 4)[::-1].copy()


REGION_PAD_PX = 2
"""Pixels of border render around the region's bounding box: Blender rounds the border to whole pixels."""
WHOLE_ALPHA = 1.0 - 1e-4
"""A marker covers the pixel whole: alpha 1 up to the float rounding of a pixel filter's weights."""


def render_marker_region(
    scene: bpy.types.Scene,
    linear: np.ndarray,
    region: MarkerRegion,
    samples: int,
    holdouts: list[bpy.types.Object],
) -> np.ndarray:
    """Render the markers alone at `samples` Cycles samples and put their whole pixels into `linear` (the
    whole frame's render at the scene's own samples, row 0 on top).

    Only the region's bounding box is rendered (`use_border`, uncropped, so the frame keeps its size),
    and every object that is not a marker (`holdouts`) is a holdout there: it still casts shadows and
    lights the markers, but the camera sees a transparent hole through it, whose paths stop at once. A
    pixel a marker covers whole (alpha 1) takes the second render's value; every other pixel keeps the
    frame's. A pixel a marker covers in part cannot be laid "over" the frame, which already holds the
    marker's share of it (that would count it twice and move the edge), so the paper's outline and a
    box's silhouette over a marker keep the frame's samples: true, only noisier. The edges the labels
    measure lie inside the paper (a tag's quiet zone, a board's inner corners), where alpha is 1.

    The second render starts its own sample sequence rather than continuing the first's
    (`sample_offset`, 14 more instead of 16): the continued sequence measured worse at the markers'
    edges (ChArUco corners 0.097 px against 0.082, README "Render cost and accuracy").
    The scene's settings are restored after."""
    if region.empty:
        return linear
    render = scene.render
    height, width = linear.shape[:2]
    pad = REGION_PAD_PX
    settings: list[tuple[Any, str, Any]] = [
        (need(scene.cycles, "Cycles settings"), "samples", samples),
        (render, "film_transparent", True),
        (render, "use_crop_to_border", False),
        (render, "use_border", True),
        (render, "border_min_x", max(0, region.x0 - pad) / width),
        (render, "border_max_x", min(width, region.x1 + 1 + pad) / width),
        (render, "border_min_y", max(0, height - (region.y1 + 1 + pad)) / height),  # Blender's y runs up
        (render, "border_max_y", min(height, height - region.y0 + pad) / height),
        *((obj, "is_holdout", True) for obj in holdouts),
    ]
    with temporarily(settings):
        markers = render_linear(scene)
    whole = markers[:, :, 3] >= WHOLE_ALPHA
    out = linear.copy()
    out[whole] = markers[whole]
    return out
