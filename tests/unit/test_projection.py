"""Lens models against OpenCV, their inverse, overscan coverage, visibility, polygons and poses."""

from __future__ import annotations

import math
import subprocess
import sys

import cv2
import numpy as np
import pytest

from render_tag_shared import geometry as G
from render_tag_shared import image_space, lens, overscan

K = np.array([[600.0, 0.0, 319.5], [0.0, 610.0, 239.5], [0.0, 0.0, 1.0]])
RES = (640, 480)


def _random_bc(rng: np.random.Generator) -> np.ndarray:
    """Realistic Brown-Conrady sets: barrel or pincushion, small decentring."""
    return np.array(
        [
            rng.uniform(-0.35, 0.35),
            rng.uniform(-0.15, 0.15),
            rng.uniform(-0.004, 0.004),
            rng.uniform(-0.004, 0.004),
            rng.uniform(-0.04, 0.04),
        ]
    )


def _random_kb(rng: np.random.Generator) -> np.ndarray:
    """Realistic Kannala-Brandt sets, as fisheye calibrations report them."""
    return np.array(
        [
            rng.uniform(-0.05, 0.05),
            rng.uniform(-0.01, 0.01),
            rng.uniform(-0.004, 0.004),
            rng.uniform(-0.0008, 0.0008),
        ]
    )


def _directions(rng: np.random.Generator, n: int, theta_max: float) -> np.ndarray:
    """Points at random depth, angles from the axis uniform in [0, theta_max)."""
    theta = rng.uniform(0.0, theta_max, n)
    az = rng.uniform(0.0, 2 * np.pi, n)
    d = rng.uniform(0.1, 20.0, n)
    return (
        np.column_stack([np.sin(theta) * np.cos(az), np.sin(theta) * np.sin(az), np.cos(theta)]) * d[:, None]
    )


def _border_and_grid(res: tuple[int, int], grid_step: float = 7.0) -> np.ndarray:
    """Every border pixel centre, every half-pixel point on the image-area edge, and an interior grid."""
    w, h = res
    pts = []
    for y in (-0.5, 0.0, h - 1.0, h - 0.5):
        xs = np.arange(-0.5, w - 0.5 + 1e-9, 0.5)
        pts.append(np.column_stack([xs, np.full_like(xs, y)]))
    for x in (-0.5, 0.0, w - 1.0, w - 0.5):
        ys = np.arange(-0.5, h - 0.5 + 1e-9, 0.5)
        pts.append(np.column_stack([np.full_like(ys, x), ys]))
    gx, gy = np.meshgrid(np.arange(-0.5, w - 0.5, grid_step), np.arange(-0.5, h - 0.5, grid_step))
    pts.append(np.column_stack([gx.ravel(), gy.ravel()]))
    return np.concatenate(pts)


# --------------------------------------------------------------------------- contract


def test_models_and_coefficient_counts() -> None:
    assert lens.DISTORTION_MODELS == ("none", "brown_conrady", "kannala_brandt")
    assert [lens.expected_coeff_count(m) for m in lens.DISTORTION_MODELS] == [0, 5, 4]
    with pytest.raises(ValueError, match="unknown distortion model"):
        lens.expected_coeff_count("fisheye")
    with pytest.raises(ValueError, match="takes 5"):
        lens.project_points(np.ones((1, 3)), K, "brown_conrady", [0.1, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="no skew"):
        lens.project_points(np.ones((1, 3)), [[600, 1, 320], [0, 600, 240], [0, 0, 1]], "none", [])


def test_shared_module_does_not_import_cv2() -> None:
    code = (
        "import sys, render_tag_shared.lens, render_tag_shared.overscan, render_tag_shared.image_space, "
        "render_tag_shared.geometry, render_tag_shared.blender_camera; "
        "bad = {'cv2', 'bpy', 'zmq'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- parity with OpenCV


def test_pinhole_matches_cv2() -> None:
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(-5, 5, 2000), rng.uniform(-5, 5, 2000), rng.uniform(0.05, 10, 2000)])
    ref = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, np.zeros(5))[0].reshape(-1, 2)
    np.testing.assert_allclose(lens.project_points(pts, K, "none", []), ref, rtol=1e-12, atol=1e-6)


def test_brown_conrady_matches_cv2() -> None:
    rng = np.random.default_rng(2)
    for _ in range(25):
        c = _random_bc(rng)
        # far off-axis too: normalised radius up to 4 (76 degrees), where the polynomial is wild
        pts = np.column_stack([rng.uniform(-4, 4, 400), rng.uniform(-4, 4, 400), np.ones(400)])
        pts *= rng.uniform(0.1, 20.0, (400, 1))
        pts = np.vstack([pts, [[0.0, 0.0, 1.0], [1e-9, -1e-9, 2.0]]])
        ref = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, c)[0].reshape(-1, 2)
        got = lens.project_points(pts, K, "brown_conrady", c)
        # 1e-6 px absolute; relative 1e-12 only matters for points projected millions of px away
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-6)


def test_kannala_brandt_matches_cv2() -> None:
    rng = np.random.default_rng(3)
    for _ in range(25):
        c = _random_kb(rng)
        pts = np.vstack([_directions(rng, 400, math.radians(89.99)), [[0.0, 0.0, 3.0], [1e-12, 0.0, 1.0]]])
        ref = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, c)[0].reshape(
            -1, 2
        )
        np.testing.assert_allclose(lens.project_points(pts, K, "kannala_brandt", c), ref, rtol=0, atol=1e-6)


def test_wrong_coefficient_order_would_be_caught() -> None:
    """The parity tests discriminate: swapping p1 and p2 moves points by far more than 1e-6 px."""
    c = np.array([-0.2, 0.05, 0.003, -0.002, 0.01])
    pts = np.array([[0.4, -0.3, 1.0], [-0.5, 0.2, 1.0]])
    ref = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, c)[0].reshape(-1, 2)
    swapped = lens.project_points(pts, K, "brown_conrady", c[[0, 1, 3, 2, 4]])
    assert np.abs(swapped - ref).max() > 0.1


def test_points_behind_camera_are_nan() -> None:
    pts = np.array([[0.1, 0.2, -1.0], [0.1, 0.2, 0.0], [0.0, 0.0, 0.0], [0.1, 0.2, 1.0], [np.nan, 0.0, 1.0]])
    for model, c in (("none", []), ("brown_conrady", [-0.2, 0.05, 0.001, 0.001, 0.0])):
        uv = lens.project_points(pts, K, model, c)
        assert np.isnan(uv[[0, 1, 2, 4]]).all()
        assert np.isfinite(uv[3]).all()
    kb = lens.project_points(pts, K, "kannala_brandt", [0.01, 0.0, 0.0, 0.0])
    assert np.isfinite(kb[[0, 1, 3]]).all()  # a fisheye images the side and behind
    assert np.isnan(kb[2]).all() and np.isnan(kb[4]).all()
    assert np.isnan(lens.project_points([[0.0, 0.0, -1.0]], K, "kannala_brandt", np.zeros(4))).all()


def test_kannala_brandt_beyond_90_degrees() -> None:
    """Past 90 degrees theta keeps growing: r = f * theta_d(theta) along the point's azimuth."""
    c = np.array([-0.02, 0.003, -0.0005, 0.00004])
    theta = np.radians([60.0, 89.0, 90.0, 91.0, 120.0, 170.0])
    az = np.radians([10.0, 100.0, 200.0, 300.0, 45.0, 250.0])
    pts = 2.5 * np.column_stack([np.sin(theta) * np.cos(az), np.sin(theta) * np.sin(az), np.cos(theta)])
    theta_d = theta * (1 + c[0] * theta**2 + c[1] * theta**4 + c[2] * theta**6 + c[3] * theta**8)
    expected = np.column_stack(
        [K[0, 0] * theta_d * np.cos(az) + K[0, 2], K[1, 1] * theta_d * np.sin(az) + K[1, 2]]
    )
    np.testing.assert_allclose(lens.project_points(pts, K, "kannala_brandt", c), expected, rtol=0, atol=1e-9)


def test_leading_shape_is_kept() -> None:
    pts = np.ones((4, 5, 3))
    assert lens.project_points(pts, K).shape == (4, 5, 2)
    assert lens.unproject_pixels(np.zeros((2, 3, 2)), K).shape == (2, 3, 3)
    assert lens.project_points([0.1, 0.2, 1.0], K).shape == (2,)


# --------------------------------------------------------------------------- inverse


@pytest.mark.parametrize("model", lens.DISTORTION_MODELS)
def test_unproject_round_trip(model: str) -> None:
    rng = np.random.default_rng(4)
    gx, gy = np.meshgrid(np.linspace(-0.5, 639.5, 161), np.linspace(-0.5, 479.5, 121))
    uv = np.column_stack([gx.ravel(), gy.ravel()])
    for _ in range(8):
        c = {"none": np.zeros(0), "brown_conrady": _random_bc(rng), "kannala_brandt": _random_kb(rng)}[model]
        rays = lens.unproject_pixels(uv, K, model, c)
        assert np.isfinite(rays).all()
        np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(lens.project_points(rays, K, model, c), uv, rtol=0, atol=1e-9)
        # and the other way round: points -> pixels -> the same directions
        pts = _directions(rng, 300, 0.6)
        back = lens.unproject_pixels(lens.project_points(pts, K, model, c), K, model, c)
        unit = pts / np.linalg.norm(pts, axis=1, keepdims=True)
        np.testing.assert_allclose(back, unit, rtol=0, atol=1e-11)


def test_brown_conrady_jacobian_matches_finite_differences() -> None:
    """Newton's step and the fold test (det J > 0) rely on the analytic Jacobian."""
    rng = np.random.default_rng(9)
    c = _random_bc(rng)
    x, y = rng.uniform(-0.8, 0.8, 50), rng.uniform(-0.8, 0.8, 50)
    h = 1e-6
    j = lens._bc_jacobian(x, y, c)
    dx = [
        (a - b) / (2 * h)
        for a, b in zip(lens._bc_distort(x + h, y, c), lens._bc_distort(x - h, y, c), strict=True)
    ]
    dy = [
        (a - b) / (2 * h)
        for a, b in zip(lens._bc_distort(x, y + h, c), lens._bc_distort(x, y - h, c), strict=True)
    ]
    for analytic, numeric in zip(j, [dx[0], dy[0], dx[1], dy[1]], strict=True):
        np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-8)


def test_unproject_wide_fisheye_past_90_degrees() -> None:
    k_wide = np.array([[330.0, 0.0, 639.5], [0.0, 330.0, 479.5], [0.0, 0.0, 1.0]])
    c = np.array([-0.01, 0.002, -0.0005, 0.00005])
    uv = _border_and_grid((1280, 960), 13.0)
    rays = lens.unproject_pixels(uv, k_wide, "kannala_brandt", c)
    assert (rays[:, 2] < 0).any()  # the corners look behind the principal plane
    np.testing.assert_allclose(lens.project_points(rays, k_wide, "kannala_brandt", c), uv, rtol=0, atol=1e-9)


def test_unproject_returns_nan_outside_the_lens_domain() -> None:
    # k1 = -0.5: r (1 - 0.5 r^2) peaks at r = sqrt(2/3) with distorted radius 0.544
    c = np.array([-0.5, 0.0, 0.0, 0.0, 0.0])
    k = np.array([[100.0, 0.0, 0.0], [0.0, 100.0, 0.0], [0.0, 0.0, 1.0]])
    rays = lens.unproject_pixels(
        [[50.0, 0.0], [0.0, -54.0], [60.0, 0.0], [40.0, 45.0]], k, "brown_conrady", c
    )
    assert np.isfinite(rays[:2]).all() and np.isnan(rays[2:]).all()
    assert math.atan(math.hypot(*rays[0, :2]) / rays[0, 2]) < lens.max_valid_angle("brown_conrady", c)
    # an equidistant lens without distortion: nothing beyond theta = pi, i.e. r = pi * f
    rays = lens.unproject_pixels([[310.0, 0.0], [0.0, 320.0]], k, "kannala_brandt", np.zeros(4))
    assert np.isfinite(rays[0]).all() and np.isnan(rays[1]).all()
    assert rays[0, 2] == pytest.approx(math.cos(3.1))
    assert np.isnan(lens.unproject_pixels([[np.nan, 1.0]], K, "brown_conrady", c)).all()


def test_in_lens_domain_flags_folded_points() -> None:
    c = np.array([-0.5, 0.0, 0.0, 0.0, 0.0])
    # normalised radius 1.2 is past the fold at 0.816, yet cv2 maps it to radius 0.336: inside the image
    folded = np.array([[1.2, 0.0, 1.0]])
    assert np.isfinite(lens.project_points(folded, K, "brown_conrady", c)).all()
    mask = lens.in_lens_domain(np.vstack([folded, [[0.5, 0.0, 1.0], [0.1, 0.1, -1.0]]]), "brown_conrady", c)
    assert mask.tolist() == [False, True, False]
    assert lens.in_lens_domain([[1.0, 0.0, -1.0]], "kannala_brandt", np.zeros(4)).tolist() == [True]
    assert lens.max_valid_angle("none") == pytest.approx(math.pi / 2)
    assert lens.max_valid_angle("kannala_brandt", np.zeros(4)) == pytest.approx(math.pi)


# --------------------------------------------------------------------------- overscan


def _bc_sets() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    fixed = [
        np.zeros(5),
        np.array([-0.35, 0.12, 0.001, -0.002, -0.02]),  # strong barrel
        np.array([0.3, 0.1, -0.003, 0.003, 0.04]),  # pincushion
    ]
    return fixed + [_random_bc(rng) for _ in range(5)]


@pytest.mark.parametrize("coeffs", _bc_sets(), ids=lambda c: ",".join(f"{v:.3g}" for v in c))
def test_linear_overscan_covers_every_target_ray(coeffs: np.ndarray) -> None:
    k = np.array([[500.0, 0.0, 301.2], [0.0, 520.0, 255.7], [0.0, 0.0, 1.0]])  # off-centre principal point
    margin = 2.0
    k_over, (w_over, h_over) = overscan.linear_overscan(k, RES, coeffs, margin_px=margin)
    assert k_over[0, 0] == k[0, 0] and k_over[1, 1] == k[1, 1]
    assert (k_over[:2, 2] - k[:2, 2]) == pytest.approx(np.round(k_over[:2, 2] - k[:2, 2]))  # grid aligned
    assert w_over >= RES[0] and h_over >= RES[1]
    rays = lens.unproject_pixels(_border_and_grid(RES), k, "brown_conrady", coeffs)
    src = lens.project_points(rays, k_over, "none", [])
    lo = src.min(axis=0)
    hi = src.max(axis=0)
    assert lo[0] >= margin and lo[1] >= margin
    assert hi[0] <= w_over - 1 - margin and hi[1] <= h_over - 1 - margin
    # tight: every padded side is needed (one pixel less would break coverage)
    pads = [k_over[0, 2] - k[0, 2], k_over[1, 2] - k[1, 2]]
    slack = [lo[0] - margin, lo[1] - margin, w_over - 1 - margin - hi[0], h_over - 1 - margin - hi[1]]
    right_pad = w_over - RES[0] - pads[0]
    bottom_pad = h_over - RES[1] - pads[1]
    for pad, s in zip([*pads, right_pad, bottom_pad], slack, strict=True):
        assert pad == 0 or s < 1.0
    assert w_over * h_over < 2.5 * RES[0] * RES[1]  # strong barrel (k1 = -0.35) needs 2.2x


def test_linear_overscan_without_distortion_is_an_integer_shift() -> None:
    k_over, size = overscan.linear_overscan(K, RES, np.zeros(5), margin_px=2)
    assert size == (646, 486)  # three whole pixels each side: 2 px margin + the half-pixel image edge
    np.testing.assert_array_equal(k_over[:2, 2], K[:2, 2] + 3)
    m = overscan.resample_map(K, RES, "brown_conrady", np.zeros(5), k_over, "none")
    gx, gy = np.meshgrid(np.arange(RES[0]), np.arange(RES[1]))
    np.testing.assert_allclose(m, np.stack([gx + 3, gy + 3], axis=-1), rtol=0, atol=1e-9)


def test_linear_overscan_rejects_a_lens_that_folds_inside_the_image() -> None:
    with pytest.raises(ValueError, match="folds"):
        overscan.linear_overscan(K, RES, [-0.9, 0.0, 0.0, 0.0, 0.0])


def test_resample_map_for_distorted_target_stays_inside_the_render() -> None:
    c = np.array([-0.3, 0.1, 0.001, -0.002, -0.02])
    k_over, (w_over, h_over) = overscan.linear_overscan(K, RES, c, margin_px=2)
    m = overscan.resample_map(K, RES, "brown_conrady", c, k_over)
    assert m.shape == (RES[1], RES[0], 2)
    assert m[..., 0].min() >= 2 and m[..., 0].max() <= w_over - 3
    assert m[..., 1].min() >= 2 and m[..., 1].max() <= h_over - 3
    # centre barely moves, corners move outwards (barrel)
    assert abs(m[240, 320, 0] - (320 + k_over[0, 2] - K[0, 2])) < 0.5
    assert m[0, 0, 0] < k_over[0, 2] - K[0, 2] - 5


def _kb_cases() -> list[tuple[np.ndarray, tuple[int, int], np.ndarray]]:
    rng = np.random.default_rng(6)
    cases = [(K, RES, _random_kb(rng)) for _ in range(4)]
    k_wide = np.array([[330.0, 0.0, 639.5], [0.0, 330.0, 479.5], [0.0, 0.0, 1.0]])  # ~290 deg diagonal
    cases.append((k_wide, (1280, 960), np.array([-0.01, 0.002, -0.0005, 0.00005])))
    k_portrait = np.array([[280.0, 0.0, 250.0], [0.0, 285.0, 330.0], [0.0, 0.0, 1.0]])
    cases.append((k_portrait, (480, 640), np.zeros(4)))
    return cases


@pytest.mark.parametrize("case", _kb_cases())
def test_equidistant_overscan_covers_every_target_ray(
    case: tuple[np.ndarray, tuple[int, int], np.ndarray],
) -> None:
    k, res, coeffs = case
    margin = 2.0
    fov, square, k_equi = overscan.equidistant_overscan(k, res, coeffs, margin_px=margin)
    np.testing.assert_allclose(k_equi, overscan.equidistant_k(fov, square))
    assert k_equi[0, 0] == pytest.approx(max(k[0, 0], k[1, 1]))  # same centre magnification
    rays = lens.unproject_pixels(_border_and_grid(res), k, "kannala_brandt", coeffs)
    src = overscan.project_equidistant(rays, fov, square)
    radius = np.hypot(*(src - (square - 1) / 2).T)
    limit = square / 2 - margin - overscan.FISHEYE_EDGE_GUARD_PX
    assert radius.max() <= limit
    assert radius.max() > limit - 1.0  # and not bigger than needed
    assert src.min() >= margin and src.max() <= square - 1 - margin


def test_equidistant_k_matches_cycles_fisheye_formula() -> None:
    """Cycles: u, v = 2 * raster / S - 1, r = |(u, v)|, theta = r * fov / 2 (raster = OpenCV px + 0.5)."""
    fov, square = math.radians(200.0), 901
    px = np.array([[450.0, 450.0], [0.0, 450.0], [900.0, 450.0], [450.0, -0.5], [700.0, 123.0]])
    u = 2.0 * (px + 0.5) / square - 1.0
    theta_cycles = np.hypot(u[:, 0], u[:, 1]) * fov / 2
    rays = lens.unproject_pixels(px, overscan.equidistant_k(fov, square), "kannala_brandt", np.zeros(4))
    theta = np.arctan2(np.hypot(rays[:, 0], rays[:, 1]), rays[:, 2])
    np.testing.assert_allclose(theta, theta_cycles, rtol=0, atol=1e-12)
    assert theta[3] == pytest.approx(fov / 2)  # the top edge of the square is the edge of the fov


def test_equidistant_overscan_rejects_more_than_360_degrees() -> None:
    k = np.array([[150.0, 0.0, 639.5], [0.0, 150.0, 479.5], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError):
        overscan.equidistant_overscan(k, (1280, 960), np.zeros(4))


# --------------------------------------------------------------------------- visibility


def test_visibility_margin_edges() -> None:
    w, h, m = 640, 480, 5.0
    uv = np.array(
        [
            [m - 0.5, m - 0.5],  # exactly on the valid area's corner
            [w - 0.5 - m, h - 0.5 - m],  # the opposite corner
            [m - 0.5 - 1e-9, 100.0],  # just inside the margin
            [100.0, h - 0.5 - m + 1e-9],
            [320.0, 240.0],
            [-3.0, 240.0],  # outside the image
            [700.0, 700.0],
            [np.nan, 3.0],  # not labelled
            [np.inf, 3.0],
        ]
    )
    vis = image_space.visibility(uv, (w, h), m)
    assert vis.dtype == np.int8
    assert vis.tolist() == [2, 2, 1, 1, 2, 1, 1, 0, 0]
    # margin 0: the image area is [-0.5, W - 0.5]
    assert image_space.visibility([[-0.5, -0.5], [639.5, 479.5], [639.51, 0.0]], (w, h), 0).tolist() == [
        2,
        2,
        1,
    ]


def test_apply_sentinel() -> None:
    uv = np.array([[1.0, 2.0], [np.nan, np.nan], [700.0, 3.0]])
    vis = image_space.visibility(uv, RES, 2)
    out = image_space.apply_sentinel(uv, vis)
    np.testing.assert_array_equal(out, [[1.0, 2.0], [-1.0, -1.0], [700.0, 3.0]])
    assert np.isnan(uv[1]).all()  # the input is not modified
    with pytest.raises(ValueError):
        image_space.apply_sentinel(uv, vis[:2])


# --------------------------------------------------------------------------- polygons


def test_polygon_sign_in_image_coordinates() -> None:
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # TL, TR, BR, BL: clockwise on screen
    assert image_space.polygon_area(square) == pytest.approx(1.0)
    assert image_space.is_clockwise_in_image(square)
    assert image_space.polygon_area(square[::-1]) == pytest.approx(-1.0)
    assert not image_space.is_clockwise_in_image(square[::-1])
    assert not image_space.is_clockwise_in_image([[0.0, 0.0], [np.nan, 0.0], [1.0, 1.0]])
    # a tag facing the camera, corners TL, TR, BR, BL in the OpenCV camera frame (y down): positive
    a, d = 0.05, 1.0
    tag = np.array([[-a, -a, d], [a, -a, d], [a, a, d], [-a, a, d]])
    uv = lens.project_points(tag, K, "brown_conrady", [-0.2, 0.05, 0.0, 0.0, 0.0])
    assert image_space.polygon_area(uv) > 0
    # seen from behind (mirror the tag in x), the same corner order turns counter-clockwise
    assert image_space.polygon_area(lens.project_points(tag * [-1, 1, 1], K)) < 0


def test_bbox_xywh() -> None:
    uv = np.array([[10.0, 20.0], [30.0, 5.0], [np.nan, np.nan], [-4.0, 500.0]])
    assert image_space.bbox_xywh(uv) == pytest.approx((-4.0, 5.0, 34.0, 495.0))
    assert image_space.bbox_xywh(uv, clip_resolution=RES) == pytest.approx((-0.5, 5.0, 30.5, 474.5))
    with pytest.raises(ValueError):
        image_space.bbox_xywh([[np.nan, 1.0]])


# --------------------------------------------------------------------------- geometry


def test_quaternion_conventions() -> None:
    s = math.sqrt(0.5)
    r = G.quat_to_matrix([s, 0.0, 0.0, s])  # +90 degrees about z: x -> y
    np.testing.assert_allclose(r @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(G.quat_to_matrix([2.0, 0.0, 0.0, 0.0]), np.eye(3))  # normalised
    rng = np.random.default_rng(7)
    quats = rng.normal(size=(200, 4))
    quats = np.vstack([quats, [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, s, s, 0], [1e-9, 0, 0, 1]]])
    for q in quats:
        q = q / np.linalg.norm(q)
        m = G.quat_to_matrix(q)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(m) == pytest.approx(1.0)
        back = G.matrix_to_quat(m)
        assert back[0] >= 0
        np.testing.assert_allclose(back, q if q[0] >= 0 else -q, atol=1e-9)
    with pytest.raises(ValueError):
        G.quat_to_matrix([0.0, 0.0, 0.0, 0.0])


def test_rigid_transforms() -> None:
    rng = np.random.default_rng(8)
    q = rng.normal(size=4)
    pose = G.pose_matrix([1.0, -2.0, 0.5], q)
    np.testing.assert_allclose(pose[:3, :3], G.quat_to_matrix(q))
    np.testing.assert_allclose(G.invert_rigid(pose) @ pose, np.eye(4), atol=1e-12)
    pts = rng.normal(size=(10, 3))
    moved = G.transform_points(pose, pts)
    np.testing.assert_allclose(moved, (pose @ np.column_stack([pts, np.ones(10)]).T).T[:, :3])
    np.testing.assert_allclose(G.transform_points(G.invert_rigid(pose), moved), pts, atol=1e-12)
    np.testing.assert_allclose(G.transform_points(pose, pts[0]), moved[0])
    # a Blender camera at the origin looking down -z sees (0, 0, -2) straight ahead: OpenCV z = +2
    cv_cam = G.blender_camera_to_opencv(np.eye(4))
    np.testing.assert_allclose(G.transform_points(G.invert_rigid(cv_cam), [0.0, 1.0, -2.0]), [0, -1, 2])
