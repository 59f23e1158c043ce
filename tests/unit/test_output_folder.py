"""OUT: one writer at a time (a real OS lock held by real processes), `-o` a folder or a new path, and
no symbolic link followed out of the folder, through the commands that write into a dataset folder.

The holders here are real child processes (`hold_folder` in another interpreter), killed for real to
leave a stale lock; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from render_tag.cli import main as cli_main
from render_tag.dataset.folder import LOCK_NAME, find_links, hold_folder
from render_tag_shared.errors import InputError
from render_tag_shared.recipe import RecipeFile
from render_tag_shared.recipe_io import dump_recipe_file

from ..builders import build_dataset, tag_scene

HOLDER = textwrap.dedent(
    """
    import sys, time
    from render_tag.dataset.folder import hold_folder
    with hold_folder(sys.argv[1], command="render-tag render held.json"):
        print("held", flush=True)
        time.sleep(120)
    """
)
"""A child process that holds a folder until it is killed."""


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under root (links not followed) with its kind, and each file's size and mtime:
    'nothing written or deleted' (a lock file taken and removed again leaves only a folder's mtime)."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        kind = stat.S_IFMT(info.st_mode)
        found[str(path.relative_to(root))] = (
            (kind,) if kind == stat.S_IFDIR else (kind, info.st_size, info.st_mtime_ns)
        )
    return found


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A dataset folder held by another live process."""
    out = build_dataset(tmp_path / "out", [tag_scene(0, 2)], images=True)
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held", child.stderr
        yield out, child
    finally:
        child.kill()
        child.wait(timeout=10)


def test_a_live_holder_refuses_every_writing_command_naming_itself(
    holder: tuple[Path, subprocess.Popen[str]], tmp_path: Path, capsys: Any
) -> None:
    out, child = holder
    recipes = tmp_path / "recipes.json"
    recipes.write_text(dump_recipe_file(RecipeFile(job_id="other", recipes=[tag_scene(7, 1)])))
    before = snapshot(out)
    for argv in (
        ["render", str(recipes), "-o", str(out)],
        ["render", str(recipes), "-o", str(out), "--resume"],
        ["render", str(recipes), "-o", str(out), "--force"],
        ["run", "-o", str(out), "--resume"],
        ["merge", str(out)],
        ["merge", str(out), "-o", str(tmp_path / "merged")],
        ["audit", str(out)],
        ["verify", str(out)],
        ["preview", str(out)],
        ["export", str(out)],
    ):
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"pid {child.pid} on host {socket.gethostname()}, since " in err, (argv, err)
        assert "render-tag render held.json" in err and "Traceback" not in err, err
    assert snapshot(out) == before, "a refused command wrote or deleted something"
    assert not (tmp_path / "merged").exists(), "a refused merge left its destination behind"


def test_a_stale_lock_of_a_killed_process_is_taken_over_and_said_so(
    holder: tuple[Path, subprocess.Popen[str]], capsys: Any
) -> None:
    out, child = holder
    child.kill()  # SIGKILL: no clean-up, the lock file stays with its holder's record
    child.wait(timeout=10)
    record = json.loads((out / LOCK_NAME).read_text())
    assert record["pid"] == child.pid and record["host"] == socket.gethostname()

    assert cli_main(["audit", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"took over a stale lock of pid {child.pid} on host {socket.gethostname()}" in err, err
    assert "that process is gone" in err
    assert (out / "audit.json").is_file()
    assert not (out / LOCK_NAME).exists(), "the lock file outlived the command"


def test_the_lock_is_released_with_the_command_and_nests_in_one_process(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    with hold_folder(out, command="outer") as outer:
        record = json.loads((out / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["command"] == "outer"
        assert abs(record["started_at"] - time.time()) < 60
        with hold_folder(out, command="inner") as inner:  # the same process: nests, no self-refusal
            assert inner is outer
        assert (out / LOCK_NAME).exists()
    assert not (tmp_path / "new").exists(), "folders created for a command that wrote nothing stay behind"
    out.mkdir(parents=True)
    with hold_folder(out, command="again"):
        pass
    assert out.is_dir() and not any(out.iterdir())


def render_argv(recipes: Path, out: str) -> list[str]:
    return ["render", str(recipes), "-o", out]


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    path = tmp_path / "recipes.json"
    path.write_text(dump_recipe_file(RecipeFile(job_id="o", recipes=[tag_scene(0, 1)])), encoding="utf-8")
    return path


def test_o_must_be_a_folder_or_a_new_path(
    tmp_path: Path, recipes: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `-o ''` must not become the current folder, but if it did: this one
    plain = tmp_path / "plain.txt"
    plain.write_text("mine")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {
        "": "-o: is empty",
        str(plain / "x"): f"{plain / 'x'}: cannot be created: {plain} is a file, not a folder",
        str(plain / "x" / "y"): f"cannot be created: {plain} is a file, not a folder",
        str(plain): f"{plain}: exists and is a file: -o must name a folder or a new path",
        str(fifo): f"{fifo}: exists and is a FIFO: -o must name a folder or a new path",
    }
    before = snapshot(tmp_path)
    for out, message in cases.items():
        for argv in (render_argv(recipes, out), ["run", "-o", out], ["merge", str(tmp_path), "-o", out]):
            assert cli_main(argv) == 2, argv
            err = capsys.readouterr().err
            assert message in err and "Traceback" not in err, (argv, err)
    assert snapshot(tmp_path) == before
    assert plain.read_text() == "mine" and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_an_output_file_never_replaces_a_fifo_or_a_folder(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`compile -o` and `preview -o` name files: a FIFO (standing in for a device node) stays a FIFO."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "job.yaml"
    config.write_text(
        "dataset: {name: f, num_scenes: 1, seed: 1}\n"
        "scenario: {subject: {type: TAGS, tag_families: [tag36h11], size_mm: 100}}\n"
        "camera: {resolution: [160, 120], intrinsics: {fov: 60}, samples_per_scene: 1}\n"
    )
    out = build_dataset(tmp_path / "out", [tag_scene(0, 1)], images=True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = snapshot(tmp_path)
    for argv, message in (
        (["compile", str(config), "-o", str(fifo)], "exists and is a FIFO: -o must name a file"),
        (["compile", str(config), "-o", str(out)], "is a folder: -o must name a file"),
        (["compile", str(config), "-o", ""], "-o: is empty"),
        (["preview", str(out), "-o", str(fifo)], "exists and is a FIFO: -o must name a file"),
    ):
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert snapshot(tmp_path) == before
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_the_atomic_writer_replaces_no_special_file(tmp_path: Path) -> None:
    """The last line of defence under every writer: a FIFO at the target is refused, not replaced."""
    from render_tag_shared.files import write_text_atomic

    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        write_text_atomic(fifo, "{}")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


READ_ONLY = textwrap.dedent(
    """
    import sys
    from render_tag.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def without_dac_override() -> None:
    """In the child, before exec: root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so that the
    permission bits of a read-only folder bind it as they bind any user (prctl PR_CAPBSET_DROP)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_read_only_folder_is_bad_input(tmp_path: Path, recipes: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for out in (locked, locked / "new", locked / "new" / "deeper"):
            for argv in (render_argv(recipes, str(out)), ["merge", str(tmp_path), "-o", str(out)]):
                done = subprocess.run(
                    [sys.executable, "-c", READ_ONLY, *argv],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    preexec_fn=without_dac_override if os.geteuid() == 0 else None,
                )
                assert done.returncode == 2, done.stderr
                assert f"{out}: cannot be" in done.stderr and "Permission denied" in done.stderr, done.stderr
                assert "Traceback" not in done.stderr
                assert not any(locked.iterdir())
    finally:
        locked.chmod(0o755)


def test_links_inside_out_are_refused_before_anything_is_written_or_deleted(
    tmp_path: Path, recipes: Path, capsys: Any
) -> None:
    """Writers and deleters never follow a link out of OUT: each link is refused, naming it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sentinel = elsewhere / "scene000000_cam00.png"
    sentinel.write_text("not yours")
    for case, make_link in enumerate(
        (
            lambda out: (out / "images").symlink_to(elsewhere, target_is_directory=True),
            lambda out: (out / "labels" / "scene000009_cam00.json").symlink_to(sentinel),
            lambda out: (out / "audit").symlink_to(elsewhere, target_is_directory=True),
            lambda out: (out / "audit.json").symlink_to(sentinel),
            lambda out: (out / "telemetry.ndjson").symlink_to(sentinel),
            lambda out: (out / "logs").symlink_to(elsewhere, target_is_directory=True),
        )
    ):
        out = build_dataset(tmp_path / f"out{case}", [tag_scene(0, 1)], images=False)
        make_link(out)
        (link,) = find_links(out)
        before = snapshot(tmp_path)
        for argv in (
            [*render_argv(recipes, str(out)), "--force"],
            [*render_argv(recipes, str(out)), "--resume"],
            ["merge", str(out)],
            ["audit", str(out)],
            ["verify", str(out)],
            ["preview", str(out)],
        ):
            assert cli_main(argv) == 2, argv
            err = capsys.readouterr().err
            assert f"{link}: is a symbolic link" in err and "never follows a link" in err, (argv, err)
        assert snapshot(tmp_path) == before, link
        assert sentinel.read_text() == "not yours"


def test_a_killed_writes_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    """What an atomic write leaves when its process is killed between write and rename goes at the next
    run; the dataset's own files and a link's target stay."""
    from render_tag_shared.files import remove_stale_temporaries, write_text_atomic

    labels = tmp_path / "labels"
    write_text_atomic(labels / "a.json", "{}")
    stale = labels / ".a.json.x1y2z3.tmp"
    stale.write_text("half")
    outside = tmp_path / "outside.tmp"
    outside.write_text("keep")
    (labels / ".b.json.q.tmp").symlink_to(outside)
    removed = remove_stale_temporaries(labels)
    assert sorted(p.name for p in removed) == [".a.json.x1y2z3.tmp", ".b.json.q.tmp"]
    assert sorted(p.name for p in labels.iterdir()) == ["a.json"]
    assert outside.read_text() == "keep"
