"""Run methods x cases x repeats, each run in its own child process, and measure the results.

Isolation: every (case, method, repeat) runs in a fresh ``python -m recon.bench.child``
process in its own session. A crash (non-zero exit, signal), a hang (the method call
past ``timeout_s``, or the child's start-up - imports, reading, warm-up - past
``prepare_timeout_s``) or running out of memory (address space capped at
``memory_limit_bytes`` in the child) is recorded as that run's failure, and the bench
carries on.

Measures:
- ``wall_s``: seconds around the method call alone, inside the child (after interpreter
  start, imports, reading the input and the untimed warm-up).
- ``peak_rss_mb``: the child's peak resident memory (``VmHWM`` of its process image,
  reported by the child at its end, or polled by the parent every ``poll_s`` for a child
  that is killed): the whole child, interpreter, imports, warm-up and the method;
  ``rss_before_mb`` is the resident size just before the timed call, so the method's
  own share is about the difference.
- faces, vertices, watertight, and the quality metrics of :mod:`recon.metrics`,
  computed in this (parent) process on the first successful repeat's mesh.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from recon.bench.cases import Case, read_gt_mesh, read_input_cloud
from recon.bench.methods import BenchMethod
from recon.errors import InputError, ReconError
from recon.triangles import TriangleMesh


@dataclass(frozen=True)
class BenchSettings:
    repeat: int = 1
    "Runs per (case, method); timings report median and min-max."
    timeout_s: float = 600.0
    "A method call still running after this many seconds is killed: 'timeout'."
    prepare_timeout_s: float = 600.0
    "Limit on a child's start-up before the timed call (imports, reading, warm-up incl. JIT compilation)."
    memory_limit_bytes: int | None = None
    "Memory cap of each child; None: half the machine's physical memory."
    memory_mode: str = "auto"
    "'address-space' (RLIMIT_AS in the child), 'resident' (parent kills past the RSS) or 'auto' (resident when an NVIDIA GPU is visible)."
    n_samples: int = 100_000
    "Surface samples per mesh for the metrics."
    seed: int = 0
    "Seed of the metric sampling."
    thresholds: tuple[float, ...] = (0.002, 0.005, 0.01)
    "F-score thresholds, fractions of the ground truth's bbox diagonal."
    poll_s: float = 0.05
    "How often the parent checks on a child."


def default_memory_limit() -> int:
    """Half the machine's physical memory, in bytes (the children's default address-space cap)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError):
        return 8 * 1024**3


@dataclass
class RunResult:
    case: str
    method: str
    repeat: int
    status: str
    "'ok', 'error', 'timeout', 'out of memory', 'crashed' or 'empty mesh'."
    error: str | None = None
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    rss_before_mb: float | None = None
    warmup_s: float | None = None
    elapsed_s: float | None = None
    "Seconds the child lived (start to exit), for the record."
    mesh: TriangleMesh | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "mesh"}
        d["ok"] = self.ok
        return d


def _child_env() -> dict:
    """The parent's environment with its sys.path on PYTHONPATH, so the child imports what the parent can."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _rss_kb(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS, VmHWM) of a running process in kB: current and peak resident set; None once it has gone."""
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, hwm


MEMORY_MODES = ("auto", "address-space", "resident")


def resolve_memory_mode(mode: str) -> str:
    """'auto' -> 'resident' where an NVIDIA GPU is visible (CUDA reserves more address space
    than any sensible RLIMIT_AS), else 'address-space'."""
    if mode not in MEMORY_MODES:
        raise InputError(f"--memory-mode must be one of {', '.join(MEMORY_MODES)}, got {mode!r}")
    if mode != "auto":
        return mode
    import shutil

    gpu = Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None
    return "resident" if gpu else "address-space"


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def run_one(
    method: BenchMethod,
    input_path: Path,
    *,
    case: str = "",
    repeat: int = 0,
    timeout_s: float = 600.0,
    prepare_timeout_s: float = 600.0,
    memory_limit_bytes: int | None = None,
    memory_mode: str = "address-space",
    poll_s: float = 0.05,
) -> RunResult:
    """Run ``method`` on the cloud in ``input_path`` in a child process; never raises for the method's failures.

    ``timeout_s`` bounds the timed method call; ``prepare_timeout_s`` bounds what comes
    before it in the child (interpreter start, imports, reading the input, warm-up).
    ``memory_mode`` 'address-space': the child caps its own address space at
    ``memory_limit_bytes`` (RLIMIT_AS; an allocation past it raises MemoryError);
    'resident': the parent kills the child once its resident memory passes the limit
    (checked every ``poll_s``; for CUDA, whose driver needs a huge address space).
    """
    memory_mode = resolve_memory_mode(memory_mode)
    with tempfile.TemporaryDirectory(prefix="recon-bench-") as tmp:
        tmp = Path(tmp)
        job = {
            "target": method.target,
            "options": method.options,
            "warmup_options": method.warmup_options,
            "input": str(Path(input_path).resolve()),
            "result_dir": str(tmp),
            "memory_limit_bytes": memory_limit_bytes if memory_mode == "address-space" else None,
        }
        (tmp / "job.json").write_text(json.dumps(job))
        with open(tmp / "stdout.txt", "wb") as out, open(tmp / "stderr.txt", "wb") as err:
            t_start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "recon.bench.child", str(tmp / "job.json")],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=_child_env(),
                start_new_session=True,  # its own process group: a kill reaches anything it started
            )
            killed_for = None  # or "method" / "preparation" / "memory"
            started = tmp / "started"
            t_method = None
            peak_kb = 0  # VmHWM of the child, polled: the record of a child that is killed
            try:
                while True:
                    pid, status = os.waitpid(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    rss, hwm = _rss_kb(proc.pid)
                    if hwm is not None:
                        peak_kb = max(peak_kb, hwm)
                    now = time.perf_counter()
                    if memory_mode == "resident" and memory_limit_bytes and (rss or 0) * 1024 > memory_limit_bytes:
                        killed_for = "memory"
                    if t_method is None and started.exists():
                        t_method = now
                    if killed_for:
                        pass
                    elif t_method is not None and now - t_method > timeout_s:
                        killed_for = "method"
                    elif t_method is None and now - t_start > prepare_timeout_s:
                        killed_for = "preparation"
                    if killed_for:
                        os.killpg(proc.pid, signal.SIGKILL)
                        pid, status = os.waitpid(proc.pid, 0)
                        break
                    time.sleep(poll_s)
            except BaseException:
                # interrupted (Ctrl-C): take the child down with us
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                    os.waitpid(proc.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
                raise
            finally:
                # keep Popen from waiting on a pid that is already reaped
                proc.returncode = proc.returncode if proc.returncode is not None else -1
            elapsed = time.perf_counter() - t_start

        res = RunResult(case=case, method=method.name, repeat=repeat, status="crashed", elapsed_s=elapsed)
        res.peak_rss_mb = peak_kb / 1024.0 if peak_kb else None
        report_path = tmp / "result.json"
        if killed_for == "method":
            res.status = "timeout"
            res.error = f"the method ran past the {timeout_s:g} s time-out (killed)"
            return res
        if killed_for == "memory":
            res.status = "out of memory"
            res.error = f"out of memory: resident memory passed the {memory_limit_bytes / 1024**3:.3g} GiB limit (killed)"
            return res
        if killed_for == "preparation":
            res.status = "timeout"
            res.error = f"start-up (imports, reading, warm-up) ran past {prepare_timeout_s:g} s (killed)"
            return res
        if not report_path.exists():
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                res.error = f"crashed: killed by {_signal_name(sig)}"
                if sig == signal.SIGKILL:
                    res.error += " (the system may have run out of memory)"
            else:
                res.error = f"crashed: exit status {os.WEXITSTATUS(status)}"
            tail = _tail(tmp / "stderr.txt")
            if tail:
                res.error += f"; stderr: {tail[-400:]}"
            return res
        report = json.loads(report_path.read_text())
        res.warmup_s = report.get("warmup_s")
        if report.get("peak_rss_mb") is not None:
            res.peak_rss_mb = max(report["peak_rss_mb"], res.peak_rss_mb or 0.0)
        res.rss_before_mb = report.get("rss_before_mb")
        if not report.get("ok"):
            res.status = report.get("status", "error")
            res.error = report.get("error", "unknown error")
            if res.status == "out of memory" and memory_limit_bytes:
                res.error = f"out of memory (limit {memory_limit_bytes / 1024**3:.3g} GiB): {res.error}"
            return res
        res.wall_s = report["wall_s"]
        with np.load(tmp / "result.npz") as data:
            mesh = TriangleMesh(data["vertices"], data["faces"])
        if mesh.n_faces == 0:
            res.status = "empty mesh"
            res.error = "the method returned a mesh with no faces"
            return res
        res.status = "ok"
        res.mesh = mesh
        return res


def is_watertight(mesh: TriangleMesh) -> bool:
    """Every edge shared by exactly two faces, after merging vertices at identical positions."""
    if mesh.n_faces == 0:
        return False
    from recon.triangles import face_edges

    _, remap = np.unique(mesh.vertices, axis=0, return_inverse=True)
    edges, key = face_edges(remap.reshape(-1)[mesh.faces])
    if np.any(edges[:, 0] == edges[:, 1]):
        return False  # a collapsed edge: degenerate face
    _, counts = np.unique(key, return_counts=True)
    return bool(np.all(counts == 2))


def write_mesh_ply(mesh: TriangleMesh, path: Path, *, inputs=()) -> None:
    """Binary PLY, written atomically (never over an input)."""
    import trimesh

    from recon.io.atomic import atomic_path

    data = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(file_type="ply")
    with atomic_path(path, inputs=inputs) as tmp:
        Path(tmp).write_bytes(data)


def _summary(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "all": values,
    }


def run_order(methods: list, repeat: int) -> list:
    """The methods in the order of repeat ``repeat`` (0-based): rotated by one per repeat,
    so each method takes each position in turn and drift on a noisy machine hits all alike."""
    k = repeat % len(methods) if methods else 0
    return list(methods[k:]) + list(methods[:k])


def run_bench(
    cases: list[Case],
    methods: list[BenchMethod],
    *,
    out_dir: Path,
    settings: BenchSettings = BenchSettings(),
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run every method on every case ``settings.repeat`` times; return the results dict.

    Meshes go to ``out_dir/meshes/<case>/<method>.ply``. The method order rotates by one
    at each repeat, so drift on a noisy machine hits every method alike. Metrics are
    computed once per (case, method), on the first successful repeat's mesh.
    """
    from recon.metrics import cloud_to_mesh, compare_meshes

    if settings.repeat < 1:
        raise InputError(f"--repeat must be at least 1, got {settings.repeat}")
    if settings.timeout_s <= 0:
        raise InputError(f"--timeout must be positive, got {settings.timeout_s}")
    if not methods:
        raise InputError("no methods to run")
    log = log or (lambda s: None)
    memory_limit = settings.memory_limit_bytes or default_memory_limit()
    memory_mode = resolve_memory_mode(settings.memory_mode)
    out_dir = Path(out_dir)
    total = len(cases) * len(methods) * settings.repeat
    done = 0
    runs: list[dict] = []
    results: dict[str, dict] = {}
    case_info: dict[str, dict] = {}

    for case in cases:
        inputs = [p for p in (case.input, case.gt) if p is not None]
        cloud = read_input_cloud(case.input)
        gt = read_gt_mesh(case.gt) if case.gt is not None else None
        case_info[case.name] = {
            "input": str(case.input),
            "gt": None if case.gt is None else str(case.gt),
            "kind": case.meta.get("kind"),
            "n_points": len(cloud),
            "has_normals": cloud.normals is not None,
            "meta": case.meta,
        }
        per_method: dict[str, dict] = {m.name: {"runs": []} for m in methods}
        first_ok: dict[str, RunResult] = {}
        for r in range(settings.repeat):
            for method in run_order(methods, r):
                res = run_one(
                    method,
                    case.input,
                    case=case.name,
                    repeat=r,
                    timeout_s=settings.timeout_s,
                    prepare_timeout_s=settings.prepare_timeout_s,
                    memory_limit_bytes=memory_limit,
                    memory_mode=memory_mode,
                    poll_s=settings.poll_s,
                )
                done += 1
                if res.ok:
                    msg = f"ok  {res.wall_s:8.2f} s  {res.peak_rss_mb:7.0f} MB  {res.mesh.n_faces} faces"
                else:
                    msg = f"FAILED ({res.status}): {res.error}"
                log(f"[{done}/{total}] {case.name}  {method.name}  repeat {r + 1}/{settings.repeat}  {msg}")
                runs.append(res.record())
                per_method[method.name]["runs"].append(res.record())
                if res.ok and method.name not in first_ok:
                    first_ok[method.name] = res
                if first_ok.get(method.name) is not res:
                    res.mesh = None  # only the first good mesh is kept (measured and saved)

        for method in methods:
            entry = per_method[method.name]
            oks = [x for x in entry["runs"] if x["ok"]]
            entry["ok"] = bool(oks)
            entry["n_ok"] = len(oks)
            entry["failures"] = [x["status"] + (f": {x['error']}" if x["error"] else "") for x in entry["runs"] if not x["ok"]]
            if not oks:
                entry["status"] = entry["runs"][0]["status"]
                entry["error"] = entry["runs"][0]["error"]
                continue
            entry["status"] = "ok"
            entry["wall_s"] = _summary([x["wall_s"] for x in oks])
            entry["peak_rss_mb"] = _summary([x["peak_rss_mb"] for x in oks])
            mesh = first_ok[method.name].mesh
            entry["faces"] = mesh.n_faces
            entry["vertices"] = mesh.n_vertices
            entry["watertight"] = is_watertight(mesh)
            mesh_rel = Path("meshes") / case.name / f"{method.name}.ply"
            (out_dir / mesh_rel.parent).mkdir(parents=True, exist_ok=True)
            write_mesh_ply(mesh, out_dir / mesh_rel, inputs=inputs)
            entry["mesh"] = str(mesh_rel)
            try:
                if gt is not None:
                    entry["metrics"] = compare_meshes(
                        mesh, gt, n_samples=settings.n_samples, seed=settings.seed, thresholds=settings.thresholds
                    )
                else:
                    entry["metrics"] = cloud_to_mesh(cloud.points, mesh, n_samples=settings.n_samples, seed=settings.seed)
            except ReconError as exc:
                entry["metrics"] = None
                entry["metrics_error"] = str(exc)
            first_ok[method.name].mesh = None
        results[case.name] = per_method
        if gt is not None:
            case_info[case.name]["diagonal"] = float(np.linalg.norm(np.ptp(gt.vertices, axis=0)))
        else:
            case_info[case.name]["diagonal"] = float(np.linalg.norm(np.ptp(cloud.points, axis=0)))
        del cloud, gt

    return {
        "settings": {
            "repeat": settings.repeat,
            "timeout_s": settings.timeout_s,
            "prepare_timeout_s": settings.prepare_timeout_s,
            "memory_limit_bytes": memory_limit,
            "memory_mode": memory_mode,
            "n_samples": settings.n_samples,
            "seed": settings.seed,
            "thresholds": list(settings.thresholds),
            "methods": {
                m.name: {"kind": m.kind, "description": m.description, "target": m.target, "options": m.options}
                for m in methods
            },
            "timing": "wall_s = time.perf_counter() around the method call inside the child; interpreter "
            "start, imports, reading the input and one untimed warm-up run on a 600-point sphere excluded",
            "memory": "peak_rss_mb = the child's VmHWM (whole child process: interpreter, imports, warm-up and the method)",
        },
        "cases": case_info,
        "results": results,
        "runs": runs,
    }

