"""One bench run in its own process: ``python -m recon.bench.child JOB.json``.

The job names the method's import target and options, the input file, the memory
limit and a result folder. The child

1. caps its address space (``RLIMIT_AS``) when a limit is given, so running out of
   memory fails this child alone (a MemoryError, recorded as "out of memory");
2. reads the input cloud (not timed);
3. runs the method once, untimed, on a tiny cloud (the warm-up: imports, numba
   compilation or its disk-cache load) unless the method opts out;
4. times the method on the real input with ``time.perf_counter`` around the call
   alone (interpreter start, imports, reading and warm-up are excluded);
5. writes ``result.npz`` (vertices, faces) and ``result.json`` into the result folder.

Any exception becomes ``result.json`` with ``ok: false``; a crash or a kill leaves no
``result.json`` and the parent records it from the exit status.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from pathlib import Path


def _vm_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def warmup_cloud(n: int = 600):
    """A tiny, clean sphere cloud: points (n, 3) on a radius-1 sphere (Fibonacci lattice), no normals."""
    import numpy as np

    from recon.cloud import Cloud

    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    pts = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    return Cloud(pts, source="<warm-up sphere>")


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    result_dir = Path(job["result_dir"])
    limit = job.get("memory_limit_bytes")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))

    report: dict = {"ok": False}
    try:
        import numpy as np

        from recon.bench.cases import read_input_cloud
        from recon.bench.methods import resolve_target
        from recon.triangles import TriangleMesh

        fn = resolve_target(job["target"])
        options = dict(job.get("options") or {})

        t0 = time.perf_counter()
        cloud = read_input_cloud(Path(job["input"]))
        report["read_s"] = time.perf_counter() - t0

        warm = job.get("warmup_options")
        if warm is not None:
            t0 = time.perf_counter()
            fn(warmup_cloud(), **{**options, **warm})
            report["warmup_s"] = time.perf_counter() - t0

        report["rss_before_mb"] = (_vm_kb("VmRSS") or 0) / 1024.0
        (result_dir / "started").touch()  # the parent's --timeout clock starts here
        t0 = time.perf_counter()
        mesh = fn(cloud, **options)
        report["wall_s"] = time.perf_counter() - t0

        if not isinstance(mesh, TriangleMesh):
            raise TypeError(f"method returned {type(mesh).__name__}, not a TriangleMesh")
        np.savez(result_dir / "result.npz", vertices=mesh.vertices, faces=mesh.faces)
        report["ok"] = True
    except MemoryError as exc:
        report.update(status="out of memory", error=f"out of memory ({exc.__class__.__name__}: {exc})".strip())
    except BaseException as exc:  # noqa: BLE001 - every failure of the method is a result
        report.update(
            status="error",
            error=f"{exc.__class__.__name__}: {exc}",
            traceback=traceback.format_exc(limit=20),
        )
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would include the
    # parent's resident size at fork time; VmHWM belongs to this process image alone
    hwm = _vm_kb("VmHWM")
    report["peak_rss_mb"] = None if hwm is None else hwm / 1024.0
    _write_json(result_dir / "result.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
