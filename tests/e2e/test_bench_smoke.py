"""Every benchmark of `make bench` runs at its smoke size and prints its figures (no timing is asserted).

Nothing else runs the benchmarks, so without this they rot unseen (the pool benchmark once died at
compile time for months). Each runs as `make bench` runs it: a script in bench/ with this interpreter.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..builders import REPO_ROOT

FIGURES = {
    "compile_bench.py": [r"compiled 50 scenes .* scenes/s", r"share of the pose judge"],
    "pool_bench.py": [r"^1\. pool vs process per scene.*x faster", r"^2\. pipeline vs bare render call",
                      r"^3\. 1 vs 2 workers", r"^4\. worker memory: \d+ MB", r'^\{"cores"'],
    "dask_bench.py": [r"^5\. Dask vs local pool.*images byte-identical: True"],
    "render_cost_bench.py": [r"^old default \(16 spp\) +\d+\.\d+ +1\.00 ", r"^preset fast ",
                             r"^preset balanced ", r"^preset exact ",
                             r"4 cameras of a scene .*separate / one scene = \d+\.\d+x.*"
                             r"pixels identical with persistent data: True", r"^curve: "],
    "realism_bench.py": [r"^realism: \d+\.\d+x the plain scene's time per image"],
}  # fmt: skip
"""Lines each benchmark must print (its figures), as regular expressions over its output."""


def test_every_benchmark_is_smoke_tested() -> None:
    """A benchmark added to bench/ without a line here would rot unseen again."""
    scripts = {p.name for p in (REPO_ROOT / "bench").glob("*_bench.py")}
    assert scripts == set(FIGURES)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(FIGURES))
def test_the_benchmark_completes_and_prints_its_figures(script: str, tmp_path: Path) -> None:
    extra = ["--plot", str(tmp_path / "curve.png")] if script == "render_cost_bench.py" else []
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), "--smoke", *extra],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    for pattern in FIGURES[script]:
        assert re.search(pattern, done.stdout, re.MULTILINE), (
            f"{script} did not print {pattern!r}:\n{done.stdout}"
        )
    if script == "render_cost_bench.py":
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            assert "matplotlib is not installed" in done.stdout
        else:
            assert (tmp_path / "curve.png").stat().st_size > 10_000
