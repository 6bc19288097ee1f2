"""Bench outputs: results.json (every figure), results.md (tables), quality_vs_time.png."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recon.metrics import threshold_label

PLOT_NAME = "quality_vs_time.png"


# --------------------------------------------------------------------------- environment


def library_versions() -> dict[str, str | None]:
    from importlib import metadata

    import recon

    out: dict[str, str | None] = {"python": platform.python_version(), "recon": recon.__version__}
    for name, dists in {
        "numpy": ["numpy"],
        "scipy": ["scipy"],
        "numba": ["numba"],
        "open3d": ["open3d-cpu", "open3d"],
        "trimesh": ["trimesh"],
        "scikit-image": ["scikit-image"],
        "matplotlib": ["matplotlib"],
    }.items():
        out[name] = None
        for dist in dists:
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def machine_info() -> dict:
    cpu = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        mem_gb = None
    gpu = None
    if shutil.which("nvidia-smi"):
        try:
            text = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
            gpu = text or None
        except (OSError, subprocess.SubprocessError):
            gpu = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gb": None if mem_gb is None else round(mem_gb, 1),
        "gpu": gpu,
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------- json


def json_safe(x):
    """JSON has no NaN or inf: they become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def write_json(data: dict, path: Path, *, inputs=()) -> None:
    from recon.io.atomic import atomic_path

    with atomic_path(path, inputs=inputs) as tmp:
        Path(tmp).write_text(json.dumps(json_safe(data), indent=1, allow_nan=False) + "\n")


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Measure:
    key: str
    title: str
    get: Callable[[dict], float | None]
    better: str | None  # "low", "high" or None (no best, no wins)
    fmt: Callable[[float], str]
    needs_gt: bool | None  # True: cases with ground truth; False: cases without; None: all


def _metric(name: str, sub: str | None = None):
    def get(entry: dict):
        m = entry.get("metrics")
        if not m or name not in m:
            return None
        return m[name] if sub is None else m[name].get(sub)

    return get


def _sci(x: float) -> str:
    return f"{x:.3e}"


def measures(thresholds) -> list[Measure]:
    out = [
        Measure("wall_s", "Wall time, seconds (median over repeats)", lambda e: e.get("wall_s", {}).get("median"), "low", lambda x: f"{x:.2f}", None),
        Measure("peak_rss_mb", "Peak resident memory of the child, MB", lambda e: e.get("peak_rss_mb", {}).get("max"), "low", lambda x: f"{x:.0f}", None),
        Measure("chamfer_l1", "Chamfer-L1 (fraction of the GT bbox diagonal; lower is better)", _metric("chamfer_l1"), "low", _sci, True),
        Measure("chamfer_l2", "Chamfer-L2 (squared fraction of the GT diagonal; lower is better)", _metric("chamfer_l2"), "low", _sci, True),
        Measure("normal_consistency", "Normal consistency (higher is better)", _metric("normal_consistency"), "high", lambda x: f"{x:.4f}", True),
    ]
    for t in thresholds:
        key = threshold_label(t)
        out.append(Measure(f"fscore_{key}", f"F-score at {key} of the GT diagonal (higher is better)", _metric("fscore", key), "high", lambda x: f"{x:.4f}", True))
    out += [
        Measure("input_to_mesh_mean", "No ground truth: input points to mesh, mean (fraction of the input diagonal)", _metric("input_to_mesh_mean"), "low", _sci, False),
        Measure("mesh_to_input_mean", "No ground truth: mesh to input points, mean (fraction of the input diagonal)", _metric("mesh_to_input_mean"), "low", _sci, False),
        Measure("mesh_to_input_p95", "No ground truth: mesh to input points, 95th percentile", _metric("mesh_to_input_p95"), "low", _sci, False),
        Measure("faces", "Faces out", lambda e: e.get("faces"), None, lambda x: f"{int(x):,}", None),
        Measure("vertices", "Vertices out", lambda e: e.get("vertices"), None, lambda x: f"{int(x):,}", None),
        Measure("watertight", "Watertight (every edge shared by exactly two faces)", lambda e: None if "watertight" not in e else float(e["watertight"]), None, lambda x: "yes" if x else "no", None),
    ]
    return out


def _fail_cell(entry: dict) -> str:
    return f"fail: {entry.get('status', 'error')}"


def measure_table(data: dict, measure: Measure) -> str | None:
    """One markdown table: cases as rows, methods as columns, the best value per row in bold."""
    methods = list(data["settings"]["methods"])
    rows = []
    for case, per_method in data["results"].items():
        has_gt = data["cases"][case].get("gt") is not None
        if measure.needs_gt is not None and measure.needs_gt != has_gt:
            continue
        rows.append((case, per_method))
    if not rows:
        return None
    lines = [f"### {measure.title}", "", "| case | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    values: dict[str, list[float]] = {m: [] for m in methods}
    wins = {m: 0 for m in methods}
    for case, per_method in rows:
        vals = {}
        for m in methods:
            e = per_method.get(m, {})
            v = measure.get(e) if e.get("ok") else None
            if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
                vals[m] = float(v)
                values[m].append(float(v))
        best = None
        if measure.better and vals:
            best = min(vals.values()) if measure.better == "low" else max(vals.values())
        cells = []
        for m in methods:
            e = per_method.get(m, {})
            if m not in vals:
                cells.append(_fail_cell(e) if not e.get("ok") else "n/a")
                continue
            text = measure.fmt(vals[m])
            if measure.key == "wall_s" and e["wall_s"]["min"] != e["wall_s"]["max"]:
                text += f" [{e['wall_s']['min']:.2f}–{e['wall_s']['max']:.2f}]"
            if best is not None and vals[m] == best:
                text = f"**{text}**"
                wins[m] += 1
            cells.append(text)
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    n = len(rows)
    med = []
    for m in methods:
        if not values[m]:
            med.append("–")
            continue
        text = measure.fmt(statistics.median(values[m])) if measure.key != "watertight" else f"{int(sum(values[m]))}/{len(values[m])} yes"
        if len(values[m]) < n and measure.key != "watertight":
            text += f" ({len(values[m])}/{n} cases)"
        med.append(text)
    lines.append("| *median* | " + " | ".join(med) + " |" if measure.key != "watertight" else "| *count* | " + " | ".join(med) + " |")
    if measure.better:
        lines.append("| *wins* | " + " | ".join(str(wins[m]) for m in methods) + " |")
    return "\n".join(lines)


def run_description(data: dict) -> list[str]:
    """Markdown lines saying how the run was made: command, date, machine, libraries, settings, methods."""
    s = data["settings"]
    mach = data.get("machine", {})
    lines = []
    if data.get("command"):
        lines += [f"Command: `{data['command']}`", ""]
    for later in data.get("merged", []):
        lines += [f"Merged: **{', '.join(later['methods'])}** from a later run, `{later['command']}` "
                  f"({later['date']}), replacing those methods' figures of the run above; every other method's "
                  "figures are the run above's.", ""]
    lines += [
        (
            f"Run: {data.get('date', '')}; machine: {mach.get('cpu')}, {mach.get('cores_usable')} of {mach.get('cores')} "
            f"cores usable, {mach.get('memory_gb')} GB memory, GPU: {mach.get('gpu') or 'none'}."
        ),
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in data.get("versions", {}).items() if v) + ".",
        (
            f"Repeats: {s['repeat']}; time-out {s['timeout_s']:g} s; memory limit {s['memory_limit_bytes'] / 1024**3:.3g} GiB "
            f"({'address space' if s.get('memory_mode', 'address-space') == 'address-space' else 'resident set'}) per child; "
            f"metrics on {s['n_samples']:,} samples per mesh, seed {s['seed']}, point-to-surface, as in recon.metrics."
        ),
        f"Timing: {s['timing']}.",
        f"Memory: {s['memory']}.",
        "",
        "Methods: " + "; ".join(f"**{k}**: {v['description']}" for k, v in s["methods"].items()) + ".",
    ]
    return lines


TABLES_NOTE = (
    "Best value per case in bold; *median* is over the cases where the method succeeded; *wins* counts "
    "the cases where the method is best (ties count for each)."
)


def case_tables(data: dict) -> list[str]:
    """Markdown lines: one table per measure (cases x methods), then the failed runs."""
    lines = []
    for measure in measures(data["settings"]["thresholds"]):
        table = measure_table(data, measure)
        if table:
            lines += [table, ""]
    failures = [
        f"- {r['case']} / {r['method']} (repeat {r['repeat'] + 1}): {r['status']}: {r['error']}"
        for r in data["runs"]
        if not r["ok"]
    ]
    if failures:
        lines += ["### Failures", "", *failures, ""]
    return lines


def results_markdown(data: dict) -> str:
    lines = ["# recon bench results", "", *run_description(data), "", TABLES_NOTE, ""]
    return "\n".join(lines + case_tables(data))


# --------------------------------------------------------------------------- plot


def plot_quality_vs_time(data: dict, path: Path, *, inputs=()) -> None:
    """One panel per case: median wall time (x, log) against Chamfer-L1, or mesh->input mean without GT (y, log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recon.io.atomic import atomic_path

    methods = list(data["settings"]["methods"])
    cases = list(data["results"])
    ncol = min(4, max(1, len(cases)))
    nrow = math.ceil(len(cases) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, 3.2 * nrow), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^vP*Xh<>"
    for ax in axes.flat[len(cases):]:
        ax.axis("off")
    for ax, case in zip(axes.flat, cases):
        has_gt = data["cases"][case].get("gt") is not None
        key = "chamfer_l1" if has_gt else "mesh_to_input_mean"
        for i, m in enumerate(methods):
            e = data["results"][case].get(m, {})
            if not e.get("ok") or not e.get("metrics") or e["metrics"].get(key) is None:
                continue
            y = max(e["metrics"][key], 1e-12)
            ax.scatter([e["wall_s"]["median"]], [y], color=colors[i % len(colors)], marker=markers[i % len(markers)], label=m, s=40)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(case, fontsize=10)
        ax.set_xlabel("wall time, s", fontsize=8)
        ax.set_ylabel("Chamfer-L1 / diag" if has_gt else "mesh->input mean / diag (no GT)", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.margins(0.25)
        ax.grid(True, which="both", alpha=0.3)
    handles = [
        plt.Line2D([], [], color=colors[i % len(colors)], marker=markers[i % len(markers)], linestyle="", label=m)
        for i, m in enumerate(methods)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(methods), 6), fontsize=9, frameon=False)
    fig.suptitle("quality against time per case (lower left is better)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    with atomic_path(path, inputs=inputs) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


# --------------------------------------------------------------------------- all outputs


def write_outputs(data: dict, out_dir: Path, *, command: str | None = None, inputs=()) -> dict:
    """Add environment facts to ``data``, write results.json, results.md and the plot; return their paths."""
    from recon.io.atomic import atomic_path

    out_dir = Path(out_dir)
    data.setdefault("date", _dt.datetime.now().astimezone().isoformat(timespec="seconds"))
    data.setdefault("command", command or " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]))
    data.setdefault("versions", library_versions())
    data.setdefault("machine", machine_info())
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "plot": out_dir / PLOT_NAME,
    }
    data["outputs"] = {k: p.name for k, p in paths.items()}
    write_json(data, paths["json"], inputs=inputs)
    with atomic_path(paths["markdown"], inputs=inputs) as tmp:
        Path(tmp).write_text(results_markdown(data))
    plot_quality_vs_time(data, paths["plot"], inputs=inputs)
    return paths
