"""What a job leaves in OUT, and whether a folder holds what its manifest and recipes say.

A job counts as done only when each of its images and label files is a regular file inside OUT and
their SHA-256 hashes are in the job's manifest record (batch/render.py records them when a worker says
"done"). `merge` refuses a folder whose files and manifest disagree and shards of different jobs;
`audit`'s completeness gate also counts what recipes.json asks for and the folder does not hold.

The manifest is read here as plain JSON (its model lives in batch/manifest.py, a layer above): only
`plan` and each job's `status`, `scene_id`, `image_ids`, `recipe_hash` and `files` are used.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from render_tag_shared.recipe import SceneRecipe, recipe_hash

__all__ = [
    "MANIFEST",
    "FolderCheck",
    "check_folder",
    "check_recipes",
    "check_sources",
    "file_sha256",
    "hash_job_files",
    "job_files",
]

MANIFEST = "manifest.json"


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a file in hex, None when there is no such file."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return digest.hexdigest()


def job_files(image_ids: Iterable[str]) -> list[str]:
    """The files a job leaves, relative to OUT: each image, then its label file."""
    return [name for i in image_ids for name in (f"images/{i}.png", f"labels/{i}.json")]


def _read_inside(root: Path, relative: str) -> tuple[bytes | None, str | None]:
    """The bytes of OUT/relative, or why they do not count: missing, not a regular file (a symlink, a
    folder, a device), or reached through a link that leads out of OUT."""
    path = root / relative
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"
    if not stat.S_ISREG(mode):
        return None, "not a regular file"
    if os.path.realpath(path) != os.path.join(os.path.realpath(root), relative):
        return None, "outside the folder (a linked folder)"
    try:
        return path.read_bytes(), None
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"


def hash_job_files(
    out_dir: Path, image_ids: Sequence[str], digest: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """(SHA-256 of each file of a job, what is wrong with them). The job is done only when nothing is:
    every image is a non-empty regular file inside OUT, and every label file parses, names its image
    and, when `digest` is given, carries that recipe hash."""
    hashes: dict[str, str] = {}
    problems: list[str] = []
    for relative in job_files(image_ids):
        data, problem = _read_inside(out_dir, relative)
        if data is not None and not data:
            problem = "empty"
        if data is not None and problem is None and relative.startswith("labels/"):
            problem = _label_problem(data, Path(relative).stem, digest)
        if problem is not None or data is None:
            problems.append(f"{relative}: {problem}")
            continue
        hashes[relative] = hashlib.sha256(data).hexdigest()
    return hashes, problems


def _label_problem(data: bytes, image_id: str, digest: str | None) -> str | None:
    try:
        labels = json.loads(data)
    except ValueError:
        return "not valid JSON"
    if not isinstance(labels, dict) or labels.get("image_id") != image_id:
        return "not the label file of its image"
    if digest is not None and labels.get("recipe_hash") != digest:
        return "labels of another recipe"
    return None


@dataclass
class FolderCheck:
    """A folder's images and labels against its manifest: files a done job lacks (`missing`), files no
    done job accounts for (`extra`), files whose hash is not the recorded one (`mismatched`), and jobs
    not done (`unfinished`: a partial dataset, but not a disagreement)."""

    folder: Path
    plan: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    unreadable: str | None = None

    @property
    def disagrees(self) -> bool:
        return bool(self.unreadable or self.missing or self.extra or self.mismatched)

    def problems(self) -> list[str]:
        """One line per disagreement, naming the folder and the file."""
        where = self.folder
        lines = [f"{where / MANIFEST}: {self.unreadable}"] if self.unreadable else []
        lines += [f"{where}: missing {text}" for text in self.missing]
        lines += [f"{where}: extra {text}" for text in self.extra]
        lines += [f"{where}: mismatched {text}" for text in self.mismatched]
        return lines


def _on_disk(folder: Path) -> set[str]:
    """images/*.png and labels/*.json of a folder, relative to it (whatever their kind of file)."""
    names: set[str] = set()
    for sub, suffix in (("images", ".png"), ("labels", ".json")):
        with_sub = folder / sub
        if with_sub.is_dir():
            names |= {f"{sub}/{entry.name}" for entry in os.scandir(with_sub) if entry.name.endswith(suffix)}
    return names


def check_folder(folder: Path) -> FolderCheck | None:
    """The folder against its manifest; None when it has none (a labels-only or merged folder)."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    check = FolderCheck(folder=folder)
    try:
        document = json.loads(path.read_bytes())
        jobs = document["jobs"]
        plan = document.get("plan") or {}
        if not isinstance(jobs, list) or not isinstance(plan, dict):
            raise TypeError("jobs or plan of the wrong type")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        check.unreadable = f"cannot be read as a render manifest ({exc})"
        return check
    check.plan, check.jobs = plan, jobs
    expected: set[str] = set()
    for job in jobs:
        image_ids = list(job.get("image_ids") or [])
        if job.get("status") != "done":
            check.unfinished.append(f"scene {job.get('scene_id')}: {job.get('status')}")
            continue
        recorded: dict[str, str] = job.get("files") or {}
        hashes, problems = hash_job_files(folder, image_ids)
        check.missing += problems
        for relative, sha in hashes.items():
            if relative not in recorded:
                check.mismatched.append(f"{relative}: no hash in the manifest")
            elif recorded[relative] != sha:
                said = recorded[relative][:12]
                check.mismatched.append(f"{relative}: sha256 {sha[:12]}, the manifest says {said}")
        expected |= set(job_files(image_ids))
    unknown = sorted(_on_disk(folder) - expected)
    check.extra = [f"{name}: no done job of the manifest made it" for name in unknown]
    return check


def check_recipes(
    folder: Path, recipes: Sequence[SceneRecipe], jobs: Sequence[dict[str, Any]] = ()
) -> list[str]:
    """What recipes.json asks for and the folder does not hold: each image id's label file (an image
    whose label is there but whose picture is not is audit's missing-image check), files of images the
    recipes do not name, and manifest jobs that are not the recipes' (another scene or recipe hash)."""
    problems: list[str] = []
    wanted = {recipe.image_id(i) for recipe in recipes for i in range(len(recipe.cameras))}
    on_disk = _on_disk(folder)
    for image_id in sorted(wanted):
        if f"labels/{image_id}.json" not in on_disk:
            problems.append(f"{image_id}: no label file (labels/{image_id}.json)")
    named = {f"images/{i}.png" for i in wanted} | {f"labels/{i}.json" for i in wanted}
    problems += [f"{name}: not an image of recipes.json" for name in sorted(on_disk - named)]
    if jobs:
        digests = {recipe.scene_id: recipe_hash(recipe) for recipe in recipes}
        for job in jobs:
            scene: Any = job.get("scene_id")
            if digests.get(scene) != job.get("recipe_hash"):
                problems.append(f"manifest job of scene {scene}: not a recipe of recipes.json")
        if len(jobs) != len(digests):
            problems.append(f"the manifest has {len(jobs)} jobs, recipes.json {len(digests)} recipes")
    return problems


CHUNK_RESULT = "chunk.json"
"""What `render-tag render-chunk` leaves in its folder (batch/chunks.py): which chunk of a plan it holds."""


def _slice_of(folder: Path, plan: dict[str, Any]) -> str:
    """Which slice of the job a folder holds, as I/N: its chunk of the plan for a `render-chunk` folder
    (whose own render is the whole chunk, shard 0/1), else the manifest's shard."""
    try:
        chunk = json.loads((folder / CHUNK_RESULT).read_bytes())
        return f"{int(chunk['chunk'])}/{int(chunk['num_chunks'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return str(plan.get("shard", "0/1"))


def check_sources(
    checks: Sequence[tuple[Path, FolderCheck | None]], job_ids: dict[Path, str | None]
) -> list[str]:
    """Why these folders are not shards of one job: different job ids, shards of different counts,
    add-on or Blender versions, a shard twice, or (when every folder has a manifest) a shard missing."""
    if len(checks) < 2:
        return []
    problems: list[str] = []
    ids = dict(job_ids)
    for folder, check in checks:
        if check is not None and "job_id" in check.plan:
            ids.setdefault(folder, check.plan.get("job_id"))
    if len(set(ids.values())) > 1:
        listed = "; ".join(f"{folder}: {job}" for folder, job in ids.items())
        problems.append(f"the folders hold different jobs ({listed})")
    plans = [(folder, check.plan) for folder, check in checks if check is not None and check.plan]
    for key in ("addon_version", "blender_version"):
        values = {str(plan.get(key)) for _, plan in plans}
        if len(values) > 1:
            what = key.replace("_", " ")
            problems.append(f"the folders were rendered with different {what}s: {sorted(values)}")
    shards: dict[tuple[int, int], list[Path]] = {}
    for folder, plan in plans:
        try:
            index, count = (int(part) for part in _slice_of(folder, plan).split("/"))
        except ValueError:
            problems.append(f"{folder / MANIFEST}: shard {plan.get('shard')!r} is not I/N")
            continue
        shards.setdefault((index, count), []).append(folder)
    counts = {count for _, count in shards}
    if len(counts) > 1:
        splits = sorted(f"{i}/{n}" for i, n in shards)
        problems.append(f"the folders are shards of different splits: {splits}")
    for (index, count), folders in sorted(shards.items()):
        if len(folders) > 1:
            problems.append(f"shard {index}/{count} given twice: {', '.join(map(str, folders))}")
    if len(counts) == 1 and len(plans) == len(checks):
        (count,) = counts
        absent = [f"{i}/{count}" for i in range(count) if (i, count) not in shards]
        if absent:
            problems.append(f"shard(s) {', '.join(absent)} not among the folders")
    return problems
