"""Merge a later bench run's methods into an earlier run's results.json.

    python perf/merge_bench.py BASE/results.json LATER/results.json OUT/results.json

Every method of LATER replaces that method's entries (per case, and its runs) in BASE; the
other methods, the settings and the machine stay BASE's. The merged file records each merge
(the later run's command, date and methods), and the benchmark page says so
(``recon bench --from-results OUT --report PAGE``). Use it to re-measure one method after a
change without re-running every method; the wall times of the two runs are comparable only
when the machine was equally quiet for both.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def merge(base: dict, later: dict) -> dict:
    methods = sorted({m for per in later["results"].values() for m in per})
    missing = sorted(set(later["results"]) - set(base["results"]))
    if missing:
        raise SystemExit(f"merge_bench: cases {', '.join(missing)} are not in the base run")
    out = json.loads(json.dumps(base))
    for case, per in later["results"].items():
        out["results"][case].update(per)
    out["runs"] = [r for r in out["runs"] if r["method"] not in methods] + [r for r in later["runs"] if r["method"] in methods]
    for name in methods:
        out["settings"]["methods"][name] = later["settings"]["methods"][name]
    out.setdefault("merged", []).append({"command": later.get("command", ""), "date": later.get("date", ""),
                                         "methods": methods})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("later", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    merged = merge(json.loads(args.base.read_text()), json.loads(args.later.read_text()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.part")
    tmp.write_text(json.dumps(merged, indent=1))
    tmp.replace(args.out)
    print(f"merged {', '.join(merged['merged'][-1]['methods'])} into {args.out}")


if __name__ == "__main__":
    main()
