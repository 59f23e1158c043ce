"""The benchmarks' jobs compile at every size they render (`make bench` is not run by the suite)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from ..builders import REPO_ROOT


@pytest.fixture(scope="module")
def pool_bench():  # type: ignore[no-untyped-def]
    path = REPO_ROOT / "bench" / "pool_bench.py"
    spec = importlib.util.spec_from_file_location("pool_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pool_bench"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("pool_bench", None)


@pytest.mark.parametrize(("size", "count"), [((320, 240), 12), ((640, 480), 8), ((160, 120), 6)])
def test_the_default_job_compiles_at_the_bench_sizes(pool_bench, size: tuple[int, int], count: int) -> None:  # type: ignore[no-untyped-def]
    """At 320x240 the ChArUco scenes' 3.5 px per module bound was met by no pose: the bench died."""
    recipes = pool_bench.job_recipes(count, size, 4)
    assert [r.scene_id for r in recipes] == list(range(count))
    boards = [r for r in recipes if any(o.type == "BOARD" for o in r.objects)]
    assert len(boards) == count // 3
    assert all(tuple(c.intrinsics.resolution) == size for r in recipes for c in r.cameras)
