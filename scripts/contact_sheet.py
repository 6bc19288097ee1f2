"""One PNG with a sphere-traced view of every shared bench case, labelled: a look at the fits.

    python scripts/contact_sheet.py -o sheet.png                       # fit each case with gridpull
    python scripts/contact_sheet.py --fields fits/ -o sheet.png        # use fits/<case>.field.npz
    python scripts/contact_sheet.py --cases bunny,truck --resolution 96 -o quick.png

A case whose field file is in ``--fields`` is not fitted again; ``--save-fields`` keeps the
fits made here. Each tile is the default three-quarter view (fitted to the surface), 2
samples per pixel, ambient occlusion on, with the case name and the trace statistics.
Fitting every case at the default resolution takes a while on a small machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "data" / "bench"

# Cases recorded with z up (a LiDAR sweep, an RGB-D room, an airplane lying in the xy plane);
# the others are y-up models.
Z_UP = {"kitti_lidar", "scannet_room", "plane_holes"}


def case_field(case: str, args):
    from recon.fields import load_field

    if args.fields is not None:
        f = args.fields / f"{case}.field.npz"
        if f.exists():
            return load_field(f), "loaded"
    from recon.fitters import fit
    from recon.io import read_cloud

    cloud = read_cloud(args.bench / case / "input.ply")
    overrides = {} if args.resolution is None else {"resolution": args.resolution}
    t = time.perf_counter()
    field = fit(cloud, "gridpull", **overrides)
    note = f"fit {time.perf_counter() - t:.0f}s"
    if args.save_fields is not None:
        field.save(args.save_fields / f"{case}.field.npz")
    return field, note


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", type=Path, required=True, help="the contact sheet (.png)")
    ap.add_argument("--bench", type=Path, default=BENCH, help="bench data folder")
    ap.add_argument("--fields", type=Path, help="folder of <case>.field.npz to use instead of fitting")
    ap.add_argument("--save-fields", type=Path, help="keep the fits made here in this folder")
    ap.add_argument("--cases", help="comma-separated subset (default: every case folder)")
    ap.add_argument("--resolution", type=int, help="gridpull resolution override (default: the fitter's)")
    ap.add_argument("--size", type=int, default=320, help="tile side in pixels")
    ap.add_argument("--columns", type=int, default=5)
    ap.add_argument("--spp", type=int, default=2)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    from PIL import Image, ImageDraw

    from recon.render.camera import orbit_camera, surface_bounds
    from recon.render.output import rgba_to_uint8, write_png
    from recon.render.shade import ShadeSettings, render_field

    if not args.bench.is_dir():
        print(f"bench data not found at {args.bench}", file=sys.stderr)
        return 2
    cases = sorted(p.name for p in args.bench.iterdir() if (p / "input.ply").exists())
    if args.cases:
        wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = sorted(set(wanted) - set(cases))
        if unknown:
            print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(cases)}", file=sys.stderr)
            return 2
        cases = wanted
    for d in (args.fields, args.save_fields):
        if d is not None and not d.is_dir():
            print(f"not a folder: {d}", file=sys.stderr)
            return 2

    label_h = 34
    tiles = []
    for case in cases:
        t = time.perf_counter()
        field, note = case_field(case, args)
        cam = orbit_camera(surface_bounds(field), width=args.size, height=args.size,
                           up="+z" if case in Z_UP else "+y")
        r = render_field(field, cam, spp=args.spp, device=args.device, shade_settings=ShadeSettings(ao=True))
        st = r.stats
        img = Image.fromarray(rgba_to_uint8(r.rgba)[..., :3])
        tile = Image.new("RGB", (args.size, args.size + label_h), "white")
        tile.paste(img, (0, label_h))
        draw = ImageDraw.Draw(tile)
        draw.text((6, 3), case, fill=(0, 0, 0))
        draw.text((6, 18), f"{note}; {st['rays_per_second'] / 1e6:.2f} Mray/s, {st['hits']:,} hits, "
                           f"{st['not_converged']} nc", fill=(90, 90, 90))
        tiles.append(tile)
        print(f"{case:20s} {note:>10s}  {time.perf_counter() - t:6.1f} s  "
              f"{st['rays_per_second'] / 1e6:.2f} M rays/s", file=sys.stderr)
    cols = min(args.columns, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    th = args.size + label_h
    sheet = Image.new("RGB", (cols * args.size, rows * th), (235, 235, 235))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % cols) * args.size, (k // cols) * th))
    write_png(args.output, np.asarray(sheet))
    print(f"wrote {args.output} ({len(tiles)} cases)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
