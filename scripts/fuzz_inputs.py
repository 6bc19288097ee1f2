"""The long fuzzing run: many mutants of every input format through the real CLI.

    .venv/bin/python scripts/fuzz_inputs.py --count 20000 --seed 1
    .venv/bin/python scripts/fuzz_inputs.py --count 500 --formats las,laz --fit-share 0

Each mutant (see ``tests/fuzz_inputs.py``) runs through ``recon info``, and a share of
them through ``recon fit`` (clouds, tiny settings) or ``recon mesh`` (fields). Prints the
mutants tried per format and command, and every failure of the contract (exit 0 with a
valid result, or exit 2 with one error line; never exit 1, a traceback, a hang or a file
left behind), the first of each kind with its mutant saved under --keep for replay.
Exit status: 0 when no mutant failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzz_inputs as fz  # noqa: E402


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000, help="mutants to try")
    ap.add_argument("--seed", type=int, default=0, help="seed of the mutations")
    ap.add_argument("--formats", default="", help="comma-separated formats (default: all)")
    ap.add_argument("--fit-share", type=float, default=0.03, help="share of mutants also run through fit / mesh")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long, whatever --count says")
    ap.add_argument("--timeout", type=int, default=60, help="seconds one run may take before it counts as a hang")
    ap.add_argument("--keep", type=Path, default=Path("fuzz-failures"), help="folder for failing mutants")
    args = ap.parse_args(argv)

    work = fz.fresh_workdir()
    seeds = fz.make_seeds(work / "seeds")
    formats = sorted(seeds) if not args.formats else args.formats.split(",")
    rnd = random.Random(args.seed)
    tried: collections.Counter = collections.Counter()
    failed: collections.Counter = collections.Counter()
    first: dict = {}
    signal.signal(signal.SIGALRM, _alarm)
    t0 = time.perf_counter()
    try:
        _loop(args, rnd, formats, seeds, work, tried, failed, first, t0)
    except KeyboardInterrupt:  # Ctrl-C: stop and report what was tried
        print("interrupted: the figures below cover the mutants tried so far", flush=True)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - t0
    n_mutants = sum(v for (f, c), v in tried.items() if c == "info")
    print(f"\n{n_mutants} mutants ({sum(tried.values())} runs) in {seconds:.0f} s, seed {args.seed}")
    print(f"{'format':16s} {'command':7s} {'runs':>6s} {'failures':>8s}")
    for (fmt, command), n in sorted(tried.items()):
        bad = sum(v for (f, c, _), v in failed.items() if (f, c) == (fmt, command))
        print(f"{fmt:16s} {command:7s} {n:6d} {bad:8d}")
    for key, n in failed.most_common():
        print(f"{n:5d} x {key}")
    return 1 if failed else 0


def _loop(args, rnd, formats, seeds, work, tried, failed, first, t0) -> None:
    for i in range(args.count):
        if args.seconds is not None and time.perf_counter() - t0 > args.seconds:
            print(f"time budget of {args.seconds:g} s spent", flush=True)
            break
        fmt = rnd.choice(formats)
        name, data = fz.mutate(fmt, seeds[fmt], fz.RandomChooser(rnd))
        commands = ["info"]
        extra = [c for c in fz.commands_for(fmt) if c != "info"]
        if extra and rnd.random() < args.fit_share:
            commands.append(extra[0])
        for command in commands:
            tried[(fmt, command)] += 1
            signal.alarm(args.timeout)
            try:
                outcome = fz.check(command, fmt, data, work / "run")
                problem = outcome.problem
                detail = (outcome.err.strip().splitlines() or [""])[-1][:300]
            except Hang:
                problem, detail = f"no answer within {args.timeout} s", ""
            finally:
                signal.alarm(0)
            if problem:
                failed[(fmt, command, problem)] += 1
                if (fmt, command, problem) not in first:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    kept = args.keep / f"{len(first):03d}-{fmt}-{command}{fz.SUFFIXES.get(fmt, '.npz')}"
                    kept.write_bytes(data)
                    first[(fmt, command, problem)] = (i, name, detail, kept)
                    print(f"FAIL #{i} {fmt} {command} ({name}): {problem} | {detail} -> {kept}", flush=True)
        if (i + 1) % 1000 == 0:
            print(f"... {i + 1} mutants, {sum(failed.values())} failures, {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
