"""Input fuzzing: small valid seed files of every format recon reads, mutations of them
(truncation, byte flips, header lies, wrong counts, NaN, huge values, damaged arrays), and
a check that runs the real CLI on each mutant.

The contract checked for every mutant: ``recon info`` / ``fit`` / ``mesh`` exits 0 with a
valid result, or 2 with one ``recon: error:`` line (``recon: warning:`` lines may precede
it); never 1, never a traceback, never a file left in the output folder.

Mutations draw their choices from a :class:`Chooser`, so the same code runs under
Hypothesis in the test suite (which shrinks a failure to a small case) and under a seeded
``random.Random`` in ``scripts/fuzz_inputs.py`` (many mutants quickly).
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ----------------------------------------------------------------------------- choices


class Chooser:
    """Where a mutation's choices come from: ``integer(lo, hi)`` inclusive, ``choice(seq)``."""

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, seq):
        return seq[self.integer(0, len(seq) - 1)]

    def raw(self, n: int) -> bytes:
        return bytes(self.integer(0, 255) for _ in range(n))


class RandomChooser(Chooser):
    def __init__(self, rnd):
        self.rnd = rnd

    def integer(self, lo: int, hi: int) -> int:
        return self.rnd.randint(lo, hi)


class HypothesisChooser(Chooser):
    def __init__(self, data):
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        from hypothesis import strategies as st

        return self.data.draw(st.integers(lo, hi))


# ----------------------------------------------------------------------------- seed files


def sphere_points(n: int = 300, seed: int = 0) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return 2.0 * d / np.linalg.norm(d, axis=1, keepdims=True) + np.array([10.0, -5.0, 3.0])


def lzf_literals(raw: bytes) -> bytes:
    """LZF data holding ``raw`` as literal runs only (valid, if not small)."""
    out = bytearray()
    for i in range(0, len(raw), 32):
        chunk = raw[i:i + 32]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


def make_seeds(folder: Path) -> dict[str, Path]:
    """Small valid files of every format recon reads, by format name."""
    import trimesh

    from recon.cloud import Cloud, Normalization
    from recon.fields import SignedDistanceGrid
    from recon.io import write_cloud, write_mesh
    from recon.triangles import TriangleMesh

    folder.mkdir(parents=True, exist_ok=True)
    pts = sphere_points()
    nrm = ((pts - pts.mean(0)) / 2.0).astype(np.float32)
    rgb = (np.abs(nrm) * 255).astype(np.uint8)
    cloud = Cloud(pts, normals=nrm, colors=rgb, source="seed", extra={"quality": np.linspace(0, 1, len(pts))})
    seeds: dict[str, Path] = {}

    def put(name: str, filename: str, data: bytes | None = None) -> Path:
        path = folder / filename
        if data is not None:
            path.write_bytes(data)
        seeds[name] = path
        return path

    rows = "\n".join(" ".join(f"{v:.6g}" for v in p) + " " + " ".join(f"{v:.4g}" for v in n) + " "
                     + " ".join(str(int(c)) for c in col) for p, n, col in zip(pts, nrm, rgb))
    put("ply_ascii", "a.ply", ("ply\nformat ascii 1.0\ncomment seed\nelement vertex %d\nproperty float x\n"
                               "property float y\nproperty float z\nproperty float nx\nproperty float ny\n"
                               "property float nz\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
                               "end_header\n%s\n" % (len(pts), rows)).encode())
    write_cloud(cloud, put("ply_binary", "b.ply"))
    be = np.empty(len(pts), [("x", ">f8"), ("y", ">f8"), ("z", ">f8")])
    be["x"], be["y"], be["z"] = pts.T
    put("ply_big_endian", "be.ply", b"ply\nformat binary_big_endian 1.0\nelement vertex %d\nproperty double x\n"
        b"property double y\nproperty double z\nend_header\n" % len(pts) + be.tobytes())
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=2.0)
    mesh = TriangleMesh(np.asarray(sphere.vertices), np.asarray(sphere.faces))
    vrows = "\n".join(" ".join(f"{v:.6g}" for v in p) for p in mesh.vertices)
    frows = "\n".join("3 " + " ".join(str(i) for i in f) for f in mesh.faces[:, :])
    put("ply_mesh_ascii", "m.ply", ("ply\nformat ascii 1.0\nelement vertex %d\nproperty float x\nproperty float y\n"
                                    "property float z\nelement face %d\nproperty list uchar int vertex_indices\n"
                                    "end_header\n%s\n%s\n" % (mesh.n_vertices, mesh.n_faces, vrows, frows)).encode())
    write_mesh(mesh, put("ply_mesh_binary", "mb.ply"))
    write_cloud(cloud, put("pcd_binary", "b.pcd"))
    head = ("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH %d\nHEIGHT 1\n"
            "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS %d\n" % (len(pts), len(pts)))
    put("pcd_ascii", "a.pcd", (head + "DATA ascii\n" + "\n".join(" ".join(f"{v:.6g}" for v in p) for p in pts)
                               + "\n").encode())
    raw = np.ascontiguousarray(pts.T.astype("<f4")).tobytes()  # field by field, as PCL compresses
    packed = lzf_literals(raw)
    put("pcd_compressed", "c.pcd", (head + "DATA binary_compressed\n").encode()
        + np.array([len(packed), len(raw)], "<u4").tobytes() + packed)
    write_cloud(cloud, put("xyz", "p.xyz"))
    put("pts", "p.pts", (f"{len(pts)}\n" + "\n".join(" ".join(f"{v:.6g}" for v in p) + " 7 10 20 30"
                                                      for p in pts) + "\n").encode())
    put("csv", "p.txt", ("x,y,z\n" + "\n".join(",".join(f"{v:.6g}" for v in p) for p in pts) + "\n").encode())
    write_cloud(Cloud(pts, normals=nrm), put("npy", "p.npy"))
    write_cloud(cloud, put("npz", "p.npz"))
    _write_las(pts, put("las", "p.las"))
    with contextlib.suppress(Exception):  # a LAZ backend may be missing
        _write_las(pts, put("laz", "p.laz"))
    if "laz" in seeds and not seeds["laz"].exists():
        del seeds["laz"]
    write_mesh(mesh, put("obj", "m.obj"))
    write_mesh(mesh, put("off", "m.off"))
    write_mesh(mesh, put("stl", "m.stl"))
    write_mesh(mesh, put("glb", "m.glb"))
    ax = np.linspace(-1.0, 1.0, 10)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    grid = SignedDistanceGrid((np.sqrt(x * x + y * y + z * z) - 0.6).astype(np.float32), [-1.0] * 3, 2.0 / 9,
                              params={"method": "seed", "grid_shape": [10, 10, 10]},
                              normalization=Normalization(np.zeros(3), 0.5))
    grid.save(put("field_grid", "g.field.npz"))
    _network_field().save(put("field_network", "n.field.npz"))
    return seeds


def _write_las(pts: np.ndarray, path: Path) -> None:
    import laspy

    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.array([0.0, 0.0, 0.0])
    las = laspy.LasData(header)
    las.x, las.y, las.z = pts.T
    las.intensity = np.arange(len(pts)) % 100
    las.write(str(path))


def _network_field():
    from recon.cloud import Normalization
    from recon.fields.closest_point_network import ClosestPointField
    from recon.fitters.csp import CSPConfig, initial_arrays

    config = CSPConfig(levels=2, features=2, table_log2=10, base_resolution=4, resolution=8, hidden=8, layers=1)
    return ClosestPointField(initial_arrays(config, np.random.default_rng(0)),
                             normalization=Normalization(np.zeros(3), 0.5), params={"surface_decided": "closed"})


CLOUD_FORMATS = ("ply_ascii", "ply_binary", "ply_big_endian", "pcd_binary", "pcd_ascii", "pcd_compressed", "xyz",
                 "pts", "csv", "npy", "npz", "las", "laz")
MESH_FORMATS = ("ply_mesh_ascii", "ply_mesh_binary", "obj", "off", "stl", "glb")
FIELD_FORMATS = ("field_grid", "field_network")
NUMPY_FORMATS = ("npy", "npz", "field_grid", "field_network")
TEXT_FORMATS = ("ply_ascii", "ply_mesh_ascii", "pcd_ascii", "xyz", "pts", "csv", "obj", "off")

# ----------------------------------------------------------------------------- mutations

INTERESTING_NUMBERS = (b"0", b"1", b"-1", b"2", b"3", b"255", b"256", b"65536", b"2147483648", b"4294967296",
                       b"9223372036854775808", b"1000000000000", b"nan", b"inf", b"-inf", b"1e308", b"-1e999",
                       b"3.5", b"", b"x", b"0x10", b"1e-320")


def _header_end(data: bytes) -> int:
    for marker in (b"end_header", b"DATA ", b"\n3 "):
        at = data.find(marker)
        if at >= 0:
            return min(len(data), at + 64)
    return min(len(data), 512)


def _position(data: bytes, ch: Chooser) -> int:
    """A byte position, half the time within the header (where a flip says the most)."""
    if not data:
        return 0
    end = _header_end(data) if ch.integer(0, 1) else len(data)
    return ch.integer(0, max(end - 1, 0))


def mutate_bytes(data: bytes, ch: Chooser) -> tuple[str, bytes]:
    """One byte-level mutation of ``data``: (its name, the mutant)."""
    kind = ch.choice(("truncate", "flip", "overwrite", "insert", "delete", "duplicate", "number", "token",
                      "empty", "line"))
    n = len(data)
    if kind == "truncate":
        return kind, data[:_position(data, ch)]
    if kind == "flip":
        at = _position(data, ch)
        if at >= n:
            return kind, data
        return kind, data[:at] + bytes([data[at] ^ ch.integer(1, 255)]) + data[at + 1:]
    if kind == "overwrite":
        at = _position(data, ch)
        return kind, data[:at] + ch.raw(ch.integer(1, 16)) + data[at + 16:]
    if kind == "insert":
        at = _position(data, ch)
        return kind, data[:at] + ch.raw(ch.integer(1, 16)) + data[at:]
    if kind == "delete":
        at = _position(data, ch)
        return kind, data[:at] + data[at + ch.integer(1, 64):]
    if kind == "duplicate":
        at = _position(data, ch)
        return kind, data[:at] + data[at:at + ch.integer(1, 64)] * 2 + data[at + 64:]
    if kind == "number":  # a header lie or a wrong count: one number replaced
        spots = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?", data[:_header_end(data)])]
        if not spots:
            return kind, data
        lo, hi = ch.choice(spots)
        return kind, data[:lo] + ch.choice(INTERESTING_NUMBERS) + data[hi:]
    if kind == "token":  # a value anywhere replaced by NaN, a huge value, garbage
        spots = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?", data[:65536])]
        if not spots:
            return kind, data
        lo, hi = ch.choice(spots)
        return kind, data[:lo] + ch.choice(INTERESTING_NUMBERS) + data[hi:]
    if kind == "empty":
        return kind, data[:_header_end(data)] if ch.integer(0, 1) else b""
    # "line": a text line dropped, doubled, given a value too many or too few
    lines = data.split(b"\n")
    i = ch.integer(0, len(lines) - 1)
    how = ch.integer(0, 3)
    if how == 0:
        del lines[i]
    elif how == 1:
        lines.insert(i, lines[i])
    elif how == 2:
        lines[i] = lines[i] + b" " + ch.choice(INTERESTING_NUMBERS)
    else:
        lines[i] = lines[i].rsplit(b" ", 1)[0]
    return kind, b"\n".join(lines)


def mutate_arrays(path: Path, ch: Chooser) -> tuple[str, bytes] | None:
    """One array-level mutation of a NumPy file (.npy / .npz): (its name, the mutant), or
    None when the file does not load (then mutate its bytes instead)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        arrays = {k: loaded[k] for k in loaded.files} if hasattr(loaded, "files") else {"": loaded}
    except Exception:
        return None
    key = ch.choice(sorted(arrays))
    arr = np.asarray(arrays[key])
    kind = ch.choice(("drop", "nan", "huge", "reshape", "slice", "dtype", "scalar", "empty", "extra", "text"))
    if kind == "drop" and key:
        del arrays[key]
    elif kind in ("nan", "huge") and arr.dtype.kind == "f" and arr.size:
        arr = arr.copy()
        with np.errstate(over="ignore"):
            arr.reshape(-1)[ch.integer(0, arr.size - 1)] = np.nan if kind == "nan" else ch.choice((1e308, -1e308, np.inf))
        arrays[key] = arr
    elif kind == "reshape" and arr.size:
        arrays[key] = arr.reshape(ch.choice(((-1,), (1, -1), (-1, 1), (1, 1, -1), arr.shape + (1,))))
    elif kind == "slice" and arr.ndim:
        axis = ch.integer(0, arr.ndim - 1)
        arrays[key] = np.take(arr, np.arange(ch.integer(0, max(arr.shape[axis] - 1, 0))), axis=axis)
    elif kind == "dtype":
        dtype = ch.choice((np.int8, np.uint16, np.int64, np.float16, np.complex64, np.bool_, np.float64, "U3"))
        try:
            with np.errstate(all="ignore"):
                arrays[key] = arr.astype(dtype)
        except (ValueError, TypeError, OverflowError):  # text that is no number
            arrays[key] = np.zeros(arr.shape, dtype)
    elif kind == "scalar":
        arrays[key] = np.asarray(ch.choice((0.0, -1.0, 1e308, np.nan, 7)))
    elif kind == "empty":
        arrays[key] = np.zeros((0,) + arr.shape[1:], arr.dtype)
    elif kind == "extra":
        arrays["extra_" + str(ch.integer(0, 9))] = np.arange(ch.integer(0, 5))
    elif kind == "text":
        arrays[key] = np.asarray(ch.choice(("", "{", "[1, 2]", "null", "recon.field", "SignedDistanceGrid",
                                            "signed", "{\"grid_shape\": 3}")))
    buf = io.BytesIO()
    if "" in arrays and len(arrays) == 1:
        np.save(buf, arrays[""], allow_pickle=False)
    else:
        np.savez(buf, **{k or "arr_0": v for k, v in arrays.items()})
    return "array-" + kind, buf.getvalue()


def mutate(fmt: str, seed_path: Path, ch: Chooser, rounds: int | None = None) -> tuple[str, bytes]:
    """A mutant of the seed file of format ``fmt``: one to three mutations in a row."""
    data = seed_path.read_bytes()
    names = []
    for _ in range(rounds or ch.integer(1, 3)):
        result = None
        if fmt in NUMPY_FORMATS and not names and ch.integer(0, 2):
            result = mutate_arrays(seed_path, ch)
        name, data = result if result is not None else mutate_bytes(data, ch)
        names.append(name)
    return "+".join(names), data


# ----------------------------------------------------------------------------- running the CLI


@dataclass
class Outcome:
    command: str
    code: int
    out: str
    err: str
    problem: str | None  # None: the contract holds


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``recon ARGV`` in-process (the code path of the ``recon`` script); (code, stdout, stderr)."""
    import warnings

    from recon.cli.main import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            code = run(argv)
        except BaseException as exc:  # noqa: BLE001 - the contract is that nothing escapes
            import traceback

            return -1, out.getvalue(), err.getvalue() + "".join(traceback.format_exception(exc))
    return code, out.getvalue(), err.getvalue()


def check(command: str, fmt: str, data: bytes, workdir: Path) -> Outcome:
    """Write ``data`` as the input, run ``recon COMMAND`` on it, and judge the outcome."""
    seed_suffix = {"field_grid": ".npz", "field_network": ".npz"}
    src_dir, out_dir = workdir / "in", workdir / "out"
    for d in (src_dir, out_dir):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
    suffix = seed_suffix.get(fmt) or SUFFIXES[fmt]
    src = src_dir / ("input" + suffix)
    src.write_bytes(data)
    if command == "info":
        argv = ["info", str(src)]
        produced = None
    elif command == "fit":
        produced = out_dir / "mesh.ply"
        # the quickest method: the harness is about reading inputs, and auto may pick the network
        argv = ["fit", str(src), "-o", str(produced), "--method", "gridpull", "--iterations", "5",
                "--resolution", "16", "-q"]
    else:
        produced = out_dir / "mesh.ply"
        argv = ["mesh", str(src), "-o", str(produced), "--resolution", "16", "-q"]
    code, out, err = run_cli(argv)
    problem = _judge(code, out, err, produced, out_dir, src)
    return Outcome(command, code, out, err, problem)


SUFFIXES = {"ply_ascii": ".ply", "ply_binary": ".ply", "ply_big_endian": ".ply", "ply_mesh_ascii": ".ply",
            "ply_mesh_binary": ".ply", "pcd_binary": ".pcd", "pcd_ascii": ".pcd", "pcd_compressed": ".pcd",
            "xyz": ".xyz", "pts": ".pts", "csv": ".txt", "npy": ".npy", "npz": ".npz", "las": ".las",
            "laz": ".laz", "obj": ".obj", "off": ".off", "stl": ".stl", "glb": ".glb"}


def _judge(code, out, err, produced, out_dir: Path, src: Path) -> str | None:
    if "Traceback" in out or "Traceback" in err:
        return "a traceback"
    lines = [line for line in err.splitlines() if line.strip()]
    left = sorted(p.name for p in out_dir.iterdir() if produced is None or p != produced or code != 0)
    if left:
        return f"files left in the output folder: {left}"
    if sorted(p.name for p in src.parent.iterdir()) != [src.name]:
        return "files left beside the input"
    if code == 2:
        errors = [line for line in lines if line.startswith("recon: error: ")]
        others = [line for line in lines if not line.startswith(("recon: error: ", "recon: warning: "))]
        if len(errors) != 1 or lines[-1] != errors[0] or others:
            return "exit 2 without exactly one error line"
        return None
    if code != 0:
        return f"exit {code}"
    if any(not line.startswith("recon: warning: ") for line in lines):
        return "exit 0 with lines on stderr that are not warnings"
    if produced is None:
        return None if out.strip() else "exit 0 and nothing printed"
    if not produced.is_file():
        return "exit 0 and no output file"
    from recon.io import read_mesh

    try:
        mesh = read_mesh(produced)
    except Exception as exc:  # noqa: BLE001
        return f"exit 0 and an unreadable output ({exc})"
    if not (np.isfinite(mesh.vertices).all() and mesh.n_faces > 0):
        return "exit 0 and an invalid mesh"
    return None


def commands_for(fmt: str) -> tuple[str, ...]:
    """The commands a mutant of ``fmt`` is run through (info always)."""
    if fmt in FIELD_FORMATS:
        return ("info", "mesh")
    if fmt in CLOUD_FORMATS:
        return ("info", "fit")
    return ("info",)


def fresh_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="recon-fuzz-"))
