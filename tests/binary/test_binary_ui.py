"""The N-panel and the ground-truth overlay in a real Blender 4.3 window, driven by real X events.

Why: the `bpy` module has no window, so only a binary under a display shows whether the sidebar tab
opens, the buttons react to clicks, the new object becomes active and the overlay lands on the
marker. Blender runs under Xvfb (llvmpipe) in the chroot; xdotool moves and clicks; ImageMagick's
`import -window root` takes the screenshots (Blender's own screenshot operator is black under Xvfb);
tests/binary/ui_agent.py reports Blender's state through files. Every wait polls for a state.
Screenshots are kept in test-artifacts/blender-ui/ for people to look at.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from render_tag_shared.recipe import RecipeFile
from render_tag_shared.truth import camera_ground_truth

from .blender_binary import ARTIFACTS, BLENDER, CHROOT_RUN, chroot_run, poll, profile_env

SCREEN = (1280, 800)
AGENT = Path(__file__).resolve().parent / "ui_agent.py"
FIRST_FRAME_TIMEOUT_S = 120.0
"""The first frame takes 20-30 s under llvmpipe; a generous bound, reached only when it hangs."""
OVERLAY_GREEN = "tag outline and corners 1-3 (TAG_COLOR, about (26, 255, 77))"
OVERLAY_RED = "corner 0 (FIRST_CORNER_COLOR, about (255, 51, 51))"


def is_green(rgb: np.ndarray) -> np.ndarray:
    """The overlay's tag colour, and nothing else on a grey UI with black-and-white markers."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (g > 200) & (r < 110) & (b < 150)


def is_red(rgb: np.ndarray) -> np.ndarray:
    """The overlay's corner-0 colour."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (r > 200) & (g < 110) & (b < 110)


class BlenderUI:
    """A windowed Blender on an Xvfb display, with the agent's file channel and X input."""

    def __init__(self, display: str, agent_dir: Path, env: dict[str, str]) -> None:
        self.display = display
        self.agent_dir = agent_dir
        self.env = env
        self._numbers = itertools.count()

    def state(self) -> dict[str, Any] | None:
        path = self.agent_dir / "state.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def command(self, code: str, timeout: float = 60) -> dict[str, Any]:
        """Runs `code` in Blender's main loop (see ui_agent.py); returns its `result` dict."""
        number = f"{next(self._numbers):04d}"
        tmp = self.agent_dir / f"tmp-{number}.py"
        tmp.write_text(code)
        tmp.rename(self.agent_dir / f"cmd-{number}.py")
        answer_path = self.agent_dir / f"res-{number}.json"
        poll(f"the agent's answer to {code[:60]!r}", answer_path.is_file, timeout)
        answer = json.loads(answer_path.read_text())
        assert answer["ok"], answer["error"]
        return dict(answer["result"])

    def xdotool(self, *args: str) -> None:
        chroot_run(["xdotool", *args], env=self.env)

    def click(self, x: float, y: float) -> None:
        """A real left click at screen pixel (x, y) (origin top-left).

        The pointer rests on the button first, as a hand does: Blender activates a button on the
        motion event, and a press that arrives in the same instant can be lost.
        """
        self.xdotool("mousemove", str(round(x)), str(round(y)))
        time.sleep(0.4)
        self.xdotool("click", "1")

    def key(self, name: str, at: tuple[float, float]) -> None:
        """A real key press with the pointer over `at` (Blender sends keys to the area under it)."""
        self.xdotool("mousemove", str(round(at[0])), str(round(at[1])), "key", name)

    def screenshot(self, name: str | None = None) -> np.ndarray:
        """The whole X screen as RGB; kept under ARTIFACTS when named."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / (name or "_last.png")
        chroot_run(["import", "-window", "root", str(path)], env=self.env)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert image is not None, path
        return np.ascontiguousarray(image[:, :, ::-1])

    def to_screen(self, x: float, y: float) -> tuple[float, float]:
        """Blender window pixels (origin bottom-left) to X screen pixels (origin top-left)."""
        state = self.state()
        assert state is not None
        window = state["window"]
        return window["x"] + x, SCREEN[1] - (window["y"] + y)


@pytest.fixture(scope="module")
def ui(installed_profile: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlenderUI]:
    """Xvfb and a windowed Blender 4.3 (the extension installed), up to its first drawn frame."""
    agent_dir = tmp_path_factory.mktemp("ui-agent")
    xvfb = subprocess.Popen(
        [
            str(CHROOT_RUN),
            "Xvfb",
            "-displayfd",
            "1",
            "-screen",
            "0",
            f"{SCREEN[0]}x{SCREEN[1]}x24",
            "-nolisten",
            "tcp",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=profile_env(installed_profile),
    )
    blender: subprocess.Popen[bytes] | None = None
    log = (agent_dir / "blender.log").open("wb")
    try:
        assert xvfb.stdout is not None
        number = xvfb.stdout.readline().decode().strip()
        assert number.isdigit(), f"Xvfb gave no display number (exit {xvfb.poll()})"
        env = profile_env(installed_profile, DISPLAY=f":{number}", RENDER_TAG_UI_AGENT_DIR=str(agent_dir))
        blender = subprocess.Popen(
            [
                str(BLENDER),
                "--window-geometry",
                "0",
                "0",
                str(SCREEN[0]),
                str(SCREEN[1]),
                "--python",
                str(AGENT),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        session = BlenderUI(f":{number}", agent_dir, env)
        started = time.monotonic()

        def first_frame() -> bool:
            if blender is not None and blender.poll() is not None:
                raise AssertionError(f"Blender exited {blender.returncode}: see {agent_dir / 'blender.log'}")
            state = session.state()
            return bool(state and state.get("window") and session.screenshot().mean() > 20)

        poll("Blender's first frame", first_frame, FIRST_FRAME_TIMEOUT_S, interval=1.0)
        print(f"first frame after {time.monotonic() - started:.1f} s")
        state = session.state()
        assert state is not None and state["has_render_tag_ops"], "the extension is not enabled in the UI"
        assert state["window"] == {"x": 0, "y": 0, "width": SCREEN[0], "height": SCREEN[1]}, state["window"]
        # Close the splash screen as a user does, with Escape over the 3D view.
        session.key("Escape", view_centre(session))
        yield session
    finally:
        for process in (blender, xvfb):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        log.close()


def view_centre(ui: BlenderUI) -> tuple[float, float]:
    """The 3D view's centre (left of the sidebar) in screen pixels."""
    state = ui.state()
    assert state is not None
    area = state["area"]
    return ui.to_screen(area["x"] + area["width"] * 0.35, area["y"] + area["height"] * 0.5)


def sidebar_box(ui: BlenderUI) -> tuple[float, float, float, float, float]:
    """(left, top, right, bottom, ui_scale) of the sidebar region in screen pixels."""
    state = ui.state()
    assert state is not None and state["sidebar"] is not None
    bar = state["sidebar"]
    left, top = ui.to_screen(bar["x"], bar["y"] + bar["height"])
    right, bottom = ui.to_screen(bar["x"] + bar["width"], bar["y"])
    return left, top, right, bottom, float(state["ui_scale"])


def tab_runs(image: np.ndarray, x: int, top: int, bottom: int) -> list[tuple[int, int]]:
    """Vertical runs (y0, y1) of pixels lighter than the tab strip's background in column x."""
    column = image[top:bottom, x].astype(int).sum(axis=1)
    background = column.min()
    lit = column > background + 9
    runs, start = [], None
    for i, on in enumerate([*lit, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            if i - start >= 15:
                runs.append((top + start, top + i - 1))
            start = None
    return runs


def open_render_tag_tab(ui: BlenderUI) -> None:
    """Press N over the 3D view, then click the sidebar's last tab (add-on tabs follow Item/Tool/View)."""
    state = ui.state()
    assert state is not None
    if not state["sidebar_shown"]:
        ui.key("n", view_centre(ui))
        poll(
            "the sidebar to open",
            lambda: (s := ui.state()) and s["sidebar_shown"] and s["sidebar"]["width"] > 50,
            20,
        )
    _left, top, right, bottom, scale = sidebar_box(ui)

    def tabs() -> tuple[int, list[tuple[int, int]]] | None:
        """The column with the most tabs, once the screen shows them (Blender's state says open first)."""
        image = ui.screenshot("_sidebar.png")
        best: tuple[int, list[tuple[int, int]]] | None = None
        for x in range(round(right - 26 * scale), round(right - 4 * scale)):
            runs = tab_runs(image, x, round(top), round(bottom))
            if best is None or len(runs) > len(best[1]):
                best = (x, runs)
        return best if best is not None and len(best[1]) >= 2 else None

    best = poll(f"sidebar tabs on screen near x={right - 20}", tabs, 20, interval=1.0)
    x, runs = best
    y0, y1 = runs[-1]
    ui.click(x, (y0 + y1) / 2)
    poll("the Render Tag tab", lambda: (s := ui.state()) and s["sidebar_category"] == "Render Tag", 20)


def click_panel_button(ui: BlenderUI, which: str) -> None:
    """Click Add Tag (left half) or Add Board (right half) of the first row of the Render Tag panel."""
    left, top, right, _bottom, scale = sidebar_box(ui)
    # Panel body: 10 px margin on the left, the tab strip (about 31 px) on the right; the row sits
    # under the 25 px header (measured on 4.3 at the default theme, times the UI scale).
    body_left, body_right = left + 10 * scale, right - 31 * scale
    x = body_left + (body_right - body_left) * (0.25 if which == "tag" else 0.75)
    y = top + 44 * scale
    ui.click(x, y)


def wait_for_new_active(ui: BlenderUI, before: set[str], kind: str) -> dict[str, Any]:
    """Polls until a new object exists; then it must be the active one, of the render_tag kind."""
    state = poll(f"a new {kind} object", lambda: (s := ui.state()) and set(s["objects"]) - before and s, 20)
    time.sleep(0.6)  # the agent publishes every 0.2 s: take a settled state
    state = ui.state()
    assert state is not None
    new = sorted(set(state["objects"]) - before)
    assert len(new) == 1, new
    assert state["active"] == new[0], f"the new {kind} {new[0]} is not active (active: {state['active']})"
    assert state["active_kind"] == kind, state
    assert state["selected"] == [new[0]], state["selected"]
    return state


PREP_SCENE = """
cube = bpy.data.objects.get("Cube")
if cube is not None:
    bpy.data.objects.remove(cube)
space = bpy.context.area.spaces.active
space.overlay.show_floor = False
space.overlay.show_axis_x = False
space.overlay.show_axis_y = False
bpy.context.scene.cursor.location = (0.0, 0.0, 0.0)
"""


def test_panel_tab_opens_and_add_tag_add_board_by_clicks(ui: BlenderUI) -> None:
    """Real clicks on Add Tag and Add Board each add an object that becomes the active one."""
    ui.command(PREP_SCENE)
    open_render_tag_tab(ui)
    state = ui.state()
    assert state is not None
    before = set(state["objects"])
    click_panel_button(ui, "tag")
    state = wait_for_new_active(ui, before, "TAG")
    time.sleep(0.5)
    ui.screenshot("panel-tag-selected.png")

    ui.command("bpy.context.scene.cursor.location = (0.18, 0.0, 0.0)")
    before = set(state["objects"])
    click_panel_button(ui, "board")
    wait_for_new_active(ui, before, "BOARD")
    time.sleep(0.5)
    ui.screenshot("panel-board-selected.png")


OVERLAY_SCENE = """
import math
tags = [o for o in bpy.data.objects if o.type == "MESH" and o.render_tag.kind == "TAG"]
if not tags:
    bpy.ops.render_tag.add_tag(size_mm=100.0)
    tags = [bpy.context.view_layer.objects.active]
tag = tags[0]
tag.location = (-0.12, 0.0, 0.0)
tag.rotation_mode = "XYZ"
tag.rotation_euler = (0.0, 0.0, math.radians(15))
camera = bpy.context.scene.camera
camera.location = (0.0, 0.0, 1.0)
camera.rotation_mode = "XYZ"
camera.rotation_euler = (0.0, 0.0, 0.0)
r = bpy.ops.render_tag.set_camera_intrinsics(fx=600, fy=600, cx=319.5, cy=239.5, width=640, height=480)
assert r == {"FINISHED"}, r
result["tag"] = tag.name
"""

FRAME_IN_REGION = """
from bpy_extras import view3d_utils
scene = bpy.context.scene
camera = scene.camera
region = bpy.context.region
rv3d = bpy.context.area.spaces.active.region_3d
top_right, bottom_right, bottom_left, top_left = camera.data.view_frame(scene=scene)
frame = []
for corner in (top_left, top_right, bottom_right, bottom_left):
    p = view3d_utils.location_3d_to_region_2d(region, rv3d, camera.matrix_world @ corner)
    frame.append((p.x, p.y))
result.update(frame=frame, region=(region.x, region.y), perspective=rv3d.view_perspective,
              resolution=(scene.render.resolution_x, scene.render.resolution_y))
"""


def gt_corners_on_screen(ui: BlenderUI, recipe_path: Path, tag_name: str) -> np.ndarray:
    """The tag's ground-truth corners (render_tag_shared, from the exported recipe) in screen pixels."""
    recipe = RecipeFile.model_validate_json(recipe_path.read_text()).recipes[0]
    records = [r for r in camera_ground_truth(recipe, 0) if r.object_name == tag_name]
    assert len(records) == 1, [r.object_name for r in camera_ground_truth(recipe, 0)]
    record = records[0]
    assert list(record.corners_visibility) == [2, 2, 2, 2], record.corners_visibility
    width, height = recipe.cameras[0].intrinsics.resolution
    geo = ui.command(FRAME_IN_REGION)
    assert geo["perspective"] == "CAMERA", geo
    assert tuple(geo["resolution"]) == (width, height), geo
    # OpenCV pixels -> fractions of the image's outer edge -> the camera frame drawn in the region.
    unit = np.float32([[0, 0], [1, 0], [1, 1], [0, 1]])
    homography = cv2.getPerspectiveTransform(unit, np.float32(geo["frame"]))
    corners = np.asarray(record.corners, dtype=np.float64)
    fractions = np.column_stack([(corners[:, 0] + 0.5) / width, (corners[:, 1] + 0.5) / height])
    region_xy = cv2.perspectiveTransform(fractions.reshape(-1, 1, 2), homography).reshape(-1, 2)
    rx, ry = geo["region"]
    return np.array([ui.to_screen(rx + x, ry + y) for x, y in region_xy])


def count_near(mask: np.ndarray, point: np.ndarray, radius: int) -> int:
    x, y = round(point[0]), round(point[1])
    return int(mask[y - radius : y + radius + 1, x - radius : x + radius + 1].sum())


def test_overlay_draws_on_the_marker_border_in_camera_view(ui: BlenderUI, tmp_path: Path) -> None:
    """Where the ground truth puts the tag's corners and edges, the screenshot has the overlay colours."""
    ui.command(PREP_SCENE)
    tag_name = ui.command(OVERLAY_SCENE)["tag"]
    centre = view_centre(ui)
    ui.key("KP_0", centre)  # camera view, as a user does
    poll("camera view", lambda: (s := ui.state()) and s["view_perspective"] == "CAMERA", 20)
    ui.key("Home", centre)  # frame the camera bounds
    recipe_path = tmp_path / "authored.json"
    ui.command(
        f"r = bpy.ops.render_tag.export_recipe(filepath={str(recipe_path)!r}); assert r == {{'FINISHED'}}"
    )
    time.sleep(1.0)
    corners = gt_corners_on_screen(ui, recipe_path, tag_name)
    off = ui.screenshot("overlay-off-camera-view.png")
    assert not is_green(off).any(), "overlay green on screen before the overlay is on"

    ui.command("r = bpy.ops.render_tag.toggle_overlay(); assert r == {'FINISHED'}")

    def drawn() -> list[np.ndarray] | None:
        image = ui.screenshot("overlay-camera-view.png")
        return [image] if count_near(is_green(image), corners[2], 4) >= 6 else None

    on = poll("the overlay's green at the tag's corner 2", drawn, 30, interval=1.0)[0]
    corners = gt_corners_on_screen(ui, recipe_path, tag_name)  # the view must not have moved
    green, red = is_green(on), is_red(on)
    assert count_near(red, corners[0], 3) >= 6, f"{OVERLAY_RED} missing at {corners[0]}"
    assert count_near(is_red(off), corners[0], 3) == 0
    for i in (1, 2, 3):
        assert count_near(green, corners[i], 3) >= 6, f"{OVERLAY_GREEN} missing at corner {i} {corners[i]}"
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        for t in (0.3, 0.5, 0.7):
            point = a + (b - a) * t
            assert count_near(green, point, 2) >= 2, f"no overlay line on edge {i} at {point}"
    # And not somewhere else: the marker's centre carries no overlay line.
    assert count_near(green, corners.mean(axis=0), 4) == 0
    ui.command("r = bpy.ops.render_tag.toggle_overlay(); assert r == {'FINISHED'}")
