"""Coverage and balance gates of `render-tag audit`: did the dataset fill the ranges it was asked for?

A dataset whose distances all sit at one end of the configured range, or whose angles never pass 30
degrees, trains a detector that fails elsewhere, and every record of it can still be correct. These
gates look at the distribution, not at single records:

- coverage: the fraction of COVERAGE_BINS equal bins of a range holding at least one record (1.0: no
  hole). The range is the config's when `run` audits (distance: min..max_distance; angle of incidence:
  90 - max_elevation .. 90 - min_elevation, which is the angle at the subject's centre), else the gates
  file's `*_range_*`, else the data's own min..max (then only holes inside the data show).
- balance: the largest share of records in one bin (1.0: all in one bin).
- id coverage: distinct tag ids labelled / ids of the families the tags use.

Every gate has a failure limit (`min_*`/`max_*`) and a warning limit (`warn_*`); a warning is printed and
kept in audit.json but does not change the exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from render_tag_shared.families import get_family

from .gates import AuditGates

__all__ = ["COVERAGE_BINS", "coverage_gates", "gate", "id_coverage", "range_coverage"]

COVERAGE_BINS = 10

STATUSES = ("pass", "warn", "fail")


def gate(
    name: str,
    value: float,
    threshold: float | None,
    *,
    upper: bool,
    warn_threshold: float | None = None,
    description: str = "",
) -> dict[str, Any]:
    """One gate result, the shape every gate of audit.json has.

    `threshold` fails and `warn_threshold` warns (either None: off); `upper` means the value must not
    exceed them (else not fall below). `limit` repeats `threshold` for readers of audit.json version 2.
    """

    def violates(limit: float | None) -> bool:
        return limit is not None and (value > limit if upper else value < limit)

    status = "fail" if violates(threshold) else "warn" if violates(warn_threshold) else "pass"
    return {
        "name": name,
        "value": value,
        "threshold": threshold,
        "warn_threshold": warn_threshold,
        "kind": "max" if upper else "min",
        "status": status,
        "passed": status != "fail",
        "limit": threshold,
        "description": description,
    }


def range_coverage(
    values: Sequence[float], low: float, high: float, bins: int = COVERAGE_BINS
) -> dict[str, Any]:
    """Coverage and balance of `values` over [low, high] in `bins` equal bins (values outside count as
    outside, not in the end bins)."""
    a = np.asarray(values, dtype=np.float64)
    span = (low, high if high > low else low + 1e-9)
    counts, edges = np.histogram(a, bins=bins, range=span)
    inside = int(counts.sum())
    return {
        "range": [float(low), float(high)],
        "coverage": float(np.count_nonzero(counts) / bins),
        "largest_bin_share": float(counts.max() / inside) if inside else 0.0,
        "outside": int(a.size - inside),
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def id_coverage(tags: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """Distinct (family, id) labelled against the ids of the families used, per family and overall."""
    families: dict[str, set[int]] = {}
    for family, tag_id in tags:
        families.setdefault(family, set()).add(int(tag_id))
    per_family = {}
    seen = available = 0
    for family, ids in sorted(families.items()):
        size = get_family(family).num_ids
        per_family[family] = {"ids_seen": len(ids), "ids_in_family": size, "coverage": len(ids) / size}
        seen, available = seen + len(ids), available + size
    return {"coverage": seen / available if available else 0.0, "families": per_family}


def coverage_gates(
    values: dict[str, list[float]],
    tags: Sequence[tuple[str, int]],
    limits: AuditGates,
    configured: dict[str, tuple[float, float]] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(gates, coverage section of audit.json) of distance, angle of incidence, ppm and tag ids.

    `values` holds `distance_m`, `angle_of_incidence_deg` and `ppm` per record; `configured` the
    config's ranges by the same keys (from `run`).
    """
    given = {
        "distance_m": limits.distance_range_m,
        "angle_of_incidence_deg": limits.angle_range_deg,
        "ppm": limits.ppm_range,
    }
    names = {"distance_m": "distance", "angle_of_incidence_deg": "angle", "ppm": "ppm"}
    units = {"distance_m": "m", "angle_of_incidence_deg": "deg", "ppm": "px/module"}
    gates: dict[str, dict[str, Any]] = {}
    section: dict[str, Any] = {"bins": COVERAGE_BINS}
    largest_share = 0.0
    for key, name in names.items():
        data = values.get(key, [])
        if not data:
            continue
        if configured and key in configured:
            (low, high), source = configured[key], "config"
        elif given[key] is not None:
            (low, high), source = given[key], "gates"  # type: ignore[misc]
        else:
            (low, high), source = (min(data), max(data)), "data"
        result = {**range_coverage(data, float(low), float(high)), "source": source, "unit": units[key]}
        section[key] = result
        largest_share = max(largest_share, result["largest_bin_share"])
        gates[f"{name}_coverage"] = gate(
            f"{name}_coverage",
            result["coverage"],
            getattr(limits, f"min_{name}_coverage"),
            upper=False,
            warn_threshold=getattr(limits, f"warn_{name}_coverage"),
            description=f"fraction of {COVERAGE_BINS} bins of the {source}'s {key} range "
            f"[{float(low):.3g}, {float(high):.3g}] {units[key]} holding a record",
        )
    if section.keys() - {"bins"}:
        gates["bin_share"] = gate(
            "bin_share",
            largest_share,
            limits.max_bin_share,
            upper=True,
            warn_threshold=limits.warn_bin_share,
            description="largest share of records in one bin of distance, angle or ppm",
        )
    if tags:
        ids = id_coverage(tags)
        section["tag_ids"] = ids
        gates["id_coverage"] = gate(
            "id_coverage",
            ids["coverage"],
            limits.min_id_coverage,
            upper=False,
            warn_threshold=limits.warn_id_coverage,
            description="distinct tag ids labelled / ids of the families used",
        )
    return gates, section
