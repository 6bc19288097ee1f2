"""The `recon` command line: help, one-line errors and exit codes, fit / mesh / eval / info.

Most tests run the app in-process through ``recon.cli.main.run`` (the same code path as
the ``recon`` script, minus the interpreter start) with a small analytic "toy" fitter
registered for the test: it returns a sphere's signed distance grid, so end-to-end runs
take milliseconds and their answers are known. A few tests run the real script in a
subprocess (exit status, no traceback, import weight), and one runs the real GridPull
fitter at a tiny resolution.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from recon.cli import main as cli_main
from recon.fields import SignedDistanceGrid
from recon.fitters import FitterSpec, register

# ----------------------------------------------------------------------------- helpers


def write_ply_cloud(path: Path, points: np.ndarray, normals: np.ndarray | None = None) -> Path:
    """An ASCII PLY point cloud (double coordinates), written by hand: no recon code involved."""
    lines = ["ply", "format ascii 1.0", f"element vertex {len(points)}"]
    lines += [f"property double {c}" for c in "xyz"]
    if normals is not None:
        lines += [f"property float {c}" for c in ("nx", "ny", "nz")]
    lines.append("end_header")
    for i, p in enumerate(points):
        row = " ".join(repr(float(v)) for v in p)
        if normals is not None:
            row += " " + " ".join(repr(float(v)) for v in normals[i])
        lines.append(row)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ply_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    lines = ["ply", "format ascii 1.0", f"element vertex {len(vertices)}"]
    lines += [f"property double {c}" for c in "xyz"]
    lines += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    lines += [" ".join(repr(float(v)) for v in p) for p in vertices]
    lines += ["3 " + " ".join(str(int(i)) for i in f) for f in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def sphere_points(n: int, *, radius: float = 2.0, center=(10.0, -5.0, 3.0), seed: int = 0) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return np.asarray(center) + radius * d


def octahedron(radius: float = 1.0):
    v = radius * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, f


def ply_vertices(path: Path) -> np.ndarray:
    from recon.io import read_mesh

    return read_mesh(path).vertices


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out[-500:]!r}, err={self.err[-1500:]!r})"


def assert_one_line_error(res: Result, *fragments: str, code: int = 2) -> str:
    """Exit ``code``, one error line (the last on stderr) naming the problem, no traceback.

    Progress lines may come before it when the failure happens during the fit.
    """
    assert res.code == code, res
    assert "Traceback" not in res.err and "Traceback" not in res.out, res
    lines = [line for line in res.err.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], res
    for fragment in fragments:
        assert fragment in errors[0], (fragment, res)
    return errors[0]


# ----------------------------------------------------------------------------- the toy fitter

CALLS: list = []


@dataclass
class ToyConfig:
    """A sphere fitted to the cloud's bounding box: an answer known in closed form."""

    resolution: int = 24
    "Grid nodes along each side of the padded box."
    shrink: float = 1.0
    "Sphere radius as a fraction of the cloud's half extent."
    iterations: int = 5
    "Progress steps reported."
    fail_at: int = 0
    "Raise an error at this step (0: never)."
    seed: int = 0
    "Seed of the jitter."
    jitter: float = dataclasses.field(default=0.0, metadata={"help": "Noise added to the grid values (help from metadata)."})
    mode: Literal["plain", "fancy"] = "plain"
    "A choice option."
    smooth: bool = False
    "A flag option."


def fit_toy(cloud, config: ToyConfig, *, progress=None, timings=None):
    CALLS.append(config)
    lo, hi = cloud.bounds()
    center = (lo + hi) / 2
    radius = config.shrink * float((hi - lo).max()) / 2
    for step in range(1, config.iterations + 1):
        if step == config.fail_at:
            raise RuntimeError("toy failure on purpose")
        if progress is not None:
            progress(step, config.iterations, {"total": 1.0 / step})
    pad = 0.25 * radius
    origin = center - radius - pad
    h = 2 * (radius + pad) / (config.resolution - 1)
    ax = [origin[d] + h * np.arange(config.resolution) for d in range(3)]
    x, y, z = np.meshgrid(*ax, indexing="ij")
    values = np.sqrt((x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2) - radius
    if config.jitter:
        values += config.jitter * h * np.random.default_rng(config.seed).standard_normal(values.shape)
    return SignedDistanceGrid(values.astype(np.float32), origin, h, params={"method": "toy"})


@pytest.fixture
def cli():
    """Run ``recon ARGS`` in-process with the toy fitter registered; returns a Result."""
    import recon.fitters as fitters

    register(FitterSpec("toy", ToyConfig, fit_toy, "analytic sphere, for tests", min_points=4))
    CALLS.clear()
    app = cli_main.make_app()
    yield app
    fitters._REGISTRY.pop("toy", None)


@pytest.fixture
def recon(cli, capsys):
    def run(*args) -> Result:
        capsys.readouterr()
        code = cli_main.run([str(a) for a in args], cli=cli)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def cloud(tmp_path) -> Path:
    return write_ply_cloud(tmp_path / "scan.ply", sphere_points(400))


def run_script(*args, cwd=None, timeout=120) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "recon.cli.main", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "120"},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


# ----------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", [[], ["fit"], ["mesh"], ["eval"], ["info"]])
def test_help_of_every_command(recon, command):
    res = recon(*command, "--help")
    assert res.code == 0, res
    assert "Usage" in res.out


def test_no_arguments_prints_the_help(recon):
    res = recon()
    assert res.code == 0, res
    for name in ("fit", "mesh", "eval", "info"):
        assert name in res.out


def test_fit_help_lists_method_options_from_the_config_dataclasses(recon):
    res = recon("fit", "--help")
    assert res.code == 0, res
    text = " ".join(res.out.replace("│", " ").split())  # undo rich's boxes and wrapping
    # attribute docstrings and metadata help, with each method's default
    assert "--shrink" in text and "Sphere radius as a fraction" in text
    assert "(toy default: 1.0)" in text
    assert "--jitter" in text and "help from metadata" in text
    assert "--smooth" in text and "--no-smooth" in text
    assert "plain" in text and "fancy" in text  # Literal -> choice
    # the real fitter's fields are there too
    from recon.fitters import load_all_fitters

    if "gridpull" in load_all_fitters():
        assert "--iterations" in text and "gridpull default:" in text


def test_recon_help_imports_no_heavy_package():
    code = (
        "import sys, recon.cli.main as m\n"
        "heavy = [n for n in ('numba', 'open3d', 'trimesh', 'pyvista', 'torch', 'skimage', 'scipy.spatial') if n in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported at `recon --help` time: {out.stdout}"


# ----------------------------------------------------------------------------- bad input


def test_missing_input_file(recon, tmp_path):
    for command in (["fit"], ["mesh"], ["info"]):
        res = recon(*command, tmp_path / "nope.ply")
        assert_one_line_error(res, "no such file", "nope.ply")
    res = recon("eval", tmp_path / "nope.ply", tmp_path / "gt.ply")
    assert_one_line_error(res, "no such file", "nope.ply")


def test_unknown_input_extension(recon, tmp_path):
    bad = tmp_path / "scan.xyzzy"
    bad.write_text("1 2 3\n")
    line = assert_one_line_error(recon("fit", bad, "--method", "toy"), ".xyzzy")
    assert "scan.xyzzy" in line


def test_unknown_option_is_a_one_line_usage_error(recon, cloud):
    line = assert_one_line_error(recon("fit", cloud, "--frobnicate", "3"), "--frobnicate")
    assert line.startswith("recon: error: ") and line.endswith("(see 'recon fit --help')")


def test_pipes_and_devices_are_named_so_not_called_empty(recon, tmp_path):
    fifo = tmp_path / "stream.ply"
    os.mkfifo(fifo)
    assert_one_line_error(recon("info", fifo), "is a pipe, not a regular file")
    assert_one_line_error(recon("fit", "/dev/null", "--method", "toy"), "is a device, not a regular file")
    assert CALLS == []


def test_an_unwritable_output_folder_is_refused_before_fitting(recon, cloud, tmp_path, monkeypatch):
    real_access = os.access
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked and mode & os.W_OK else real_access(p, mode))
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "-o", locked / "out.ply"), "is not writable")
    assert CALLS == []


def test_option_of_another_method_is_refused(recon, cloud):
    assert _has_gridpull()  # the second registered fitter, beside the toy
    line = assert_one_line_error(recon("fit", cloud, "--method", "toy", "--learning-rate", "0.1"))
    assert "--learning-rate is not an option of method 'toy'" in line and "gridpull" in line
    line = assert_one_line_error(recon("fit", cloud, "--method", "gridpull", "--shrink", "0.5"))
    assert "--shrink is not an option of method 'gridpull'" in line and "toy" in line
    assert CALLS == []


def _has_gridpull() -> bool:
    from recon.fitters import load_all_fitters

    return "gridpull" in load_all_fitters()


def test_unknown_method(recon, cloud):
    assert_one_line_error(recon("fit", cloud, "--method", "nope"), "unknown method 'nope'", "toy")


def test_bad_option_values(recon, cloud):
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "--shrink", "abc"), "--shrink")
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "--mode", "weird"), "--mode")
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "--device", "tpu"), "device")
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "--voxel-size", "-1"), "--voxel-size")
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "--sample", "0"), "--sample")


def test_output_equal_to_input_is_refused_and_the_input_kept(recon, cloud):
    before = cloud.read_bytes()
    line = assert_one_line_error(recon("fit", cloud, "--method", "toy", "-o", cloud), "refusing to overwrite the input")
    assert str(cloud.name) in line
    # the same file through another spelling of its path
    other = cloud.parent / "." / ".." / cloud.parent.name / cloud.name
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "-o", other), "refusing to overwrite")
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "--save-field", cloud.with_suffix(".npz"), "-o", cloud), "refusing")
    assert cloud.read_bytes() == before
    assert CALLS == []  # refused before any fitting


def test_save_field_over_an_npz_input_is_refused(recon, tmp_path):
    from recon.cloud import Cloud
    from recon.io import write_cloud

    src = write_cloud(Cloud(sphere_points(100)), tmp_path / "pts.npz")
    before = Path(src).read_bytes()
    assert_one_line_error(recon("fit", src, "--method", "toy", "--save-field", src), "refusing to overwrite the input")
    assert Path(src).read_bytes() == before and CALLS == []


def test_bad_output_paths_are_refused_before_fitting(recon, cloud, tmp_path):
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "-o", tmp_path / "out.xyz"), "unknown extension", ".ply")
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "-o", tmp_path / "no" / "out.ply"), "does not exist")
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "--save-field", tmp_path / "f.txt"), "--save-field", ".npz")
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "-o", tmp_path), "folder")
    assert CALLS == []


def test_corrupt_inputs(recon, tmp_path):
    bad_ply = tmp_path / "bad.ply"
    bad_ply.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nend_header\n1\n2\n")
    assert_one_line_error(recon("fit", bad_ply, "--method", "toy"), "bad.ply")
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK\x03\x04 this is not a zip file")
    assert_one_line_error(recon("mesh", bad_npz), "bad.npz")
    assert_one_line_error(recon("eval", bad_ply, bad_ply), "bad.ply")
    assert_one_line_error(recon("info", bad_ply), "bad.ply")
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    assert_one_line_error(recon("fit", empty, "--method", "toy"), "empty")


def test_a_file_that_is_not_numpy_is_named_so(recon, tmp_path):
    # NumPy takes any file without a .npy/.npz signature for a pickle: the message must not
    text = tmp_path / "notes.npz"
    text.write_text("hi\n")
    for command in (("mesh", text), ("render", text, "-o", tmp_path / "r.png"), ("info", text),
                    ("fit", text, "--method", "toy")):
        line = assert_one_line_error(recon(*command), "notes.npz: not a NumPy file")
        assert "pickle" not in line
    array = tmp_path / "one.npy"
    np.save(array, np.zeros((4, 3)))
    assert_one_line_error(recon("mesh", array), "one.npy: not a recon field file", "single .npy array")
    assert not (tmp_path / "r.png").exists()


def test_too_few_points(recon, tmp_path):
    tiny = write_ply_cloud(tmp_path / "tiny.ply", sphere_points(3))
    assert_one_line_error(recon("fit", tiny, "--method", "toy"), "3 points", "at least 4")


def test_the_real_script_exits_2_with_one_line_and_no_traceback(tmp_path):
    res = run_script("fit", tmp_path / "missing.ply")
    assert_one_line_error(res, "no such file")
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply at all\n")
    assert_one_line_error(run_script("info", bad), "bad.ply")
    assert_one_line_error(run_script("fit", bad, "--no-such-option"), "--no-such-option")


# ----------------------------------------------------------------------------- fit end to end


def test_fit_writes_the_mesh_next_to_the_input_in_input_units(recon, cloud):
    res = recon("fit", cloud, "--method", "toy")
    assert res.code == 0, res
    out = cloud.with_name("scan.mesh.ply")
    assert out.is_file()
    # summary: points in, seconds, faces out, output path
    for fragment in ("points in", "400", "seconds", "faces out", str(out)):
        assert fragment in res.out, (fragment, res)
    v = ply_vertices(out)
    r = np.linalg.norm(v - np.array([10.0, -5.0, 3.0]), axis=1)
    lo, hi = sphere_points(400).min(0), sphere_points(400).max(0)
    expected = float((hi - lo).max()) / 2
    assert np.abs(r - expected).max() < 0.02 * expected  # the sphere, in the scan's units and frame
    # progress went to stderr (not a terminal here: plain lines)
    assert "iteration 5/5" in res.err


def test_only_options_the_user_set_reach_the_method(recon, cloud, tmp_path):
    res = recon("fit", cloud, "--method", "toy", "--shrink", "0.5", "--smooth", "--mode", "fancy", "-o", tmp_path / "a.obj")
    assert res.code == 0, res
    (config,) = CALLS
    defaults = ToyConfig()
    assert config.shrink == 0.5 and config.smooth is True and config.mode == "fancy"
    assert type(config.mode) is str
    assert (config.resolution, config.iterations, config.seed, config.jitter) == (
        defaults.resolution, defaults.iterations, defaults.seed, defaults.jitter)
    CALLS.clear()
    assert recon("fit", cloud, "--method", "toy", "--seed", "7", "--device", "cpu", "-o", tmp_path / "b.ply").code == 0
    assert CALLS[0].seed == 7


def test_json_summary_parses(recon, cloud, tmp_path):
    out = tmp_path / "m.ply"
    field = tmp_path / "f.npz"
    res = recon("fit", cloud, "--method", "toy", "--json", "-o", out, "--save-field", field)
    assert res.code == 0, res
    summary = json.loads(res.out)
    assert summary["points_in"] == 400 and summary["method"] == "toy"
    assert summary["output"] == str(out) and summary["field"] == str(field)
    assert summary["faces"] == len(__import__("recon.io", fromlist=["read_mesh"]).read_mesh(out).faces)
    assert summary["config"]["shrink"] == 1.0
    assert "iteration" not in res.err  # --json: nothing but JSON, no progress


def test_quiet_prints_nothing(recon, cloud, tmp_path):
    res = recon("fit", cloud, "--method", "toy", "--quiet", "-o", tmp_path / "q.ply")
    assert res.code == 0, res
    assert res.out == "" and res.err == ""
    assert (tmp_path / "q.ply").is_file()


def test_same_seed_same_file_other_seed_other_file(recon, cloud, tmp_path):
    paths = [tmp_path / f"s{i}.ply" for i in range(3)]
    for path, seed in zip(paths, (3, 3, 4)):
        res = recon("fit", cloud, "--method", "toy", "--jitter", "0.3", "--seed", str(seed), "-o", path, "-q")
        assert res.code == 0, res
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_a_failing_fit_leaves_no_file_behind(recon, cloud, tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    res = recon("fit", cloud, "--method", "toy", "--fail-at", "3", "--save-field", tmp_path / "f.npz")
    assert_one_line_error(res, "toy failure on purpose", code=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_existing_output_survives_a_failing_fit(recon, cloud, tmp_path):
    out = tmp_path / "keep.ply"
    out.write_bytes(b"precious")
    res = recon("fit", cloud, "--method", "toy", "--fail-at", "2", "-o", out)
    assert res.code == 1, res
    assert out.read_bytes() == b"precious"
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_preprocessing_options(recon, tmp_path):
    pts = np.vstack([sphere_points(600), [[60.0, 0.0, 0.0]]])  # one far outlier
    path = write_ply_cloud(tmp_path / "noisy.ply", pts)
    res = recon("fit", path, "--method", "toy", "--remove-outliers", "--json", "-o", tmp_path / "o.ply")
    assert res.code == 0, res
    summary = json.loads(res.out)
    assert summary["points_in"] == 601 and summary["points_fitted"] <= 600
    # the outlier is gone, so the sphere fits the real points (radius ~2, not ~25)
    r = np.linalg.norm(ply_vertices(tmp_path / "o.ply") - [10.0, -5.0, 3.0], axis=1)
    assert r.max() < 3.0
    res = recon("fit", path, "--method", "toy", "--voxel-size", "0.5", "--json", "-o", tmp_path / "v.ply")
    assert res.code == 0, res
    assert json.loads(res.out)["points_fitted"] < 601


def test_sample_a_mesh_input(recon, tmp_path):
    v, f = octahedron(3.0)
    path = write_ply_mesh(tmp_path / "octa.ply", v, f)
    res = recon("fit", path, "--method", "toy", "--sample", "500", "--json", "-o", tmp_path / "s.ply")
    assert res.code == 0, res
    assert json.loads(res.out)["points_in"] == 500


# ----------------------------------------------------------------------------- mesh, eval, info


def test_save_field_then_mesh_then_eval(recon, cloud, tmp_path):
    field = tmp_path / "scan.field.npz"
    assert recon("fit", cloud, "--method", "toy", "-q", "--save-field", field, "-o", tmp_path / "fit.ply").code == 0
    res = recon("mesh", field, "-o", tmp_path / "again.obj", "--json")
    assert res.code == 0, res
    summary = json.loads(res.out)
    assert summary["faces"] > 100 and Path(summary["output"]).is_file()
    # default output name next to the field
    assert recon("mesh", field, "-q").code == 0
    assert (tmp_path / "scan.mesh.ply").is_file()
    # a mesh against itself: zero distance, perfect F-score
    res = recon("eval", tmp_path / "fit.ply", tmp_path / "fit.ply", "--json", "--samples", "2000")
    assert res.code == 0, res
    metrics = json.loads(res.out)
    assert metrics["chamfer_l1"] < 1e-9
    assert all(v == 1.0 for v in metrics["fscore"].values())
    res = recon("eval", tmp_path / "fit.ply", tmp_path / "again.obj", "--samples", "2000")
    assert res.code == 0, res
    assert "Chamfer-L1" in res.out and "F-score @ 0.2%" in res.out and "F-score @ 1%" in res.out


def test_mesh_refuses_a_non_field_and_bad_options(recon, cloud, tmp_path):
    field = tmp_path / "f.npz"
    assert recon("fit", cloud, "--method", "toy", "-q", "--save-field", field, "-o", tmp_path / "m.ply").code == 0
    assert_one_line_error(recon("mesh", cloud), "scan.ply")
    assert_one_line_error(recon("mesh", field, "--min-component", "2"), "--min-component")
    assert_one_line_error(recon("mesh", field, "-o", field), "refusing to overwrite")


def test_eval_thresholds_are_checked(recon, cloud, tmp_path):
    v, f = octahedron()
    m = write_ply_mesh(tmp_path / "o.ply", v, f)
    assert_one_line_error(recon("eval", m, m, "--thresholds", "0.1,abc"), "--thresholds")
    assert_one_line_error(recon("eval", m, m, "--thresholds", "2"), "--thresholds")
    res = recon("eval", m, m, "--thresholds", "0.05", "--json", "--samples", "500")
    assert res.code == 0, res
    assert list(json.loads(res.out)["fscore"]) == ["5%"]


def test_info_on_a_cloud_and_a_field(recon, cloud, tmp_path):
    res = recon("info", cloud)
    assert res.code == 0, res
    assert "400" in res.out
    res = recon("info", cloud, "--json")
    assert res.code == 0, res
    assert "400" in json.dumps(json.loads(res.out))
    field = tmp_path / "f.npz"
    assert recon("fit", cloud, "--method", "toy", "-q", "--save-field", field, "-o", tmp_path / "m.ply").code == 0
    res = recon("info", field, "--json")
    assert res.code == 0, res
    json.loads(res.out)


# ----------------------------------------------------------------------------- the real fitter


def test_gridpull_end_to_end_on_a_tiny_cloud(recon, tmp_path):
    path = write_ply_cloud(tmp_path / "ball.ply", sphere_points(1500, radius=1.0, center=(0.0, 0.0, 0.0)))
    out = tmp_path / "ball.mesh.ply"
    res = recon("fit", path, "--method", "gridpull", "--resolution", "24", "--iterations", "5", "--device", "cpu", "--json")
    assert res.code == 0, res
    summary = json.loads(res.out)
    assert summary["method"] == "gridpull" and summary["faces"] > 100 and summary["output"] == str(out)
    r = np.linalg.norm(ply_vertices(out), axis=1)
    assert abs(np.median(r) - 1.0) < 0.05
    assert summary["points_merged"] == 0


def test_auto_is_the_default_and_says_what_it_chose_in_one_line(recon, tmp_path):
    path = write_ply_cloud(tmp_path / "ball.ply", sphere_points(20_000, radius=1.0, center=(0.0, 0.0, 0.0)))
    res = recon("fit", path, "--resolution", "24", "--iterations", "3", "--device", "cpu", "--json")
    assert res.code == 0, res
    summary = json.loads(res.out)
    first = summary["decisions"][0]
    assert summary["method"] == "gridpull" and first["name"] == "method" and first["value"] == "gridpull"
    res = recon("fit", path, "--resolution", "24", "--iterations", "3", "--device", "cpu", "-o", tmp_path / "b.ply")
    assert res.code == 0, res
    auto_lines = [line for line in res.err.splitlines() if line.startswith("auto: ")]  # before the fit
    assert auto_lines == [first["reason"]] and auto_lines[0].endswith("-> gridpull, closed mesh through the points")
    assert "closed object" in auto_lines[0] and "20,000 points" in auto_lines[0]
    # an option that neither auto method has is refused, naming it
    assert_one_line_error(recon("fit", path, "--shrink", "0.5"), "--shrink", "--method")


def test_method_auto_is_in_the_help(recon):
    text = " ".join(recon("fit", "--help").out.replace("│", " ").split())
    assert "auto" in text and "measures the cloud" in text


def test_gridpull_says_when_it_fits_voxel_means_of_a_dense_cloud(recon, tmp_path):
    dense = sphere_points(60_000, radius=1.0, center=(0.0, 0.0, 0.0), seed=2)
    path = write_ply_cloud(tmp_path / "dense.ply", dense)
    res = recon("fit", path, "--method", "gridpull", "--resolution", "32", "--iterations", "3", "--device", "cpu")
    assert res.code == 0, res
    merged = [line for line in res.out.splitlines() if line.startswith("merged")]
    assert len(merged) == 1 and "voxel means" in merged[0] and "--merge-cells 0" in merged[0]
    n = int(merged[0].split("fitted to ")[1].split(" ")[0].replace(",", ""))
    assert 0 < n < 60_000 // 3
    res = recon("fit", path, "--method", "gridpull", "--resolution", "32", "--iterations", "3", "--merge-cells", "0", "--json",
                "-o", tmp_path / "every.ply")
    assert res.code == 0, res
    assert json.loads(res.out)["points_merged"] == 0


# ----------------------------------------------------------------------------- progress display


def test_progress_without_a_terminal_prints_a_line_every_tenth(capsys):
    from recon.cli._common import FitProgress

    with FitProgress("fit", tty=False) as progress:
        for step in range(1, 101):
            progress(step, 100, {"pull": 0.5, "surface": 0.25})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 11  # the first step (the fit has started), then every 10 %
    assert [line.split()[2] for line in lines] == ["1/100"] + [f"{k}/100" for k in range(10, 101, 10)]
    assert "pull=0.5 surface=0.25" in lines[-1] and "ETA 0.0s" in lines[-1]
    assert "ETA ?" in lines[0]  # one step gives no rate


def test_progress_eta_of_a_huge_run_is_not_zero(capsys, monkeypatch):
    from recon.cli import _common

    clock = iter([0.0, 0.0, 1.0, 2.0])
    monkeypatch.setattr(_common.time, "perf_counter", lambda: next(clock))
    with _common.FitProgress("fit", tty=False) as progress:
        progress(1, 10**12, {})
        progress(2, 10**12, {})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("ETA ?")
    assert _common.format_seconds(1.0 * (10**12 - 2)) == "11574074d01h"
    assert _common.format_seconds(75) == "1m15s" and _common.format_seconds(3.25) == "3.2s"


def test_progress_quiet_prints_nothing_and_a_total_loss_wins(capsys):
    from recon.cli._common import FitProgress

    with FitProgress("fit", quiet=True, tty=False) as progress:
        for step in range(1, 4):
            progress(step, 3, {"total": 1.0})
    assert capsys.readouterr().err == ""
    assert FitProgress._loss_text({"total": 0.125, "pull": 9.0}) == "0.125"
    assert FitProgress._loss_text({}) == "-"


def test_gridpull_same_seed_gives_the_same_mesh_file(recon, tmp_path):
    path = write_ply_cloud(tmp_path / "ball.ply", sphere_points(1500, radius=1.0, center=(0.0, 0.0, 0.0), seed=3))
    outs = [tmp_path / "a.ply", tmp_path / "b.ply"]
    for out in outs:
        res = recon("fit", path, "--method", "gridpull", "--resolution", "24", "--iterations", "5", "--seed", "5", "-o", out, "-q")
        assert res.code == 0, res
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_device_cuda_without_a_gpu_is_refused_in_one_line(recon, cloud):
    from recon.device import cuda_available

    if cuda_available():
        pytest.skip("a CUDA device is visible here")
    assert_one_line_error(recon("fit", cloud, "--method", "toy", "--device", "cuda"), "no CUDA GPU")
    assert CALLS == []


def test_auto_on_a_one_sided_scan_fits_no_field_unless_one_is_saved(recon, tmp_path):
    pytest.importorskip("torch")
    from test_measure import height_field

    from recon.fields.loading import load_field

    scan = write_ply_cloud(tmp_path / "terrain.ply", (height_field(4000) * 10.0).astype(np.float32))
    res = recon("fit", scan, "--json", "-o", tmp_path / "a.ply")
    assert res.code == 0, res
    quick = json.loads(res.out)
    assert quick["fit_seconds"] == 0.0 and quick["field"] is None
    assert any(d["name"] == "field" and d["value"] == "not fitted" for d in quick["decisions"])
    res = recon("fit", scan, "--json", "-o", tmp_path / "b.ply", "--save-field", tmp_path / "b.npz", "--iterations", "60")
    assert res.code == 0, res
    full = json.loads(res.out)
    assert full["fit_seconds"] > 0.0 and load_field(tmp_path / "b.npz").kind == "unsigned"
    assert full["faces"] == quick["faces"]  # the mesh is the points', whether or not a field was fitted
