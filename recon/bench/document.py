"""The benchmark document: one self-contained Markdown page of a bench run (``recon bench --report``).

It holds how the run was made (machine, library versions, settings), a summary per
method against the better of Open3D's two reconstructions (the *anchor*), and every
per-case table of results.md. It is written from the results dict alone, so an earlier
run's results.json gives the same page again without running anything
(``recon bench --from-results DIR/results.json --report PATH``).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from recon.bench.report import TABLES_NOTE, case_tables, run_description
from recon.errors import InputError

ANCHORS = ("o3d-poisson", "o3d-bpa")
"The methods a summary compares against: per case, the better of the two that succeeded."

RESULTS_KEYS = ("settings", "cases", "results", "runs")


@dataclass(frozen=True)
class MethodSummary:
    """One method over every case of a run; None where no case gave the figure."""

    method: str
    cases_ok: int
    "Cases where the method gave a mesh."
    cases: int
    compared: int
    "Cases with a ground truth where at least one anchor gave a mesh: the ones a win can be counted on."
    chamfer_wins: int
    "Compared cases where the method's Chamfer-L1 is below the better anchor's."
    normal_wins: int
    "Compared cases where the method's normal consistency is above the better anchor's."
    worst_chamfer_ratio: float | None
    "Largest Chamfer-L1 of the method / that of the better anchor, over the compared cases it succeeded on."
    worst_chamfer_case: str | None
    median_wall_s: float | None
    median_peak_mb: float | None
    max_peak_mb: float | None


def _metric(entry: dict, name: str) -> float | None:
    """A finite metric of a successful (case, method) entry, else None."""
    if not entry.get("ok") or not entry.get("metrics"):
        return None
    value = entry["metrics"].get(name)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _figure(entry: dict, key: str, stat: str) -> float | None:
    """A timing or memory figure (``wall_s`` / ``peak_rss_mb``, ``median`` / ``max``) of a successful entry."""
    if not entry.get("ok"):
        return None
    value = (entry.get(key) or {}).get(stat)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _best_anchor(per_method: dict, name: str, better: str) -> float | None:
    values = [v for a in ANCHORS if (v := _metric(per_method.get(a, {}), name)) is not None]
    if not values:
        return None
    return min(values) if better == "low" else max(values)


def method_summaries(data: dict) -> list[MethodSummary]:
    """One :class:`MethodSummary` per method of the run, in the run's method order."""
    methods = list(data["settings"]["methods"])
    rows = []
    for method in methods:
        ok = compared = chamfer_wins = normal_wins = 0
        worst, worst_case = None, None
        walls, peaks = [], []
        for case, per_method in data["results"].items():
            entry = per_method.get(method, {})
            if entry.get("ok"):
                ok += 1
                if (w := _figure(entry, "wall_s", "median")) is not None:
                    walls.append(w)
                if (p := _figure(entry, "peak_rss_mb", "max")) is not None:
                    peaks.append(p)
            if data["cases"].get(case, {}).get("gt") is None:
                continue
            anchor_cd = _best_anchor(per_method, "chamfer_l1", "low")
            anchor_nc = _best_anchor(per_method, "normal_consistency", "high")
            if anchor_cd is None and anchor_nc is None:
                continue
            compared += 1
            cd = _metric(entry, "chamfer_l1")
            nc = _metric(entry, "normal_consistency")
            if cd is not None and anchor_cd is not None:
                chamfer_wins += cd < anchor_cd
                if anchor_cd > 0:
                    ratio = cd / anchor_cd
                    if worst is None or ratio > worst:
                        worst, worst_case = ratio, case
            if nc is not None and anchor_nc is not None:
                normal_wins += nc > anchor_nc
        rows.append(
            MethodSummary(
                method=method,
                cases_ok=ok,
                cases=len(data["results"]),
                compared=compared,
                chamfer_wins=chamfer_wins,
                normal_wins=normal_wins,
                worst_chamfer_ratio=worst,
                worst_chamfer_case=worst_case,
                median_wall_s=statistics.median(walls) if walls else None,
                median_peak_mb=statistics.median(peaks) if peaks else None,
                max_peak_mb=max(peaks) if peaks else None,
            )
        )
    return rows


def summary_table(data: dict) -> list[str]:
    """Markdown lines: the summary table (one row per method) and what its columns mean."""
    rows = method_summaries(data)
    anchors = [a for a in ANCHORS if a in data["settings"]["methods"]]

    def num(x, fmt):
        return "–" if x is None else fmt.format(x)

    lines = [
        (
            "| method | succeeded | Chamfer-L1 wins | normal consistency wins | worst Chamfer-L1 ratio | "
            "median wall time, s | median peak memory, MB | max peak memory, MB |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if anchors:
            cd_wins, nc_wins = f"{r.chamfer_wins}/{r.compared}", f"{r.normal_wins}/{r.compared}"
        else:
            cd_wins = nc_wins = "–"
        worst = "–" if r.worst_chamfer_ratio is None else f"{r.worst_chamfer_ratio:.2f} ({r.worst_chamfer_case})"
        lines.append(
            f"| {r.method} | {r.cases_ok}/{r.cases} | {cd_wins} | {nc_wins} | {worst} | "
            f"{num(r.median_wall_s, '{:.2f}')} | {num(r.median_peak_mb, '{:.0f}')} | {num(r.max_peak_mb, '{:.0f}')} |"
        )
    lines.append("")
    if anchors:
        if len(anchors) == len(ANCHORS):
            anchor = "the better of Open3D's Poisson and ball-pivoting meshes on it (whichever succeeded)"
        else:
            missing = ", ".join(a for a in ANCHORS if a not in anchors)
            anchor = f"the {anchors[0]} mesh ({missing} was not in this run)"
        lines.append(
            f"The anchor of a case is {anchor}. A *win* is a case with a ground truth where the method's "
            "Chamfer-L1 is lower (its normal consistency higher) than the anchor's, counted out of the cases with "
            "a ground truth where an anchor succeeded; an Open3D method never wins, the anchor being at least as "
            "good. The *worst ratio* is the method's Chamfer-L1 over the anchor's on its worst such case (above 1: "
            "worse than the anchor). Wall time and memory are over every case the method succeeded on."
        )
    else:
        lines.append(
            "Neither of Open3D's reconstructions (" + ", ".join(ANCHORS) + ") was in this run, so no wins are counted."
        )
    return lines


def benchmark_document(data: dict, *, source: str | None = None) -> str:
    """The whole page, as Markdown text. ``source``: where the results came from (said in the page)."""
    lines = [
        "# recon benchmark",
        "",
        (
            ("Written by `recon bench --report` from one run; every figure was measured in that run. "
             if not data.get("merged") else
             "Written by `recon bench --report` from one run with later runs' methods merged in "
             "(`perf/merge_bench.py`; each merge is named below). ")
            + "Write it again from the results.json, without running anything: "
            "`recon bench --from-results DIR/results.json --report PATH`."
        ),
        "",
    ]
    if source:
        lines += [f"Results: `{source}`.", ""]
    lines += ["## How it was run", "", *run_description(data), "", "## Summary", "", *summary_table(data), ""]
    lines += ["## Every case", "", TABLES_NOTE, "", *case_tables(data)]
    return "\n".join(lines).rstrip("\n") + "\n"


def load_results(path: str | Path) -> dict:
    """Read a bench run's results.json (or the folder holding it); a bad file is one InputError."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"--from-results: {path} does not exist (give the results.json of an earlier recon bench run)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--from-results: cannot read {path} ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--from-results: {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"--from-results: {path} is not a recon bench results.json (not a JSON object)")
    missing = [k for k in RESULTS_KEYS if k not in data]
    if missing:
        raise InputError(f"--from-results: {path} is not a recon bench results.json (it lacks {', '.join(missing)})")
    try:
        benchmark_document(data)  # reads every entry the page needs: a damaged file fails here, not half-way
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        what = f"entry {exc}" if isinstance(exc, KeyError) else str(exc)
        raise InputError(f"--from-results: {path} is not a complete recon bench results.json (bad or missing {what})") from None
    return data


def write_document(data: dict, path: str | Path, *, source: str | None = None, inputs=()) -> Path:
    """Write :func:`benchmark_document` to ``path`` atomically (never over one of ``inputs``)."""
    from recon.io.atomic import atomic_path

    path = Path(path)
    text = benchmark_document(data, source=source)
    with atomic_path(path, inputs=inputs) as tmp:
        Path(tmp).write_text(text)
    return path
