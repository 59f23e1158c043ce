"""render_tag_shared.imaging: lens warp, radiometry, noise and PNG bytes (fast, no Blender)."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from render_tag_shared import imaging
from render_tag_shared.lens import project_points
from render_tag_shared.recipe import CameraIntrinsics, CameraRecipe, DynamicRange, SensorNoise, ToneMapping

from ..builders import pinhole

BC = pinhole(
    300.0,
    310.0,
    161.3,
    118.9,
    (320, 240),
    distortion_model="brown_conrady",
    distortion_coeffs=[-0.28, 0.09, 0.0015, -0.001, -0.01],
)
KB = pinhole(
    180.0,
    184.0,
    158.2,
    121.7,
    (320, 240),
    distortion_model="kannala_brandt",
    distortion_coeffs=[0.06, -0.015, 0.004, -0.0008],
)


def _checker(width: int, height: int, period: float = 9.7) -> np.ndarray:
    """A smooth-edged checker (float): bilinear sampling of it is well defined everywhere."""
    x, y = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    return 0.5 + 0.5 * np.sin(2 * np.pi * x / period) * np.sin(2 * np.pi * y / (period * 1.3))


@pytest.mark.parametrize("intrinsics", [BC, KB], ids=["brown_conrady", "kannala_brandt"])
def test_warp_matches_cv2_remap(intrinsics: dict) -> None:
    """Our bilinear warp of the overscan render equals cv2.remap with the same map."""
    intr = CameraIntrinsics.model_validate(intrinsics)
    assert intr.overscan is not None
    w, h = intr.overscan.resolution
    source = _checker(w, h)
    coords = imaging.source_map(intr)
    assert coords.shape == (240, 320, 2) and np.isfinite(coords).all()
    ours = imaging.warp_to_target(source, intr, coords=coords)
    theirs = cv2.remap(
        source.astype(np.float32),
        coords[..., 0].astype(np.float32),
        coords[..., 1].astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    # cv2 quantises the sub-pixel weights to 1/32: compare to that precision
    assert np.abs(ours - theirs).max() < 0.02
    assert np.abs(ours - theirs).mean() < 0.005


def test_brown_conrady_map_agrees_with_cv2_project_points() -> None:
    """A target pixel samples the overscan where its ray lands: cv2.projectPoints of that ray returns it."""
    intr = CameraIntrinsics.model_validate(BC)
    assert intr.overscan is not None
    coords = imaging.source_map(intr)
    k_over = np.asarray(intr.overscan.k_matrix)
    rng = np.random.default_rng(1)
    picks = np.stack([rng.integers(0, 320, 50), rng.integers(0, 240, 50)], axis=1)
    src = coords[picks[:, 1], picks[:, 0]]
    rays = np.stack(
        [(src[:, 0] - k_over[0, 2]) / k_over[0, 0], (src[:, 1] - k_over[1, 2]) / k_over[1, 1]], axis=1
    )
    obj = np.concatenate([rays, np.ones((50, 1))], axis=1)
    uv, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), intr.k, np.asarray(intr.distortion_coeffs))
    assert np.abs(uv.reshape(-1, 2) - picks).max() < 1e-6


def test_kannala_brandt_map_agrees_with_cv2_fisheye() -> None:
    intr = CameraIntrinsics.model_validate(KB)
    assert intr.overscan is not None and intr.overscan.projection == "equidistant"
    coords = imaging.source_map(intr)
    k_eq = np.asarray(intr.overscan.k_matrix)
    picks = np.array([[0, 0], [319, 0], [319, 239], [0, 239], [160, 120], [37, 201]])
    src = coords[picks[:, 1], picks[:, 0]]
    # the equidistant render: r_px = f * theta
    dx, dy = (src[:, 0] - k_eq[0, 2]) / k_eq[0, 0], (src[:, 1] - k_eq[1, 2]) / k_eq[1, 1]
    theta = np.hypot(dx, dy)
    rays = np.stack([np.sin(theta) * dx / theta, np.sin(theta) * dy / theta, np.cos(theta)], axis=1)
    uv, _ = cv2.fisheye.projectPoints(
        rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), intr.k, np.asarray(intr.distortion_coeffs)
    )
    assert np.abs(uv.reshape(-1, 2) - picks).max() < 1e-6


def test_warp_moves_a_point_where_projection_says() -> None:
    """A bright dot rendered at a ray's overscan pixel shows up at that ray's distorted target pixel."""
    intr = CameraIntrinsics.model_validate(BC)
    assert intr.overscan is not None
    w, h = intr.overscan.resolution
    point = np.array([0.21, -0.13, 1.0])
    src_uv = project_points(point, intr.overscan.k_matrix)
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    blob = np.exp(-((x - src_uv[0]) ** 2 + (y - src_uv[1]) ** 2) / (2 * 2.0**2))
    warped = imaging.warp_to_target(blob, intr)
    target = project_points(point, intr.k, "brown_conrady", intr.distortion_coeffs)
    yy, xx = np.mgrid[0:240, 0:320]
    win = (np.abs(xx - target[0]) < 8) & (np.abs(yy - target[1]) < 8)
    weights = warped * win
    centroid = np.array([(weights * xx).sum(), (weights * yy).sum()]) / weights.sum()
    assert np.linalg.norm(centroid - target) < 0.05


def test_warp_of_masks_keeps_values() -> None:
    intr = CameraIntrinsics.model_validate(BC)
    assert intr.overscan is not None
    w, h = intr.overscan.resolution
    mask = (np.arange(w)[None, :] // 17 + np.arange(h)[:, None] // 13).astype(np.uint16) % 5
    warped = imaging.warp_to_target(mask, intr, mode="nearest")
    assert warped.dtype == np.uint16 and set(np.unique(warped)) <= set(range(5))


def test_sample_bilinear_is_exact_on_pixel_centres_and_fills_outside() -> None:
    img = np.arange(12, dtype=np.float64).reshape(3, 4)
    coords = np.array([[0.0, 0.0], [3.0, 2.0], [1.5, 0.5], [-0.1, 0.0], [np.nan, 1.0], [3.01, 1.0]])
    out = imaging.sample_bilinear(img, coords, fill=-1.0)
    assert out.tolist() == [0.0, 11.0, 3.5, -1.0, -1.0, -1.0]


def test_srgb_curve() -> None:
    values = np.array([0.0, 0.0031308, 0.18, 0.5, 1.0, 2.0, -1.0])
    out = imaging.srgb_oetf(values)
    assert out[0] == 0.0 and out[4] == pytest.approx(1.0) and out[5] == pytest.approx(1.0) and out[6] == 0.0
    assert out[1] == pytest.approx(12.92 * 0.0031308)
    assert out[2] == pytest.approx(1.055 * 0.18 ** (1 / 2.4) - 0.055)
    assert out[3] == pytest.approx(0.7353569830524495)
    assert np.all(np.diff(imaging.srgb_oetf(np.linspace(0, 1, 1001))) > 0)


def test_tone_mapping_dynamic_range_and_quantisation() -> None:
    x = np.array([0.0, 0.25, 1.0, 4.0])
    assert imaging.apply_tone_mapping(x, ToneMapping(curve="linear")).tolist() == [0.0, 0.25, 1.0, 1.0]
    assert imaging.apply_tone_mapping(x, ToneMapping(curve="gamma", gamma=2.0)).tolist() == [
        0.0,
        0.5,
        1.0,
        1.0,
    ]
    levels = imaging.apply_dynamic_range(np.array([0.0, 1.0]), DynamicRange(black_level=0.1, white_level=0.9))
    assert levels.tolist() == pytest.approx([0.1, 0.9])
    assert imaging.quantize_8bit(np.array([0.0, 0.5, 1.0, 1.5, np.nan])).tolist() == [0, 128, 255, 255, 0]
    fixed = ToneMapping(metering="none", exposure_ev=2.0)
    assert imaging.apply_exposure(np.array([0.25]), fixed).tolist() == [1.0]


def test_auto_exposure_meters_the_99th_percentile() -> None:
    rng = np.random.default_rng(3)
    overexposed = rng.uniform(0.0, 4.0, size=(60, 80, 3))  # lights far too strong for the scene
    metered = imaging.apply_exposure(overexposed, ToneMapping())
    luminance = metered @ np.array([0.2126, 0.7152, 0.0722])
    assert np.percentile(luminance, 99) == pytest.approx(0.8)
    np.testing.assert_allclose(metered / overexposed, metered[0, 0, 0] / overexposed[0, 0, 0])  # one gain
    one_stop_up = imaging.apply_exposure(overexposed, ToneMapping(exposure_ev=1.0))
    np.testing.assert_allclose(one_stop_up, 2 * metered)
    assert imaging.apply_exposure(np.zeros((4, 4, 3)), ToneMapping()).max() == 0.0  # black stays black


def test_sensor_noise_is_reproducible_and_seeded() -> None:
    img = np.full((40, 50, 3), 0.4)
    noise = SensorNoise.model_validate(
        {
            "seed": 7,
            "layers": [
                {"type": "poisson", "photons_at_white": 500},
                {"type": "gaussian", "sigma": 0.01},
                {"type": "salt_pepper", "amount": 0.01},
            ],
        }
    )
    a = imaging.apply_sensor_noise(img, noise)
    b = imaging.apply_sensor_noise(img, noise)
    c = imaging.apply_sensor_noise(img, noise.model_copy(update={"seed": 8}))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.mean() - 0.4) < 0.02 and 0.01 < a.std() < 0.2
    assert imaging.apply_sensor_noise(img, None).tolist() == img.tolist()


def test_postprocess_pipeline_order() -> None:
    camera = CameraRecipe.model_validate(
        {
            "cam_to_world": np.eye(4).tolist(),
            "intrinsics": pinhole(100, 100, 1.5, 0.5, (4, 2)),
            "tone_mapping": {"curve": "srgb", "metering": "none", "exposure_ev": 1.0},
        }
    )
    linear = np.full((2, 4, 4), 0.09, dtype=np.float32)
    out = imaging.postprocess(linear, camera)
    assert out.shape == (2, 4, 3) and out.dtype == np.uint8
    assert int(out[0, 0, 0]) == round(255 * (1.055 * 0.18 ** (1 / 2.4) - 0.055))
    with pytest.raises(ValueError, match="render is"):
        imaging.postprocess(np.zeros((3, 3, 3)), camera)


@pytest.mark.parametrize("shape", [(7, 5), (6, 9, 1), (4, 3, 2), (5, 8, 3), (3, 4, 4)])
def test_png_round_trips_through_cv2(shape: tuple[int, ...], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=shape, dtype=np.uint8)
    data = imaging.encode_png(array)
    assert data == imaging.encode_png(array.copy()), "same array, same bytes"
    assert imaging.decode_png_header(data) == (shape[1], shape[0], 1 if len(shape) == 2 else shape[2])
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    expected = array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array
    if expected.ndim == 3 and expected.shape[2] == 3:
        expected = expected[..., ::-1]  # OpenCV reads BGR
    elif expected.ndim == 3 and expected.shape[2] == 4:
        expected = expected[..., [2, 1, 0, 3]]
    elif expected.ndim == 3 and expected.shape[2] == 2:  # OpenCV expands grey+alpha to BGRA
        expected = expected[..., [0, 0, 0, 1]]
    assert np.array_equal(decoded, expected)
    path = imaging.write_png_atomic(tmp_path / "sub" / "a.png", array)
    assert path.read_bytes() == data and [p.name for p in path.parent.iterdir()] == ["a.png"]


def test_png_has_no_metadata_chunks() -> None:
    data = imaging.encode_png(np.zeros((2, 2, 3), np.uint8))
    chunks = []
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos + 4 : pos + 8])
        assert zlib.crc32(data[pos + 4 : pos + 8 + length]) == int.from_bytes(
            data[pos + 8 + length : pos + 12 + length], "big"
        )
        pos += 12 + length
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]
    with pytest.raises(ValueError):
        imaging.encode_png(np.zeros((2, 2), np.float32))
