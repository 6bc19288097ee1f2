"""What ``recon fit --method auto`` decides on every bench case, beside the case's kind.

    python perf/auto_choice.py [--data ../shared/data/bench] [--markdown] [--scale 1000]

Prints, per case (a folder with input.ply and meta.json), the cloud's measures
(``recon.points.measure``), the method chosen (``recon.choice``) and the kind that
meta.json records (closed / open / scan / scene). Measures only: no fit is run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

COLUMNS = ("case", "meta kind", "points", "noise %diag", "noise/sp", "across", "spread", "enclosed",
           "coarse", "inner", "1-layer", "pieces", "s", "auto kind", "method")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "bench")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="measure each cloud scaled by this and moved by 1e4 x scale (the choice must not change)")
    args = parser.parse_args()

    from recon.choice import choose_method
    from recon.io import read_cloud
    from recon.points.measure import measure_cloud

    cases = sorted(p for p in args.data.iterdir() if (p / "meta.json").exists() and (p / "input.ply").exists())
    if not cases:
        raise SystemExit(f"no bench cases (folders with input.ply and meta.json) in {args.data}")
    rows = []
    t0 = time.perf_counter()
    for case in cases:
        meta = json.loads((case / "meta.json").read_text())
        points = read_cloud(case / "input.ply").points.astype(np.float64)
        if args.scale != 1.0:
            points = points * args.scale + 1.0e4 * args.scale
        m = measure_cloud(points)
        choice = choose_method(m)
        surface = choice.overrides.get("surface", "")
        rows.append((case.name, meta.get("kind", "?"), f"{m.points:,}", f"{100 * m.noise_fraction:.3f}",
                     f"{m.noise_spacings:.2f}", f"{m.samples_across:.0f}", f"{m.spacing_spread:.1f}",
                     f"{m.enclosed_share:.3f}", f"{m.enclosed_share_coarse:.3f}", f"{m.inner_share:.3f}", f"{m.single_layer_share:.2f}",
                     str(m.components), f"{m.seconds:.2f}", choice.kind,
                     choice.method + (f" ({surface})" if surface else "")))
    if args.markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
        for row in (COLUMNS, *rows):
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    print(f"\n{len(rows)} cases measured in {time.perf_counter() - t0:.1f} s (reading included)")


if __name__ == "__main__":
    main()
