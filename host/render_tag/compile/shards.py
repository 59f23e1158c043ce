"""Shards of a job: `--shard I/N` names the I-th of N contiguous blocks of scenes, for compile and render."""

from __future__ import annotations

from render_tag_shared.errors import InputError

__all__ = ["parse_shard", "shard_range"]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`"I/N"` (0-based I) → (I, N); InputError naming `--shard` otherwise."""
    if text is None:
        return None
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise InputError("--shard", "", f"expected I/N with 0 <= I < N, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise InputError("--shard", "", f"expected I/N with 0 <= I < N, got {text!r}")
    return index, count


def shard_range(num_scenes: int, shard: tuple[int, int] | None) -> range:
    """Scenes of shard (i, n): a contiguous block, so the shards in order concatenate to the whole job."""
    if shard is None:
        return range(num_scenes)
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= I < N")
    return range(index * num_scenes // count, (index + 1) * num_scenes // count)
