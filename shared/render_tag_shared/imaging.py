"""Post-processing of a linear render into the 8-bit image a camera would record, and PNG output.

Blender renders the scene linear (a float buffer, `Raw` view transform) through an undistorted
pinhole, or an equidistant fisheye for Kannala-Brandt lenses. Everything a real camera adds after
the optics happens here in numpy, in this order, so it is reproducible bit for bit and identical
whichever Blender version or render engine made the pixels:

1. lens warp: resample the overscan render into the distorted target (`warp_to_target`);
2. exposure: metering (auto exposure to the recipe's target), then 2 ** exposure_ev (linear light);
3. sensor noise: the recipe's layers in order, seeded (`numpy.random.Generator(PCG64(seed))`);
4. sensor dynamic range (`DynamicRange.sensor_db`): light below the noise floor, white / 10 ** (dB / 20),
   is lost; the rest is stretched back to [0, 1] (full well stays white);
5. tone mapping: linear, sRGB OETF, a power-law gamma or AgX, clipped to [0, 1];
6. output levels: black + (white - black) * v;
7. quantisation to 8 or 16 bits (`DynamicRange.bit_depth`; round half to even, as numpy rounds).

PNG files are encoded here too (zlib, no timestamps, no text chunks), so the same array always gives
the same bytes; `write_png_atomic` writes them through a temporary file and `os.replace`.
Pure numpy: no cv2, no bpy.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from .files import write_bytes_atomic
from .lens import project_points, unproject_pixels
from .recipe import (
    CameraIntrinsics,
    CameraRecipe,
    DynamicRange,
    GaussianNoise,
    OverscanTarget,
    PoissonNoise,
    SaltPepperNoise,
    SensorNoise,
    ToneMapping,
)

__all__ = [
    "agx_tone",
    "apply_dynamic_range",
    "apply_exposure",
    "apply_sensor_noise",
    "apply_sensor_range",
    "apply_tone_mapping",
    "db_to_ratio",
    "decode_png_header",
    "encode_png",
    "postprocess",
    "quantize",
    "quantize_8bit",
    "quantize_16bit",
    "sample_bilinear",
    "sample_nearest",
    "source_map",
    "srgb_oetf",
    "warp_to_target",
    "write_bytes_atomic",
    "write_png_atomic",
]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]
UInt16Array = npt.NDArray[np.uint16]
AnyArray = npt.NDArray[np.generic]

# --------------------------------------------------------------------------- lens warp


def source_map(intrinsics: CameraIntrinsics, overscan: OverscanTarget | None = None) -> FloatArray:
    """(H, W, 2) coordinates in the overscan render to sample for every target pixel centre.

    For each target pixel: the ray through it (inverse of the target lens), projected by the camera
    Blender rendered: a pinhole with the overscan K, or the equidistant fisheye (Kannala-Brandt with
    zero coefficients and the fisheye's K). NaN where the target pixel has no ray.
    """
    target = overscan if overscan is not None else intrinsics.overscan
    if target is None:
        raise ValueError("source_map: the camera has no overscan target (no distortion to warp)")
    w, h = intrinsics.resolution
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays = unproject_pixels(
        np.stack([gx, gy], axis=-1),
        intrinsics.k,
        intrinsics.distortion_model,
        intrinsics.distortion_coeffs,
    )
    k_src = np.asarray(target.k_matrix, dtype=np.float64)
    if target.projection == "equidistant":
        return project_points(rays, k_src, "kannala_brandt", np.zeros(4))
    return project_points(rays, k_src, "none", None)


def _as_hwc(image: npt.ArrayLike) -> tuple[npt.NDArray[np.generic], bool]:
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr[:, :, None], True
    if arr.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {arr.shape}")
    return arr, False


def sample_bilinear(image: npt.ArrayLike, coords: npt.ArrayLike, fill: float = 0.0) -> FloatArray:
    """Bilinear samples of `image` at (..., 2) pixel coordinates (x, y), OpenCV's pixel centres.

    Pixel (i, j) holds the value at x = j, y = i, as cv2.remap with INTER_LINEAR reads it. Samples
    outside [0, W - 1] x [0, H - 1], and NaN coordinates, get `fill`: the overscan is sized so that
    no target pixel with a ray needs that.
    """
    src, squeeze = _as_hwc(image)
    xy = np.asarray(coords, dtype=np.float64)
    h, w = src.shape[:2]
    x, y = xy[..., 0], xy[..., 1]
    valid = np.isfinite(x) & np.isfinite(y)
    xs = np.where(valid, x, -10.0)
    ys = np.where(valid, y, -10.0)
    x0 = np.floor(xs)
    y0 = np.floor(ys)
    fx = (xs - x0)[..., None]
    fy = (ys - y0)[..., None]
    x0i = x0.astype(np.int64)
    y0i = y0.astype(np.int64)
    # inside [0, W-1] x [0, H-1]; on the last row/column the clipped neighbour has weight 0
    ok = valid & (xs >= 0.0) & (ys >= 0.0) & (xs <= w - 1) & (ys <= h - 1)
    xa = np.clip(x0i, 0, w - 1)
    ya = np.clip(y0i, 0, h - 1)
    xb = np.clip(x0i + 1, 0, w - 1)
    yb = np.clip(y0i + 1, 0, h - 1)
    s = src.astype(np.float64, copy=False)
    top = s[ya, xa] * (1.0 - fx) + s[ya, xb] * fx
    bottom = s[yb, xa] * (1.0 - fx) + s[yb, xb] * fx
    out = top * (1.0 - fy) + bottom * fy
    out = np.where(ok[..., None], out, fill)
    return out[..., 0] if squeeze else out


def sample_nearest(image: npt.ArrayLike, coords: npt.ArrayLike, fill: int | float = 0) -> AnyArray:
    """Nearest-neighbour samples (for masks and ids: values must not be blended); `fill` outside."""
    src, squeeze = _as_hwc(image)
    xy = np.asarray(coords, dtype=np.float64)
    h, w = src.shape[:2]
    valid = np.isfinite(xy[..., 0]) & np.isfinite(xy[..., 1])
    xi = np.floor(np.where(valid, xy[..., 0], -10.0) + 0.5).astype(np.int64)
    yi = np.floor(np.where(valid, xy[..., 1], -10.0) + 0.5).astype(np.int64)
    ok = valid & (xi >= 0) & (yi >= 0) & (xi < w) & (yi < h)
    out = src[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
    out = np.where(ok[..., None], out, np.asarray(fill, dtype=src.dtype))
    return out[..., 0] if squeeze else out


def warp_to_target(
    image: npt.ArrayLike,
    intrinsics: CameraIntrinsics,
    *,
    mode: Literal["bilinear", "nearest"] = "bilinear",
    coords: FloatArray | None = None,
    fill: float = 0.0,
) -> AnyArray:
    """The overscan render (or a mask rendered with it) resampled into the distorted target image.

    Images take `bilinear` (float64 out); masks and id buffers take `nearest` (dtype kept). Pass
    `coords` from `source_map` to reuse one map for an image and its masks.
    """
    src = np.asarray(image)
    target = intrinsics.overscan
    if target is not None and src.shape[:2] != (target.resolution[1], target.resolution[0]):
        raise ValueError(
            f"the render is {src.shape[1]}x{src.shape[0]} but the overscan target is "
            f"{target.resolution[0]}x{target.resolution[1]}"
        )
    xy = source_map(intrinsics) if coords is None else coords
    if mode == "nearest":
        return sample_nearest(src, xy, fill)
    return sample_bilinear(src, xy, fill)


# --------------------------------------------------------------------------- radiometry


METERING_PERCENTILE = 99.0
"""Auto exposure meters the luminance below which this percentage of the pixels lies."""


def metered_gain(linear: npt.ArrayLike, target: float) -> float:
    """The gain that puts the image's 99th-percentile luminance (Rec. 709 weights) at `target`.

    A camera's auto exposure: lights given in watts make no image too bright or too dark. A black
    image keeps gain 1.
    """
    img = np.asarray(linear, dtype=np.float64)
    luminance = img[..., :3] @ np.array([0.2126, 0.7152, 0.0722]) if img.ndim == 3 else img
    level = float(np.percentile(luminance, METERING_PERCENTILE))
    return target / level if level > 0 else 1.0


def apply_exposure(linear: npt.ArrayLike, tone: ToneMapping) -> FloatArray:
    """Linear light times the metered gain (when metering is auto) and 2 ** exposure_ev."""
    img = np.asarray(linear, dtype=np.float64)
    gain = metered_gain(img, tone.metering_target) if tone.metering == "auto" else 1.0
    return img * (gain * float(2.0**tone.exposure_ev))


def apply_sensor_noise(linear: npt.ArrayLike, noise: SensorNoise | None) -> FloatArray:
    """The noise layers applied in order, from one generator seeded with `noise.seed`.

    Gaussian: additive read noise of `sigma`. Poisson: photon counts with `photons_at_white`
    photons at 1.0 (negative values count as no light). Salt and pepper: `amount` of the pixels
    (all channels) forced to 0 or 1, half each. Same seed, same shape → the same image.
    """
    img = np.array(linear, dtype=np.float64, copy=True)
    if noise is None or not noise.layers:
        return img
    rng = np.random.Generator(np.random.PCG64(noise.seed))
    for layer in noise.layers:
        if isinstance(layer, GaussianNoise):
            if layer.sigma > 0:
                img = img + rng.normal(0.0, layer.sigma, size=img.shape)
        elif isinstance(layer, PoissonNoise):
            scale = float(layer.photons_at_white)
            img = rng.poisson(np.clip(img, 0.0, None) * scale).astype(np.float64) / scale
        elif isinstance(layer, SaltPepperNoise):
            if layer.amount > 0:
                pixel_shape = img.shape[:2]
                hit = rng.random(pixel_shape) < layer.amount
                salt = rng.random(pixel_shape) < 0.5
                value = np.where(salt, 1.0, 0.0)
                if img.ndim == 3:
                    img = np.where(hit[..., None], value[..., None], img)
                else:
                    img = np.where(hit, value, img)
        else:  # pragma: no cover - the recipe's discriminated union has no other member
            raise TypeError(f"unknown noise layer {layer!r}")
    return img


def srgb_oetf(linear: npt.ArrayLike) -> FloatArray:
    """IEC 61966-2-1 sRGB encoding of linear values clipped to [0, 1]."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def db_to_ratio(db: float) -> float:
    """A dynamic range in dB (20 log10, as sensor data sheets give it) as a ratio: 60 dB is 1000:1."""
    return float(10.0 ** (db / 20.0))


def apply_sensor_range(linear: npt.ArrayLike, sensor_db: float | None) -> FloatArray:
    """A sensor of `sensor_db` dB: the floor f = 1 / 10 ** (dB / 20) (white is 1.0 after exposure);
    (v - f) / (1 - f), clipped to [0, 1] (highlights clip at full well). None: unchanged.

    Monotonic, so an edge stays where it is; it crushes the shadows (a cheap sensor at 40 dB loses
    the darkest 1 %) and clips what auto exposure put above white."""
    img = np.asarray(linear, dtype=np.float64)
    if sensor_db is None:
        return img
    floor = 1.0 / db_to_ratio(sensor_db)
    return np.clip((img - floor) / (1.0 - floor), 0.0, 1.0)


# AgX as Blender 4.x ships it (Troy Sobotka's "AgX" base, sRGB display), in the widely used analytic
# form: an inset matrix (slight desaturation), log2 encoding over [-12.47393, 4.026069] stops around
# middle grey 0.18, a polynomial fit of the base contrast sigmoid, and the outset (inverse) matrix.
_AGX_INSET = np.array(
    [
        [0.842479062253094, 0.0423282422610123, 0.0423756549057051],
        [0.0784335999999992, 0.878468636469772, 0.0784336],
        [0.0792237451477643, 0.0791661274605434, 0.879142973793104],
    ]
)
_AGX_MIN_EV = -12.47393
_AGX_MAX_EV = 4.026069
_AGX_SIGMOID = (15.5, -40.14, 31.96, -6.868, 0.4298, 0.1191, -0.00232)
"""Coefficients of x^6 .. x^0 of the base contrast sigmoid."""


def agx_tone(linear: npt.ArrayLike) -> FloatArray:
    """AgX display values in [0, 1] of linear scene values (RGB in the last axis, or grey).

    Unlike sRGB it rolls highlights off over 4 stops above 1.0 instead of clipping them, and keeps
    some contrast in deep shadows. Monotonic in each channel for grey input, so edges stay put."""
    x = np.asarray(linear, dtype=np.float64)
    grey = x.ndim < 3 or x.shape[-1] != 3
    rgb = np.repeat(x[..., None], 3, axis=-1) if grey else x
    rgb = np.clip(rgb, 1e-10, None) @ _AGX_INSET  # rows of the inset act on row vectors
    encoded = (np.clip(np.log2(rgb), _AGX_MIN_EV, _AGX_MAX_EV) - _AGX_MIN_EV) / (_AGX_MAX_EV - _AGX_MIN_EV)
    curved = np.polyval(_AGX_SIGMOID, encoded)
    display = np.clip(curved @ np.linalg.inv(_AGX_INSET), 0.0, 1.0).astype(np.float64)
    return display[..., 0] if grey else display


def apply_tone_mapping(linear: npt.ArrayLike, tone: ToneMapping) -> FloatArray:
    """Display values in [0, 1]: clip (linear), the sRGB OETF, x ** (1 / gamma) or AgX (which rolls
    values above 1 off instead of clipping them). Exposure excluded."""
    if tone.curve == "agx":
        return agx_tone(np.clip(np.asarray(linear, dtype=np.float64), 0.0, None))
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    if tone.curve == "linear":
        return x
    if tone.curve == "srgb":
        return srgb_oetf(x)
    return np.power(x, 1.0 / float(tone.gamma))


def apply_dynamic_range(display: npt.ArrayLike, levels: DynamicRange) -> FloatArray:
    """Output levels: black + (white - black) * v (a lifted black and a capped white)."""
    v = np.asarray(display, dtype=np.float64)
    return levels.black_level + (levels.white_level - levels.black_level) * v


def quantize_8bit(values: npt.ArrayLike) -> UInt8Array:
    """uint8 of values in [0, 1]: round(255 v), clipped; NaN becomes 0."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)


def quantize_16bit(values: npt.ArrayLike) -> UInt16Array:
    """uint16 of values in [0, 1]: round(65535 v), clipped; NaN becomes 0."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return np.clip(np.rint(v * 65535.0), 0, 65535).astype(np.uint16)


def quantize(values: npt.ArrayLike, bit_depth: int) -> UInt8Array | UInt16Array:
    """`quantize_8bit` or `quantize_16bit`."""
    if bit_depth == 16:
        return quantize_16bit(values)
    if bit_depth == 8:
        return quantize_8bit(values)
    raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")


def postprocess(
    linear_rgb: npt.ArrayLike, camera: CameraRecipe, *, warp: bool = True
) -> UInt8Array | UInt16Array:
    """The 8- or 16-bit image of a camera from its linear render (overscan size when the lens distorts).

    Only the colour channels are used (an alpha channel is dropped). The warp runs first because
    a real lens acts on light before the sensor adds noise.
    """
    img = np.asarray(linear_rgb, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    intr = camera.intrinsics
    if warp and intr.distortion_model != "none":
        img = np.asarray(warp_to_target(img, intr), dtype=np.float64)
    elif img.shape[:2] != (intr.height, intr.width):
        size = f"{img.shape[1]}x{img.shape[0]}"
        raise ValueError(f"the render is {size}, the camera {intr.width}x{intr.height}")
    img = apply_exposure(img, camera.tone_mapping)
    img = apply_sensor_noise(img, camera.sensor_noise)
    img = apply_sensor_range(img, camera.dynamic_range.sensor_db)
    img = apply_tone_mapping(img, camera.tone_mapping)
    img = apply_dynamic_range(img, camera.dynamic_range)
    return quantize(img, camera.dynamic_range.bit_depth)


# --------------------------------------------------------------------------- PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(array: npt.ArrayLike, compress_level: int = 6) -> bytes:
    """PNG bytes of a uint8 or uint16 (H, W), (H, W, 1|2|3|4) array (row 0 at the top).

    Deterministic: IHDR, IDAT and IEND only (no time, no text, no gamma chunk), each row with the
    'Sub' filter, one zlib stream at a fixed level. The same array gives the same bytes everywhere
    zlib is the same, and decoders (cv2.imread with IMREAD_UNCHANGED, PIL, Blender) read the array
    back exactly. uint16 is written as PNG's 16-bit samples (big-endian), as masks and depth need.
    """
    arr = np.asarray(array)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png takes uint8 or uint16 arrays, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in _COLOUR_TYPE or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"encode_png takes (H, W) or (H, W, 1..4) arrays, got shape {np.shape(array)}")
    h, w, c = arr.shape
    depth = 8 * arr.dtype.itemsize
    rows = np.ascontiguousarray(arr.astype(">u2") if depth == 16 else arr).view(np.uint8).reshape(h, -1)
    bpp = c * arr.dtype.itemsize  # bytes per pixel: the Sub filter's step
    filtered = rows.copy()
    filtered[:, bpp:] = rows[:, bpp:] - rows[:, :-bpp]  # Sub filter: uint8 arithmetic wraps modulo 256
    raw = np.concatenate([np.ones((h, 1), dtype=np.uint8), filtered], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, depth, _COLOUR_TYPE[c], 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, compress_level))
        + _chunk(b"IEND", b"")
    )


def decode_png_header(data: bytes) -> tuple[int, int, int]:
    """(width, height, channels) from PNG bytes: a cheap check that a file is what was written."""
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
    channels = {v: k for k, v in _COLOUR_TYPE.items()}.get(colour)
    if depth not in (8, 16) or channels is None:
        raise ValueError(f"unsupported PNG: bit depth {depth}, colour type {colour}")
    return w, h, channels


def write_png_atomic(path: str | Path, array: npt.ArrayLike) -> Path:
    """encode_png, written atomically (no timestamps: the same pixels give the same bytes)."""
    return write_bytes_atomic(path, encode_png(array))
