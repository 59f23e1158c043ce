"""`OUT/report.html`: one page a person opens to judge a dataset, written by run, audit, verify and report.

It shows what was asked (config, presets, seeds), what was made (counts, versions, render environment,
time per image), the contact sheet, the audit's gates and distributions, verify's errors and figures,
each camera's intrinsics, what the render cost (stages, start-up, restarts, memory, from
telemetry.ndjson) and a link to every file. The page is one self-contained file: pictures are embedded
as PNG data, links are relative, and nothing is fetched when it is viewed (no script, no web font).

The audit and verify sections are drawn from audit.json and verify.json as they are: every gate is a
row (pass, warn or fail), every distribution with a histogram a figure, and anything else those files
hold is shown as JSON, so what the auditor learns to check appears here without a change.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from render_tag_shared.errors import InputError

from ..dataset.merge import COCO, CSV, PROVENANCE, RICH_TRUTH
from ..io import write_text_atomic
from .runstats import MANIFEST_FILE, STAGES, RunStats, read_run_stats

__all__ = ["REPORT", "write_report"]

REPORT = "report.html"
AUDIT_FILE, VERIFY_FILE, PREVIEW_FILE, RECIPES_FILE = (
    "audit.json",
    "verify.json",
    "preview.png",
    "recipes.json",
)
MAX_LISTED_FILES = 5000
"""Files listed per folder in the page (a folder holds one file per image)."""

_UNITS = {
    "_m": "m",
    "_deg": "degrees",
    "_px": "px",
    "_mm": "mm",
    "_s": "s",
    "_mb": "MB",
    "ppm": "px per module",
}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#223;color:#fff;padding:14px 24px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#ccd}main{padding:8px 24px 40px;max-width:1400px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 18px 14px;margin:14px 0}
h2{font-size:18px;margin:10px 0 8px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;margin:4px 0 10px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top;overflow-wrap:anywhere}th{background:#f0f0f4}table.kv td{text-align:left}
td:first-child{white-space:nowrap}table.kv td:first-child{color:#555}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#161;font-weight:600}.warn{color:#a60;font-weight:600}.fail{color:#b11;font-weight:600}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;color:#fff}
.badge.pass{background:#2a7a2a}.badge.fail{background:#b22}.badge.warn{background:#c80}.badge.none{background:#888}
.figs{display:flex;flex-wrap:wrap;gap:8px 18px;align-items:flex-start}
figure{margin:6px 0;flex:0 1 auto}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figure.wide{flex:1 1 100%}figure.wide img{width:100%}figcaption{font-size:12px;color:#555}
pre{background:#f4f4f4;padding:8px;overflow:auto;max-height:420px;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:6px 24px}
nav a{margin-right:12px;color:#cde}.muted{color:#777}code{background:#f0f0f0;padding:0 3px}
"""


# -- small HTML helpers ----------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _e("—" if value is None else value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    if isinstance(value, float):
        if not math.isfinite(value):
            return _e(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return _e(value)


def _table(header: Sequence[str], rows: Iterable[Iterable[Any]], raw: bool = False, css: str = "") -> str:
    """A table; cells are escaped (numbers right-aligned) unless `raw` (already HTML)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    head = f"<tr>{head}</tr>" if any(header) else ""
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if raw and isinstance(cell, str):
                cells.append(f"<td>{cell}</td>")
            elif isinstance(cell, int | float) and not isinstance(cell, bool):
                cells.append(f'<td class="n">{_num(cell)}</td>')
            else:
                cells.append(f"<td>{_num(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{css}>{head}{''.join(body)}</table>"


def _pairs(items: Mapping[str, Any]) -> str:
    return _table(
        ("", ""),
        ([k, v if not isinstance(v, dict | list) else json.dumps(v)] for k, v in items.items()),
        css=' class="kv"',
    )


def _png_data(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(data: bytes | None, caption: str, alt: str, css: str = "") -> str:
    if not data:
        return f'<p class="muted">{_e(caption)}: no picture</p>'
    return (
        f'<figure{css}><img src="{_png_data(data)}" alt="{_e(alt)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _figs(figures: Iterable[str]) -> str:
    return f'<div class="figs">{"".join(figures)}</div>'


def _file_figure(root: Path, relative: str, caption: str, css: str = "") -> str:
    path = root / relative
    try:
        data = path.read_bytes()
    except OSError:
        return f'<p class="muted">{_e(relative)} is missing</p>'
    if not data.startswith(b"\x89PNG"):
        return f'<p class="fail">{_e(relative)} is not a PNG</p>'
    return _figure(data, f"{caption} ({relative})", caption, css)


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status.upper())}</span>'


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _unit(name: str) -> str:
    return next((unit for suffix, unit in _UNITS.items() if name.endswith(suffix)), "")


# -- sections --------------------------------------------------------------------------------------


def _card(root: Path, manifest: Any, recipes: Any, provenance: Any, audit: Any, stats: RunStats) -> str:
    parts = ['<section id="card"><h2>Dataset card</h2><div class="grid"><div><h3>What was asked</h3>']
    spec = recipes.get("job_spec") if isinstance(recipes, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    recipe_list = recipes.get("recipes", []) if isinstance(recipes, dict) else []
    source = manifest.get("recipes") if isinstance(manifest, dict) else None
    asked: dict[str, Any] = {
        "config or recipes": source or "—",
        "presets": ", ".join(spec.get("presets") or []) or "none (balanced)",
        "job seed": (spec.get("seeds") or {}).get("job", "—"),
        "scenes": spec.get("num_scenes", len(recipe_list)),
        "config sha256": spec.get("config_sha256", "—"),
        "job id": recipes.get("job_id", "—") if isinstance(recipes, dict) else "—",
    }
    if recipe_list:
        first = recipe_list[0]
        renderer = first.get("renderer", {})
        asked["renderer"] = ", ".join(
            f"{k} {renderer[k]}" for k in ("mode", "samples", "denoise", "device") if k in renderer
        )
        subjects: Counter[str] = Counter()
        for recipe in recipe_list:
            for obj in recipe.get("objects", []):
                if obj.get("type") == "TAG":
                    subjects[f"tag {obj.get('tag_family')}"] += 1
                elif obj.get("type") == "BOARD":
                    board = obj.get("board") or obj.get("board_definition") or {}
                    subjects[
                        f"board {board.get('board_type', '')} {board.get('dictionary', '')}".strip()
                    ] += 1
        asked["subjects (objects over all scenes)"] = ", ".join(
            f"{n} x {k}" for k, n in sorted(subjects.items())
        )
        resolutions = Counter(
            "x".join(map(str, cam.get("intrinsics", {}).get("resolution", [])))
            for recipe in recipe_list
            for cam in recipe.get("cameras", [])
        )
        asked["resolution"] = ", ".join(f"{r} ({n} images)" for r, n in sorted(resolutions.items()))
    parts.append(_pairs(asked))
    if (
        source
        and Path(str(source)).suffix.lower() in (".yaml", ".yml", ".json")
        and Path(str(source)).is_file()
    ):
        try:
            text = Path(str(source)).read_text(encoding="utf-8")[:20000]
            summary = f"{_e(source)} (as it is on disk now)"
            parts.append(f"<details><summary>{summary}</summary><pre>{_e(text)}</pre></details>")
        except (OSError, UnicodeDecodeError):
            pass

    parts.append("</div><div><h3>What was made</h3>")
    made: dict[str, Any] = {}
    summary = manifest.get("summary", {}) if isinstance(manifest, dict) else {}
    if isinstance(manifest, dict):
        made["render status"] = manifest.get("status", "—")
        made["scenes done / failed / pending"] = (
            f"{summary.get('done', 0)} / {summary.get('failed', 0)} / {summary.get('pending', 0)}"
        )
    counts = audit.get("counts", {}) if isinstance(audit, dict) else {}
    for key in ("images", "records", "tags", "boards"):
        if key in counts:
            made[key] = counts[key]
    if isinstance(provenance, dict):
        made["images with provenance"] = len(provenance.get("images", {}))
        for name, version in (provenance.get("versions") or {}).items():
            made[f"version {name}"] = version
        environments = Counter(
            json.dumps(entry.get("render_environment", {}), sort_keys=True)
            for entry in (provenance.get("images") or {}).values()
            if isinstance(entry, dict)
        )
        for index, (environment, n) in enumerate(environments.most_common(3)):
            env = json.loads(environment)
            label = "render environment" + (f" {index + 1}" if len(environments) > 1 else "")
            made[f"{label} ({n} images)"] = ", ".join(f"{k} {v}" for k, v in env.items())
    if stats.images_timed:
        per = stats.seconds_per_image
        made["time per image (worker)"] = f"{sum(per.values()):.3f} s: " + ", ".join(
            f"{stage} {per[stage]:.3f} s" for stage in STAGES if stage in per
        )
    finished = [run for run in stats.runs if run.get("elapsed_s")]
    if finished:
        run = finished[-1]
        images = run.get("images") or 0
        made["last run wall time"] = f"{run['elapsed_s']:.1f} s for {images} images" + (
            f" ({run['elapsed_s'] / images:.3f} s per image, {run.get('workers')} workers)" if images else ""
        )
    parts.append(_pairs(made) if made else '<p class="muted">no manifest, audit or provenance yet</p>')
    parts.append("</div></div></section>")
    return "".join(parts)


def _contact_sheet(root: Path) -> str:
    body = _file_figure(
        root, PREVIEW_FILE, "contact sheet: corners TL red, TR green, BR blue, BL yellow", ' class="wide"'
    )
    return f'<section id="sheet"><h2>Contact sheet</h2>{body}</section>'


def _gate_status(gate: Mapping[str, Any]) -> str:
    status = gate.get("status")
    if isinstance(status, str) and status.lower() in ("pass", "warn", "fail"):
        return status.lower()
    if gate.get("passed") is False:
        return "fail"
    return "warn" if gate.get("warning") or gate.get("warn") else "pass"


def _audit(root: Path, audit: Any) -> str:
    if not isinstance(audit, dict):
        return (
            '<section id="audit"><h2>Audit</h2><p class="muted">not audited yet: '
            f"<code>render-tag audit {_e(root)}</code></p></section>"
        )
    gates = audit.get("gates") or {}
    statuses = [_gate_status(g) for g in gates.values() if isinstance(g, dict)]
    overall = (
        "fail"
        if "fail" in statuses or audit.get("passed") is False
        else "warn"
        if "warn" in statuses
        else "pass"
    )
    parts = [f'<section id="audit"><h2>Audit {_badge(overall)}</h2>']
    if "score" in audit:
        parts.append(f"<p>score <b>{_num(audit['score'])}</b> / 100</p>")
    rows = []
    for name, gate in gates.items():
        if not isinstance(gate, dict):
            continue
        status = _gate_status(gate)
        extra = {k: v for k, v in gate.items() if k not in ("value", "limit", "kind", "passed", "status")}
        rows.append(
            [
                _e(name),
                _num(gate.get("value")),
                _num(gate.get("limit")),
                _e(gate.get("kind", "")),
                f'<span class="{status}">{status}</span>',
                _e(json.dumps(extra)) if extra else "",
            ]
        )
    if rows:
        parts.append(
            "<h3>Gates</h3>" + _table(("gate", "value", "limit", "kind", "status", "detail"), rows, raw=True)
        )
    checks = audit.get("checks") or {}
    descriptions = audit.get("check_descriptions") or {}
    if checks:
        rows = []
        for name, check in checks.items():
            scalars = (
                {k: v for k, v in check.items() if not isinstance(v, dict | list)}
                if isinstance(check, dict)
                else {}
            )
            listed = (
                {k: len(v) for k, v in check.items() if isinstance(v, list)}
                if isinstance(check, dict)
                else {}
            )
            found = ", ".join(
                [f"{k} {_num(v)}" for k, v in scalars.items()] + [f"{k}: {n}" for k, n in listed.items()]
            )
            rows.append([_e(name), _e(found), _e(descriptions.get(name, ""))])
        parts.append("<h3>Checks</h3>" + _table(("check", "found", "what it looks at"), rows, raw=True))
    parts.append(_distributions(root, audit.get("distributions") or {}))
    shown = {d.get("plot") for d in (audit.get("distributions") or {}).values() if isinstance(d, dict)}
    others = [p for p in audit.get("plots") or [] if isinstance(p, str) and p not in shown]
    if others:
        parts.append(
            "<h3>Figures</h3>" + _figs(_file_figure(root, p, Path(p).stem.replace("_", " ")) for p in others)
        )
    known = {
        "version",
        "passed",
        "score",
        "failed_gates",
        "gates",
        "counts",
        "checks",
        "check_descriptions",
        "distributions",
        "plots",
    }
    for key, value in audit.items():
        if key not in known and value not in (None, [], {}):
            text = json.dumps(value, indent=1, default=str)[:50000]
            parts.append(f"<details open><summary><b>{_e(key)}</b></summary><pre>{_e(text)}</pre></details>")
    parts.append(f'<p><a href="{AUDIT_FILE}">audit.json</a></p></section>')
    return "".join(parts)


def _distributions(root: Path, distributions: Mapping[str, Any]) -> str:
    if not distributions:
        return ""
    from .plots import histogram_png

    rows, figures = [], []
    for name, stats in distributions.items():
        if not isinstance(stats, dict):
            continue
        unit = stats.get("unit") or _unit(name)
        rows.append(
            [name, unit, *[stats.get(k) for k in ("count", "min", "p5", "median", "mean", "p95", "max")]]
        )
        plot = stats.get("plot")
        if isinstance(plot, str) and (root / plot).is_file():
            figures.append(_file_figure(root, plot, name))
        elif isinstance(stats.get("histogram"), dict):
            histogram = stats["histogram"]
            label = name.replace("_", " ") + (f" ({unit})" if unit else "")
            png = histogram_png(
                histogram.get("counts", []),
                histogram.get("edges", []),
                name.replace("_", " "),
                label,
                stats=stats,
            )
            figures.append(_figure(png, name, name))
    table = _table(("distribution", "unit", "n", "min", "p5", "median", "mean", "p95", "max"), rows)
    return "<h3>Distributions</h3>" + table + _figs(figures)


def _verify(root: Path, verify: Any) -> str:
    if not isinstance(verify, dict):
        return (
            '<section id="verify"><h2>Verify</h2><p class="muted">not verified yet: '
            f"<code>render-tag verify {_e(root)}</code> runs OpenCV's detectors on the images</p></section>"
        )
    status = "pass" if verify.get("passed") else "fail"
    parts = [
        f'<section id="verify"><h2>Verify (OpenCV {_e(verify.get("opencv_version", "?"))}) '
        f"{_badge(status)}</h2>"
    ]
    failures = verify.get("failures") or []
    if failures:
        parts.append(
            "<h3>Thresholds missed</h3><ul>"
            + "".join(f'<li class="fail">{_e(f)}</li>' for f in failures)
            + "</ul>"
        )
    rows = []
    for name, fam in (verify.get("families") or {}).items():
        err, centre = fam.get("corner_error") or {}, fam.get("centre_error") or {}
        rows.append(
            [
                name,
                fam.get("detected"),
                fam.get("expected"),
                fam.get("detection_rate"),
                fam.get("false_positives"),
                err.get("median"),
                err.get("p95"),
                err.get("mean_dx"),
                err.get("mean_dy"),
                centre.get("median"),
            ]
        )
    if rows:
        header = (
            "family",
            "detected",
            "expected",
            "rate",
            "false +",
            "corner median (px)",
            "p95 (px)",
            "mean dx (px)",
            "mean dy (px)",
            "centre median (px)",
        )
        parts.append("<h3>Detections against the truth</h3>" + _table(header, rows))
    cal_rows = []
    for cal in verify.get("calibration") or []:
        est, true = cal.get("estimated") or {}, cal.get("true") or {}
        cal_rows.append(
            [
                cal.get("views"),
                cal.get("distortion_model"),
                *[
                    f"{est.get(k, float('nan')):.2f} ({true.get(k, float('nan')):.2f})"
                    for k in ("fx", "fy", "cx", "cy")
                ],
                cal.get("rms_px"),
                cal.get("error", ""),
            ]
        )
    if cal_rows:
        parts.append(
            "<h3>Calibration from the detections (estimated (true))</h3>"
            + _table(("views", "model", "fx", "fy", "cx", "cy", "rms (px)", "error"), cal_rows)
        )
    if isinstance(verify.get("plot"), str):
        parts.append(_file_figure(root, verify["plot"], "corner offsets, detected - true"))
    if verify.get("thresholds"):
        parts.append(
            "<details><summary>thresholds and detector</summary>"
            + _pairs(verify["thresholds"])
            + _pairs(verify.get("detector") or {})
            + "</details>"
        )
    parts.append(f'<p><a href="{VERIFY_FILE}">verify.json</a></p></section>')
    return "".join(parts)


def _intrinsics(recipes: Any) -> str:
    groups: Counter[str] = Counter()
    for recipe in recipes.get("recipes", []) if isinstance(recipes, dict) else []:
        for camera in recipe.get("cameras", []):
            intr = camera.get("intrinsics", {})
            k = intr.get("k_matrix") or [[0, 0, 0], [0, 0, 0]]
            key = [
                camera.get("name", "?"),
                "x".join(map(str, intr.get("resolution", []))),
                k[0][0],
                k[1][1],
                k[0][2],
                k[1][2],
                intr.get("distortion_model", "none"),
                " ".join(f"{c:.4g}" for c in intr.get("distortion_coeffs", [])),
                intr.get("eval_margin_px"),
            ]
            groups[json.dumps(key)] += 1
    if not groups:
        return ""
    rows = [[*json.loads(key), n] for key, n in sorted(groups.items())]
    header = (
        "camera",
        "resolution",
        "fx (px)",
        "fy (px)",
        "cx (px)",
        "cy (px)",
        "distortion",
        "coefficients",
        "eval margin (px)",
        "images",
    )
    note = "<p class='muted'>Pixel centres follow OpenCV: the centre of the top-left pixel is (0, 0).</p>"
    return f'<section id="cameras"><h2>Cameras</h2>{note}{_table(header, rows[:200])}</section>'


def _cost(stats: RunStats) -> str:
    from .plots import series_png, stacked_bars_png

    if not stats.runs and not stats.images_timed:
        return (
            '<section id="cost"><h2>Render cost</h2><p class="muted">no manifest.json or telemetry.ndjson '
            "in this folder</p></section>"
        )
    parts = ['<section id="cost"><h2>Render cost (telemetry.ndjson, manifest.json)</h2>']
    if stats.runs:
        rows = [
            [
                i + 1,
                r.get("status", "running or killed"),
                r.get("workers"),
                r.get("todo"),
                r.get("skipped"),
                r.get("done"),
                r.get("failed"),
                r.get("images"),
                r.get("elapsed_s"),
                r.get("launcher"),
            ]
            for i, r in enumerate(stats.runs)
        ]
        parts.append(
            _table(
                (
                    "run",
                    "status",
                    "workers",
                    "scenes to do",
                    "skipped",
                    "done",
                    "failed",
                    "images",
                    "wall (s)",
                    "launcher",
                ),
                rows,
            )
        )
    rows = [
        [
            "all workers",
            int(stats.images_timed),
            *[stats.seconds_per_image.get(s, 0.0) for s in STAGES],
            sum(stats.seconds_per_image.values()),
        ]
    ]
    rows += [
        [w, int(v["images"]), *[v[s] for s in STAGES], sum(v[s] for s in STAGES)]
        for w, v in stats.per_worker.items()
    ]
    parts.append(
        "<h3>Seconds per image, by stage</h3>" + _table(("worker", "images", *STAGES, "total"), rows)
    )
    figures = []
    if stats.per_worker:
        per = stats.seconds_per_image
        overall = [] if len(stats.per_worker) == 1 else ["all workers"]
        labels = overall + list(stats.per_worker)
        bars = {
            s: [per.get(s, 0.0)] * len(overall) + [v[s] for v in stats.per_worker.values()] for s in STAGES
        }
        figures.append(
            _figure(
                stacked_bars_png(labels, bars, "time per image by stage", "seconds per image"),
                "time per image, by stage and worker",
                "stage times",
            )
        )
    if stats.finished:
        xs = [0.0] + [t for t, _ in stats.finished]
        ys = [0] + [n for _, n in stats.finished]
        figures.append(
            _figure(
                series_png(
                    {"images done": (xs, ys)},
                    "progress",
                    "time since the first run started (s)",
                    "images",
                    steps=True,
                    events=stats.restart_times,
                ),
                "images done over time",
                "progress",
            )
        )
    if stats.memory:
        series = {w: ([t for t, _ in v], [m for _, m in v]) for w, v in sorted(stats.memory.items())}
        figures.append(
            _figure(
                series_png(
                    series,
                    "worker memory (heartbeats)",
                    "time since the first run started (s)",
                    "resident memory (MB)",
                    events=stats.restart_times,
                ),
                "worker memory",
                "memory",
            )
        )
    parts.append(_figs(figures))
    facts: dict[str, Any] = {}
    if stats.startups:
        values = sorted(stats.startups.values())
        facts["worker start-up (s)"] = (
            f"median {values[len(values) // 2]:.2f}, max {values[-1]:.2f} over {len(values)} starts"
        )
    facts["restarts"] = ", ".join(f"{k} {v}" for k, v in stats.restarts.items()) or "none"
    if stats.peak_rss_mb:
        facts["peak memory per worker (MB)"] = ", ".join(
            f"{w} {m:.0f}" for w, m in sorted(stats.peak_rss_mb.items())
        )
    if stats.skipped_lines:
        facts["unreadable telemetry lines"] = stats.skipped_lines
    parts.append(_pairs(facts))
    if stats.errors:
        parts.append(
            _table(
                ("t (s)", "worker", "event", "error"),
                ([e["t_s"], e["worker"], e["event"], e["error"]] for e in stats.errors[:50]),
            )
        )
    parts.append("</section>")
    return "".join(parts)


def _files(root: Path) -> str:
    rows, folders = [], []
    for path in sorted(root.iterdir(), key=lambda p: (p.is_dir(), p.name)):
        if path.name.startswith(".") or path.name == REPORT:
            continue
        if path.is_dir():
            names = sorted(p for p in path.rglob("*") if p.is_file())
            links = "".join(
                f'<li><a href="{_e(p.relative_to(root).as_posix())}">'
                f"{_e(p.relative_to(path).as_posix())}</a></li>"
                for p in names[:MAX_LISTED_FILES]
            )
            more = (
                f"<li>… and {len(names) - MAX_LISTED_FILES} more</li>"
                if len(names) > MAX_LISTED_FILES
                else ""
            )
            folders.append(
                f"<details><summary>{_e(path.name)}/ ({len(names)} files)</summary>"
                f"<ul>{links}{more}</ul></details>"
            )
        elif path.is_file():
            rows.append([f'<a href="{_e(path.name)}">{_e(path.name)}</a>', _num(path.stat().st_size)])
    return (
        '<section id="files"><h2>Files</h2>'
        + _table(("file", "bytes"), rows, raw=True)
        + "".join(folders)
        + "</section>"
    )


# -- the page --------------------------------------------------------------------------------------


def write_report(out: str | Path, *, preview: bool = True) -> Path:
    """Writes OUT/report.html from what OUT holds now and returns its path; InputError when OUT is not a
    folder. A missing audit, verify or telemetry is said in its section, not an error. With `preview`,
    a dataset without preview.png gets one first (the page is for looking at the images)."""
    root = Path(out)
    if not root.is_dir():
        raise InputError(str(root), "", "is not a dataset folder")
    has_labels = (root / RICH_TRUTH).is_file() or any((root / "labels").glob("*.json"))
    if preview and not (root / PREVIEW_FILE).exists() and has_labels:
        from .preview import make_preview

        with contextlib.suppress(InputError):  # labels without an image: the page says so
            make_preview(root)
    manifest = _read_json(root / MANIFEST_FILE)
    recipes = _read_json(root / RECIPES_FILE)
    provenance = _read_json(root / PROVENANCE)
    audit = _read_json(root / AUDIT_FILE)
    verify = _read_json(root / VERIFY_FILE)
    stats = read_run_stats(root)
    name = (recipes or {}).get("job_id") if isinstance(recipes, dict) else None
    title = f"render-tag dataset {root.resolve().name}"
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("card", "card"),
            ("sheet", "contact sheet"),
            ("audit", "audit"),
            ("verify", "verify"),
            ("cameras", "cameras"),
            ("cost", "render cost"),
            ("files", "files"),
        )
    )
    links = " · ".join(
        f'<a href="{f}" style="color:#cde">{f}</a>' for f in (RICH_TRUTH, COCO, CSV) if (root / f).is_file()
    )
    body = [
        f"<header><h1>{_e(title)}</h1><p>{_e(root.resolve())}{' · job ' + _e(name) if name else ''}</p>",
        f"<p>{links}</p><nav>{nav}</nav></header><main>",
        _card(root, manifest, recipes, provenance, audit, stats),
        _contact_sheet(root),
        _audit(root, audit),
        _verify(root, verify),
        _intrinsics(recipes),
        _cost(stats),
        _files(root),
        "</main>",
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data: 'self'; "
        "style-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
    return write_text_atomic(root / REPORT, page)
