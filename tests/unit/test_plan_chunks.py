"""The plan/chunk contract without Blender: plan files and their hash, the chunk a cluster index names,
the assembly check of chunk folders (and `merge` refusing an incomplete set), the --dask address.

Rendering a chunk, and the same chunks on Dask, are in tests/e2e/test_dask.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from render_tag.batch.chunks import (
    CHUNK_RESULT,
    AssemblyError,
    ChunkJob,
    ChunkResult,
    check_chunk_folders,
    chunk_files,
)
from render_tag.batch.options import RenderOptions
from render_tag.batch.plan import (
    Plan,
    PlanEnvironmentMismatch,
    PlanError,
    PlanHashMismatch,
    build_plan,
    check_environment,
    dump_plan,
    load_plan,
    make_plan,
    parse_plan,
)
from render_tag.batch.shards import CHUNK_INDEX_VARS, resolve_chunk
from render_tag.cli import main as cli_main
from render_tag_shared.errors import InputError
from render_tag_shared.recipe import RecipeFile, recipe_hash
from render_tag_shared.recipe_io import dump_recipe_file

from ..builders import DATA, build_dataset, tag_scene


def _recipes(count: int = 5) -> RecipeFile:
    scenes = [tag_scene(i, n_cameras=1) for i in range(count)]
    for i, scene in enumerate(scenes):
        scene.renderer.samples = 4 if i < 3 else 8
    return RecipeFile(job_id="job-plan", recipes=scenes)


def _plan(count: int = 5, chunk_size: int = 2) -> Plan:
    return build_plan(
        _recipes(count), addon_version="0.1.0", blender_version="bpy 4.2.23", chunk_size=chunk_size
    )


# -- the plan ------------------------------------------------------------------------------------------


def test_a_plan_fixes_recipes_hashes_versions_renderer_and_chunks() -> None:
    recipes = _recipes()
    plan = _plan()
    assert (plan.addon_version, plan.blender_version) == ("0.1.0", "4.2.23")
    assert plan.recipe_hashes == [recipe_hash(r) for r in recipes.recipes]
    assert [r["samples"] for r in plan.renderers] == [4, 8]  # the distinct settings, seed aside
    assert "seed" not in plan.renderers[0]
    assert (plan.chunk_size, plan.num_chunks) == (2, 3)
    assert [list(plan.chunk_range(k)) for k in range(3)] == [[0, 1], [2, 3], [4]]
    assert [r.scene_id for r in plan.chunk_recipes(2)] == [4]
    # It builds on the resume plan of `render`: the same fields, the same values.
    dataset, _ = make_plan(
        recipes.recipes, job_id="job-plan", addon_version="0.1.0", blender_version="bpy 4.2.23", shard=(0, 1)
    )
    assert plan.dataset_plan() == dataset
    # The hash is over all of it: another chunk size or version is another plan.
    assert _plan(chunk_size=3).plan_hash != plan.plan_hash
    other = build_plan(recipes, addon_version="0.1.1", blender_version="bpy 4.2.23", chunk_size=2)
    assert other.plan_hash != plan.plan_hash
    assert _plan().plan_hash == plan.plan_hash  # and deterministic


def test_a_plan_file_round_trips_and_verifies(tmp_path: Path) -> None:
    plan = _plan()
    path = tmp_path / "plan.json"
    path.write_text(dump_plan(plan), encoding="utf-8")
    loaded = load_plan(path)
    assert loaded.plan_hash == plan.plan_hash
    assert [r.scene_id for r in loaded.recipe_file.recipes] == [0, 1, 2, 3, 4]
    assert load_plan(path, expected_hash=plan.plan_hash).plan_hash == plan.plan_hash


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d.update(chunk_size=3),
        lambda d: d["recipe_file"]["recipes"][1]["renderer"].update(samples=64),
        lambda d: d.update(blender_version="5.0.1"),
        lambda d: d["recipe_hashes"].reverse(),
        lambda d: d["recipe_file"]["recipes"].pop(),
    ],
    ids=["chunking", "a recipe", "a version", "the hashes", "a recipe removed"],
)
def test_a_plan_whose_content_no_longer_matches_its_hash_is_refused(tamper, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(dump_plan(_plan()))
    tamper(data)
    with pytest.raises(PlanHashMismatch) as caught:
        parse_plan(json.dumps(data), "plan.json")
    error = caught.value
    # Typed: bad input (exit 2) that no retry can cure.
    assert isinstance(error, PlanError) and isinstance(error, InputError)
    assert error.retryable is False
    assert (error.source, error.field) == ("plan.json", "plan_hash")


def test_a_plan_other_than_the_expected_one_is_refused() -> None:
    text = dump_plan(_plan())
    with pytest.raises(PlanHashMismatch, match="not plan"):
        parse_plan(text, "plan.json", expected_hash=_plan(chunk_size=3).plan_hash)


@pytest.mark.parametrize(
    ("text", "field"),
    [("{", ""), ("[]", "plan_hash"), ('{"recipes": []}', "plan_hash"), ("\udcff", "")],
)
def test_what_is_not_a_plan_is_bad_input(text: str, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_plan(text.encode("utf-8", "surrogateescape"), "p.json")
    assert caught.value.field == field
    assert not isinstance(caught.value, PlanHashMismatch)


def test_a_plan_is_refused_by_another_addon_or_blender() -> None:
    plan = _plan()
    check_environment(plan, "0.1.0", "blender 4.2.23 LTS", "plan.json")  # the same Blender, however run
    with pytest.raises(PlanEnvironmentMismatch, match="addon_version"):
        check_environment(plan, "0.2.0", "bpy 4.2.23", "plan.json")
    with pytest.raises(PlanEnvironmentMismatch, match="blender_version"):
        check_environment(plan, "0.1.0", "bpy 5.0.1", "plan.json")


def test_plan_command_from_recipes_and_from_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipes = tmp_path / "recipes.json"
    recipes.write_text(dump_recipe_file(_recipes()), encoding="utf-8")
    assert cli_main(["plan", str(recipes), "-o", str(tmp_path / "a.json"), "--chunk-size", "2"]) == 0
    plan = load_plan(tmp_path / "a.json")
    assert (plan.num_jobs, plan.num_chunks) == (5, 3)
    assert plan.plan_hash in capsys.readouterr().out
    # A config is compiled first: the plan holds the compiled recipes (8 scenes of the DESIGN example).
    assert cli_main(["plan", str(DATA / "design_example.yaml"), "-o", str(tmp_path / "b.json")]) == 0
    plan = load_plan(tmp_path / "b.json")
    assert (plan.num_jobs, plan.chunk_size, plan.num_chunks) == (8, 8, 1)
    assert plan.renderers[0]["samples"] == 32


def test_render_chunk_refuses_a_tampered_plan_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(dump_plan(_plan()))
    data["recipe_file"]["recipes"][0]["renderer"]["samples"] = 1
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "out"
    assert cli_main(["render-chunk", str(bad), "--chunk", "0", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: plan_hash:" in err and "does not match its hash" in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--chunk", "3"], {}, "--chunk"),
        (["--chunk", "-1"], {}, "--chunk"),
        (["--chunk", "one"], {}, "--chunk"),
        ([], {}, "--chunk"),
        ([], {"JOB_COMPLETION_INDEX": "7"}, "$JOB_COMPLETION_INDEX"),
        ([], {"SLURM_ARRAY_TASK_ID": "3"}, "$SLURM_ARRAY_TASK_ID"),
    ],
)
def test_render_chunk_refuses_a_chunk_the_plan_does_not_have(  # type: ignore[no-untyped-def]
    argv, env, named, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in CHUNK_INDEX_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "plan.json"
    path.write_text(dump_plan(_plan()), encoding="utf-8")
    out = tmp_path / "out"
    assert cli_main(["render-chunk", str(path), *argv, "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"render-tag: error: {named}: ")
    assert not out.exists()


# -- the chunk a cluster index names -------------------------------------------------------------------


def test_kubernetes_indexed_job_index_is_the_chunk() -> None:
    assert resolve_chunk(None, 4, {"JOB_COMPLETION_INDEX": "0"}) == 0
    assert resolve_chunk(None, 4, {"JOB_COMPLETION_INDEX": " 3 "}) == 3
    assert resolve_chunk("*", 4, {"JOB_COMPLETION_INDEX": "2"}) == 2
    with pytest.raises(InputError, match=r"\$JOB_COMPLETION_INDEX: chunk 4 is not in 0..3"):
        resolve_chunk(None, 4, {"JOB_COMPLETION_INDEX": "4"})
    with pytest.raises(InputError, match=r"\$JOB_COMPLETION_INDEX: expected a whole number"):
        resolve_chunk(None, 4, {"JOB_COMPLETION_INDEX": "1.5"})


def test_slurm_array_task_id_is_the_chunk() -> None:
    # --array=0-3 gives ids 0..3; a rerun of --array=3 is chunk 3, whatever the array's minimum.
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_COUNT": "1"}
    assert resolve_chunk(None, 4, env) == 3
    with pytest.raises(InputError, match=r"\$SLURM_ARRAY_TASK_ID: chunk 4 is not in 0..3"):
        resolve_chunk(None, 4, {"SLURM_ARRAY_TASK_ID": "4"})
    with pytest.raises(InputError, match=r"\$SLURM_ARRAY_TASK_ID: chunk -1 is not in 0..3"):
        resolve_chunk(None, 4, {"SLURM_ARRAY_TASK_ID": "-1"})


def test_an_explicit_chunk_wins_and_no_index_is_refused() -> None:
    assert resolve_chunk("1", 4, {"JOB_COMPLETION_INDEX": "2"}) == 1
    assert resolve_chunk(2, 4, {}) == 2
    with pytest.raises(InputError, match="give --chunk K"):
        resolve_chunk(None, 4, {})
    with pytest.raises(InputError, match=r"--chunk: chunk 0 is not in"):
        resolve_chunk("0", 0, {})


# -- assembling chunk folders --------------------------------------------------------------------------


def _chunk_folder(root: Path, plan: Plan, chunk: int, name: str | None = None) -> Path:
    """What `render-chunk` leaves: the chunk's images and labels, and chunk.json listing them."""
    recipes = plan.chunk_recipes(chunk)
    folder = build_dataset(root / (name or f"chunk-{chunk}"), recipes, images=True)
    jobs = [
        ChunkJob(
            job_index=index,
            scene_id=recipe.scene_id,
            image_ids=[recipe.image_id(c) for c in range(len(recipe.cameras))],
            status="done",
        )
        for index, recipe in zip(plan.chunk_range(chunk), recipes, strict=True)
    ]
    result = ChunkResult(
        plan_hash=plan.plan_hash,
        chunk=chunk,
        num_chunks=plan.num_chunks,
        status="complete",
        jobs=jobs,
        files=chunk_files(folder, jobs),
    )
    (folder / CHUNK_RESULT).write_text(result.model_dump_json(), encoding="utf-8")
    return folder


def test_every_chunk_of_one_plan_once_assembles(tmp_path: Path) -> None:
    plan = _plan()
    folders = [_chunk_folder(tmp_path, plan, k) for k in range(plan.num_chunks)]
    assert check_chunk_folders(folders) is True
    assert check_chunk_folders([build_dataset(tmp_path / "plain", [tag_scene(9)])]) is False
    dest = tmp_path / "merged"
    assert cli_main(["merge", *map(str, reversed(folders)), "-o", str(dest)]) == 0
    assert len(list((dest / "images").glob("*.png"))) == 5


def _refused(capsys: pytest.CaptureFixture[str], folders: list[Path], dest: Path) -> str:
    """`merge` refuses (exit 1), writes nothing, and says why."""
    assert cli_main(["merge", *map(str, folders), "-o", str(dest)]) == 1
    assert not dest.exists()
    err = capsys.readouterr().err
    assert err.startswith("render-tag: merge refused: ")
    return err


def test_a_missing_chunk_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan()
    folders = [_chunk_folder(tmp_path, plan, k) for k in (0, 2)]
    with pytest.raises(AssemblyError, match=r"has 3 chunks; missing: 1 \(1 of 3\)"):
        check_chunk_folders(folders)
    assert "missing: 1" in _refused(capsys, folders, tmp_path / "merged")


def test_a_chunk_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan()
    folders = [_chunk_folder(tmp_path, plan, k) for k in range(3)]
    again = _chunk_folder(tmp_path, plan, 1, name="chunk-1-again")
    err = _refused(capsys, [*folders, again], tmp_path / "merged")
    assert f"chunk 1 is there twice: {folders[1]} and {again}" in err


def test_a_chunk_of_another_plan_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan()
    other = build_plan(_recipes(), addon_version="0.1.0", blender_version="bpy 5.0.1", chunk_size=2)
    folders = [_chunk_folder(tmp_path, plan, k) for k in (0, 1)]
    foreign = _chunk_folder(tmp_path, other, 2, name="foreign-2")
    err = _refused(capsys, [*folders, foreign], tmp_path / "merged")
    assert f"{foreign}: chunk 2 belongs to plan {other.plan_hash[:12]}" in err


def test_an_incomplete_or_altered_chunk_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _plan()
    folders = [_chunk_folder(tmp_path, plan, k) for k in range(3)]
    image = next((folders[1] / "images").glob("*.png"))
    image.write_bytes(image.read_bytes() + b"\0")
    assert f"{image}: missing or changed since chunk 1 wrote it" in _refused(capsys, folders, tmp_path / "m")
    image.unlink()
    assert f"{image}: missing or changed" in _refused(capsys, folders, tmp_path / "m")
    # A chunk that says it failed is not a whole chunk either.
    result = ChunkResult.model_validate_json((folders[2] / CHUNK_RESULT).read_bytes())
    failed = result.model_copy(update={"status": "failed"})
    (folders[2] / CHUNK_RESULT).write_text(failed.model_dump_json(), encoding="utf-8")
    with pytest.raises(AssemblyError, match=r"chunk 2 is failed"):
        check_chunk_folders([folders[0], folders[2]])
    # And a plain folder among chunk folders.
    plain = build_dataset(tmp_path / "plain", [tag_scene(9)])
    assert "no chunk.json" in _refused(capsys, [folders[0], plain], tmp_path / "m")


# -- the --dask address ---------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["local", "local:2", "tcp://127.0.0.1:8786", "tcp://scheduler.svc:8786"])
def test_dask_addresses(address: str) -> None:
    assert RenderOptions(dask=address).dask == address


@pytest.mark.parametrize(
    "address", ["", "locl", "local:0", "local:x", "tcp://host", "tcp://:8786", "http://h:1"]
)
def test_a_bad_dask_address_is_bad_input(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match="^--dask: "):
        RenderOptions(dask=address)
    recipes = tmp_path / "recipes.json"
    recipes.write_text(dump_recipe_file(_recipes(1)), encoding="utf-8")
    out = tmp_path / "out"
    assert cli_main(["render", str(recipes), "-o", str(out), "--dask", address]) == 2
    assert "render-tag: error: --dask: " in capsys.readouterr().err
    assert not out.exists()


def test_an_unreachable_scheduler_is_refused_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recipes = tmp_path / "recipes.json"
    recipes.write_text(dump_recipe_file(_recipes(1)), encoding="utf-8")
    out = tmp_path / "out"
    assert cli_main(["render", str(recipes), "-o", str(out), "--dask", f"tcp://127.0.0.1:{port}"]) == 2
    assert "no Dask scheduler answers" in capsys.readouterr().err
    assert not out.exists()


def test_workers_without_the_recommended_dask_settings_are_named() -> None:
    from render_tag.batch.dask_engine import DASK_CONFIG, untuned_workers

    tuned = {"cores": 2, "settings": dict(DASK_CONFIG)}
    defaults = {
        "cores": 2,
        "settings": {
            "distributed.worker.profile.enabled": True,
            "distributed.admin.tick.interval": "20ms",
            "distributed.worker.memory.monitor-interval": "1s",
        },
    }
    assert untuned_workers({"tcp://a:1": tuned}) == {}
    same = {**tuned["settings"], "distributed.admin.tick.interval": "1000ms"}  # type: ignore[dict-item]
    assert untuned_workers({"tcp://a:1": {"cores": 2, "settings": same}}) == {}
    assert untuned_workers({"tcp://a:1": tuned, "tcp://b:2": defaults}) == {
        "tcp://b:2": {"distributed.worker.profile.enabled": True, "distributed.admin.tick.interval": "20ms"}
    }


def test_a_dask_workers_blender_does_not_inherit_the_nannys_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from render_tag.batch.dask_engine import nanny_environ
    from render_tag.batch.launcher import make_launcher

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as a nanny sets it
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")  # the user's own value, not the nanny's
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    unset = nanny_environ()
    assert "MALLOC_TRIM_THRESHOLD_" in unset and "OPENBLAS_NUM_THREADS" not in unset
    launcher = make_launcher(None)
    assert "MALLOC_TRIM_THRESHOLD_" in launcher.environ()  # a launcher outside Dask passes everything on
    launcher.unset_env = unset
    environment = launcher.environ()
    assert "MALLOC_TRIM_THRESHOLD_" not in environment and environment["OPENBLAS_NUM_THREADS"] == "4"
