"""Deterministic seeds and job ids.

Seeds come from SHA-256 rather than from a running random generator so that scene N of a job gets the
same seed whichever shard, worker or process compiles it, and on every platform and Python version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SEED_BITS = 63
"""Seeds are non-negative and fit a signed 64-bit integer (numpy, JSON readers and Blender all take them)."""


def derive_seed(parent: int, label: str, index: int = 0) -> int:
    """The child seed for `label` number `index` under `parent`: stable, independent streams."""
    if parent < 0 or index < 0:
        raise ValueError(f"derive_seed: parent ({parent}) and index ({index}) must be >= 0")
    digest = hashlib.sha256(f"{parent}\x1f{label}\x1f{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the one text a hash of a structure is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def spec_hash(spec: Any) -> str:
    """SHA-256 hex digest of a JSON-able structure (config, preset list, recipe)."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def job_id(spec: Any) -> str:
    """A short id for a job spec: no timestamps go in, so the same spec always gets the same id."""
    return "job-" + spec_hash(spec)[:16]
