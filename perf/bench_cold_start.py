"""Where the first csp fit of a process spends its time, in a fresh process.

    python perf/bench_cold_start.py CLOUD.ply [--device cuda] [--profile 25] [--out DIR]

A user's ``recon fit --method csp`` pays, once per process: importing torch, finding the
GPU (numba), creating the CUDA context, and the first fit's loading of compiled kernels
(numba's cache, torch's CUDA modules, cuBLAS). This times each in order, then the first
fit (its phases, and with ``--profile N`` the N functions of most cumulative time under
cProfile), then a second fit in the same process, and a third with a progress callback
(what the CLI passes). Prints and writes ``DIR/cold_start.json``. A benchmark: it checks
nothing. Run it in a new process each time; a second run in one process is warm.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    from bench_gpu import _phases, fit_with_phases

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cloud", type=Path)
    ap.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    ap.add_argument("--profile", type=int, default=0,
                    help="show the first fit's N functions of most cumulative and most own time")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    steps = {}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        steps[name] = round(time.perf_counter() - t, 3)
        print(f"{name:28s} {steps[name]:8.3f} s", flush=True)
        return out

    torch = timed("import torch", lambda: __import__("torch"))
    timed("import recon (fit, io)", lambda: (__import__("recon.fitters"), __import__("recon.io")))
    from recon.device import resolve_device
    from recon.fitters import fit
    from recon.io import read_cloud

    device = timed("resolve_device (numba)", lambda: resolve_device(args.device))
    if device == "cuda":
        timed("CUDA context (torch)", lambda: (torch.zeros(1, device="cuda"), torch.cuda.synchronize()))
    cloud = timed("read cloud", lambda: read_cloud(args.cloud))

    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    first = timed("first fit", lambda: fit_with_phases(cloud, "csp", device=device))
    if prof:
        prof.disable()
        text = io.StringIO()
        stats = pstats.Stats(prof, stream=text)
        stats.sort_stats("cumulative").print_stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.profile)
        print(text.getvalue(), flush=True)
    second = timed("second fit", lambda: fit_with_phases(cloud, "csp", device=device))
    calls = []
    timed("third fit, with progress", lambda: fit(cloud, "csp", device=device,
                                                  progress=lambda s, n, losses: calls.append(s)))
    phases = {"first": _phases(first), "second": _phases(second)}
    report = {"device": device, "points": len(cloud), "steps_s": steps, "phases_s": phases,
              "progress_calls": len(calls), "torch": torch.__version__}
    print(json.dumps(report, indent=1))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cold_start.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
