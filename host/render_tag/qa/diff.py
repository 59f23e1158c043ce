"""`AuditDiff`: what changed between the audits of two datasets (`render-tag audit A --diff B`).

A new renderer version, preset or config gives a dataset that looks like the old one; the diff says in
numbers where it is not: counts, the score, each distribution's statistics, and gates whose status
changed. Changes are B minus A ("from A to B"), as the seed system's `AuditDiff(a, b).calculate()`.
"""

from __future__ import annotations

from typing import Any

from .audit import AuditReport

__all__ = ["AuditDiff"]

_STATS = ("count", "mean", "median", "p5", "p95", "min", "max")


def _as_dict(report: AuditReport | dict[str, Any]) -> dict[str, Any]:
    return report.to_dict() if isinstance(report, AuditReport) else report


def _change(a: Any, b: Any) -> dict[str, Any]:
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    return {"a": a, "b": b, "change": (b - a) if numbers else None}


class AuditDiff:
    """The difference of two audits (AuditReport, or audit.json as a dict): B minus A."""

    def __init__(self, report_a: AuditReport | dict[str, Any], report_b: AuditReport | dict[str, Any]):
        self.a = _as_dict(report_a)
        self.b = _as_dict(report_b)

    def calculate(self) -> dict[str, Any]:
        """The seed system's flat deltas (B - A)."""
        da, db = self.a.get("distributions", {}), self.b.get("distributions", {})

        def stat(d: dict[str, Any], name: str, key: str) -> float:
            return float(d.get(name, {}).get(key, 0.0))

        return {
            "tag_count": self.b["counts"].get("tags", 0) - self.a["counts"].get("tags", 0),
            "image_count": self.b["counts"].get("images", 0) - self.a["counts"].get("images", 0),
            "distance_mean_diff": stat(db, "distance_m", "mean") - stat(da, "distance_m", "mean"),
            "incidence_angle_max_diff": stat(db, "angle_of_incidence_deg", "max")
            - stat(da, "angle_of_incidence_deg", "max"),
            "score_diff": float(self.b.get("score", 0.0)) - float(self.a.get("score", 0.0)),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything that changed, and what did not: counts, score, distributions, gates."""
        counts = {
            name: _change(self.a["counts"].get(name), self.b["counts"].get(name))
            for name in sorted(self.a["counts"].keys() | self.b["counts"].keys())
        }
        distributions: dict[str, Any] = {}
        da, db = self.a.get("distributions", {}), self.b.get("distributions", {})
        for name in sorted(da.keys() | db.keys()):
            sa, sb = da.get(name, {}), db.get(name, {})
            distributions[name] = {key: _change(sa.get(key), sb.get(key)) for key in _STATS}
        gates: dict[str, Any] = {}
        ga, gb = self.a.get("gates", {}), self.b.get("gates", {})
        for name in sorted(ga.keys() | gb.keys()):
            status_a = ga.get(name, {}).get("status", "absent")
            status_b = gb.get(name, {}).get("status", "absent")
            gates[name] = {
                "status": {"a": status_a, "b": status_b},
                "value": _change(ga.get(name, {}).get("value"), gb.get(name, {}).get("value")),
                "changed": status_a != status_b,
            }
        return {
            "a": self.a.get("root"),
            "b": self.b.get("root"),
            "direction": "change = b - a",
            "score": _change(self.a.get("score"), self.b.get("score")),
            "passed": {"a": self.a.get("passed"), "b": self.b.get("passed")},
            "counts": counts,
            "distributions": distributions,
            "gates": gates,
            "changed_gates": [name for name, g in gates.items() if g["changed"]],
            "quarantined": _change(len(self.a.get("quarantine", [])), len(self.b.get("quarantine", []))),
            "seed": self.calculate(),
        }

    def summary(self) -> str:
        """A few lines: what changed from A to B."""
        d = self.to_dict()
        lines = [f"audit diff {d['a']} -> {d['b']} (changes are b - a)"]

        def fmt(value: Any) -> str:
            return f"{value:.4g}" if isinstance(value, float) else str(value)

        def line(label: str, c: dict[str, Any]) -> str:
            change = c["change"]
            sign = "" if change is None else f" ({'+' if change >= 0 else ''}{fmt(change)})"
            return f"  {label}: {fmt(c['a'])} -> {fmt(c['b'])}{sign}"

        lines.append(line("score", d["score"]))
        lines += [line(name, c) for name, c in d["counts"].items() if c["a"] != c["b"]]
        for name, stats in d["distributions"].items():
            for key in ("count", "mean", "median", "p95"):
                c = stats[key]
                if c["a"] != c["b"]:
                    lines.append(line(f"{name} {key}", c))
        for name in d["changed_gates"]:
            status = d["gates"][name]["status"]
            lines.append(f"  gate {name}: {status['a']} -> {status['b']}")
        if len(lines) == 2 and d["score"]["change"] == 0:
            lines.append("  nothing changed")
        return "\n".join(lines)
