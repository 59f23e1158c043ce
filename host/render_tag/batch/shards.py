"""This machine's shard of a render (`--shard I/N`) or chunk of a plan (`--chunk K`), or either from a
cluster's array-index variables."""

from __future__ import annotations

import os
from collections.abc import Sequence

from render_tag_shared.errors import InputError
from render_tag_shared.recipe import SceneRecipe

from ..compile.shards import parse_shard, shard_range

__all__ = [
    "CHUNK_INDEX_VARS",
    "SHARD_COUNT_VARS",
    "SHARD_INDEX_VARS",
    "resolve_chunk",
    "resolve_shard",
    "shard_slice",
]

SHARD_INDEX_VARS = ("AWS_BATCH_JOB_ARRAY_INDEX", "CLOUD_RUN_TASK_INDEX", "JOB_COMPLETION_INDEX")
SHARD_COUNT_VARS = {
    "AWS_BATCH_JOB_ARRAY_INDEX": ("AWS_BATCH_JOB_ARRAY_SIZE", "RENDER_TAG_SHARD_COUNT"),
    "CLOUD_RUN_TASK_INDEX": ("CLOUD_RUN_TASK_COUNT", "RENDER_TAG_SHARD_COUNT"),
    "JOB_COMPLETION_INDEX": ("JOB_COMPLETIONS", "RENDER_TAG_SHARD_COUNT"),
}
"""Cloud Run sets its count; AWS Batch and Kubernetes indexed jobs do not, so the job spec sets one of
these (or RENDER_TAG_SHARD_COUNT), or `--shard '*/N'` gives the count and the variable the index."""


def resolve_shard(shard: str | None, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """(index, count) from `--shard I/N`, `--shard '*/N'` plus an index variable, or the variables alone."""
    env = dict(os.environ) if environ is None else environ
    index_var = next((name for name in SHARD_INDEX_VARS if env.get(name, "").strip()), None)
    if shard is not None:
        index_text, slash, count_text = shard.partition("/")
        if index_text.strip() != "*":
            parsed = parse_shard(shard)  # the one parser of `I/N`, shared with `compile --shard`
            assert parsed is not None
            return parsed
        if not slash or not count_text.strip().isdigit():
            raise InputError("--shard", "", f"expected I/N with 0 <= I < N (or '*/N'), got {shard!r}")
        if index_var is None:
            raise InputError(
                "--shard", "", f"'*' takes the index from one of {', '.join(SHARD_INDEX_VARS)}: none is set"
            )
        index, count = _env_int(env, index_var), int(count_text)
        if count < 1 or not 0 <= index < count:
            raise InputError("--shard", "", f"expected I/N with 0 <= I < N, got {index}/{count}")
        return index, count
    if index_var is None:
        return 0, 1
    index = _env_int(env, index_var)
    count_var = next((name for name in SHARD_COUNT_VARS[index_var] if env.get(name, "").strip()), None)
    if count_var is None:
        names = " or ".join(SHARD_COUNT_VARS[index_var])
        raise InputError(
            f"${index_var}", "", f"is set but the shard count is not: set {names}, or pass --shard '*/N'"
        )
    count = _env_int(env, count_var)
    if count < 1 or not 0 <= index < count:
        raise InputError(
            f"${index_var}", "", f"index {index} is not in 0..{count - 1} (count from ${count_var})"
        )
    return index, count


CHUNK_INDEX_VARS = (
    "JOB_COMPLETION_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "CLOUD_RUN_TASK_INDEX",
)
"""A chunk per index: a Kubernetes Indexed Job (`completions` = the plan's chunks), a SLURM array
(`--array=0-<chunks-1>`), AWS Batch or Cloud Run. The index is the chunk as it stands: a SLURM array of
`--array=3,7` reruns chunks 3 and 7; the plan knows the count, so no count variable is needed."""


def resolve_chunk(chunk: str | int | None, num_chunks: int, environ: dict[str, str] | None = None) -> int:
    """The chunk to render: `--chunk K`, or (no --chunk, or `--chunk '*'`) the first index variable set.

    InputError naming --chunk or the variable when it is not a whole number in 0..num_chunks-1."""
    env = dict(os.environ) if environ is None else environ
    if chunk is not None and str(chunk).strip() != "*":
        source, text = "--chunk", str(chunk).strip()
    else:
        name = next((var for var in CHUNK_INDEX_VARS if env.get(var, "").strip()), None)
        if name is None:
            raise InputError(
                "--chunk", "", f"give --chunk K, or run where one of {', '.join(CHUNK_INDEX_VARS)} is set"
            )
        source, text = f"${name}", env[name].strip()
    try:
        index = int(text)
    except ValueError:
        raise InputError(source, "", f"expected a whole number, got {text!r}") from None
    if not 0 <= index < num_chunks:
        raise InputError(source, "", f"chunk {index} is not in 0..{num_chunks - 1} ({num_chunks} chunks)")
    return index


def _env_int(env: dict[str, str], name: str) -> int:
    try:
        return int(env[name].strip())
    except ValueError:
        raise InputError(f"${name}", "", f"expected an integer, got {env[name]!r}") from None


def shard_slice(recipes: Sequence[SceneRecipe], shard: tuple[int, int]) -> list[SceneRecipe]:
    """Shard I of N renders the I-th of N contiguous blocks of the recipes (in file order): the rule of
    `compile --shard` (`compile.shards.shard_range`), so `--shard I/N` names the same scenes in both commands
    and the shards in order concatenate to the whole job."""
    return [recipes[i] for i in shard_range(len(recipes), shard)]
