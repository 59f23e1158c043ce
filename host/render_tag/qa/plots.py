"""The figures of audit, verify and the report, drawn with matplotlib's Agg backend as PNG bytes.

A figure someone reads has axes that start at zero, ticks, units and labels; cv2 drawing gave none of
that. Figures are built on `matplotlib.figure.Figure` (no pyplot, so no global state and no display),
and saved without the version stamp, so the same data gives the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "heatmap_png",
    "histogram_png",
    "offsets_png",
    "series_png",
    "stacked_bars_png",
]

BAR = "#3b6fb6"
DPI = 100


def _figure(width_in: float = 5.8, height_in: float = 3.4) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _no_data(axes: Axes, text: str = "no data") -> None:
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center", color="#a00")


def histogram_png(
    counts: Sequence[int],
    edges: Sequence[float],
    title: str,
    xlabel: str,
    *,
    ylabel: str = "count",
    stats: Mapping[str, Any] | None = None,
) -> bytes:
    """Bars from a histogram's counts and bin edges; the count axis starts at 0 and ticks its whole
    range, the median and the 5 %-95 % range are drawn when `stats` has them."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure()
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    c = np.asarray(counts, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    if c.size == 0 or e.size != c.size + 1:
        _no_data(axes)
        return _png(figure)
    if e[-1] - e[0] < 1e-6:  # every value the same: one visible bar around it
        half = max(abs(e[0]) * 0.01, 0.5)
        e = np.linspace(e[0] - half, e[0] + half, c.size + 1)
    axes.bar(e[:-1], c, width=np.diff(e), align="edge", color=BAR, edgecolor="white", linewidth=0.5)
    axes.set_ylim(0, max(1.0, float(c.max())) * 1.1)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", alpha=0.3)
    if stats and stats.get("count"):
        if "p5" in stats and "p95" in stats:
            axes.axvspan(stats["p5"], stats["p95"], color="#999", alpha=0.12, label="5 %-95 %")
        if "median" in stats:
            axes.axvline(stats["median"], color="#c33", linewidth=1.5, label=f"median {stats['median']:.3g}")
        axes.legend(loc="upper right", fontsize="small", title=f"n = {stats['count']}")
    return _png(figure)


def heatmap_png(counts: npt.NDArray[np.float64], title: str, width_px: int, height_px: int) -> bytes:
    """Counts on a grid over the image (row 0 at the top, as in the image), with pixel axes and a
    colour bar of the count (logarithmic once the busiest cell holds more than 20)."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    figure = _figure(6.0, 4.6)
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel("x (px)")
    axes.set_ylabel("y (px)")
    grid = np.asarray(counts, dtype=np.float64)
    shown = np.ma.masked_less_equal(grid, 0)
    vmax = max(2.0, float(grid.max()))
    log = vmax > 20
    image = axes.imshow(
        shown,
        extent=(-0.5, width_px - 0.5, height_px - 0.5, -0.5),
        cmap="viridis",
        norm=LogNorm(vmin=1, vmax=vmax) if log else Normalize(vmin=0, vmax=vmax),
        interpolation="nearest",
        aspect="equal",
    )
    axes.set_facecolor("#f2f2f2")
    label = "points per cell" + (" (log scale)" if log else "") + "; grey: none"
    bar = figure.colorbar(image, ax=axes, label=label, fraction=0.05, pad=0.02)
    if log:
        bar.formatter = ScalarFormatter()
    else:
        bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    if grid.sum() == 0:
        _no_data(axes)
    return _png(figure)


def offsets_png(panels: Mapping[str, npt.NDArray[np.float64]], reach_px: float = 2.0) -> bytes:
    """One panel per family: detected minus true corner offsets (px), labelled rings at 0.5, 1 and 2 px,
    the mean offset as a red cross; points beyond the reach are drawn on its edge."""
    names = list(panels) or ["(nothing detected)"]
    columns = min(len(names), 3)
    rows = math.ceil(len(names) / columns)
    figure = _figure(4.4 * columns, 4.4 * rows)
    theta = np.linspace(0, 2 * np.pi, 200)
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        for ring in (0.5, 1.0, 2.0):
            axes.plot(ring * np.cos(theta), ring * np.sin(theta), color="#bbb", linewidth=0.8)
            axes.annotate(f"{ring:g} px", (ring * 0.707, -ring * 0.707), fontsize=7, color="#666")
        axes.axhline(0, color="#ddd", linewidth=0.8)
        axes.axvline(0, color="#ddd", linewidth=0.8)
        offsets = np.asarray(panels.get(name, np.empty((0, 2))), dtype=np.float64).reshape(-1, 2)
        if len(offsets):
            shown = np.clip(offsets, -reach_px, reach_px)
            axes.scatter(shown[:, 0], shown[:, 1], s=4, color=BAR, alpha=0.6, label=f"{len(offsets)} corners")
            mx, my = offsets.mean(axis=0)
            axes.plot([mx], [my], marker="+", color="red", markersize=12, mew=2, linestyle="none",
                      label=f"mean ({mx:+.3f}, {my:+.3f})")  # fmt: skip
            axes.legend(loc="upper left", fontsize=7)
        else:
            _no_data(axes, "no detection")
        lim = reach_px * 1.1
        axes.set_xlim(-lim, lim)
        axes.set_ylim(lim, -lim)  # y down, as in the image
        axes.set_aspect("equal")
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("dx detected - true (px)")
        axes.set_ylabel("dy (px, down)")
    return _png(figure)


def stacked_bars_png(
    labels: Sequence[str], parts: Mapping[str, Sequence[float]], title: str, ylabel: str
) -> bytes:
    """Bars of `labels`, each stacked from `parts` (name -> one value per label); y from 0."""
    figure = _figure()
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    if not labels or not parts:
        _no_data(axes)
        return _png(figure)
    x = np.arange(len(labels))
    bottom = np.zeros(len(labels))
    for name, values in parts.items():
        v = np.asarray(values, dtype=np.float64)
        axes.bar(x, v, bottom=bottom, label=name, width=0.6)
        bottom += v
    axes.set_xticks(x, list(labels))
    axes.set_ylim(0, max(float(bottom.max()), 1e-9) * 1.15)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small", ncols=min(4, len(parts)), loc="upper right")
    return _png(figure)


def series_png(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    steps: bool = False,
    events: Sequence[tuple[float, str]] = (),
) -> bytes:
    """Lines (name -> (x, y)), y from 0; `events` are vertical marks (x, label), such as restarts."""
    figure = _figure()
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    top = 0.0
    for name, (xs, ys) in series.items():
        if len(xs) == 0:
            continue
        if steps:
            axes.step(xs, ys, where="post", label=name)
        else:
            axes.plot(xs, ys, marker=".", label=name)
        top = max(top, float(np.max(ys)))
    for x, label in events:
        axes.axvline(x, color="#c33", linestyle="--", linewidth=1)
        axes.annotate(label, (x, 0), rotation=90, fontsize=7, color="#c33", va="bottom", ha="right")
    if top == 0.0 and not any(len(xs) for xs, _ in series.values()):
        _no_data(axes)
    axes.set_ylim(0, max(top, 1e-9) * 1.12)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    if any(len(xs) for xs, _ in series.values()):
        axes.legend(fontsize="small", loc="lower right")
    return _png(figure)
