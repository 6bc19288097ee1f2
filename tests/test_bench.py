"""The bench: method registry, failure isolation, a tiny end-to-end smoke run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from recon.bench.methods import BenchMethod, all_methods, register_method, select_methods, unregister_method
from recon.errors import InputError

FAKES = {
    "fake-sphere": ("bench_fakes:sphere_fit", {}),
    "fake-raise": ("bench_fakes:raise_error", {}),
    "fake-hang": ("bench_fakes:hang", {}),
    "fake-alloc": ("bench_fakes:allocate", {}),
    "fake-segv": ("bench_fakes:segfault", {}),
    "fake-notmesh": ("bench_fakes:not_a_mesh", {}),
    "fake-300mb": ("bench_fakes:touch_memory", {"mb": 300}),
    "fake-grow": ("bench_fakes:grow", {}),
}


@pytest.fixture
def fakes():
    for name, (target, options) in FAKES.items():
        register_method(BenchMethod(name, target, f"test fake {name}", options=options, warmup_options=None))
    yield {name: m for name, m in all_methods().items() if name in FAKES}
    for name in FAKES:
        unregister_method(name)


def _sphere_points(n: int, radius: float = 1.0, seed: int = 0) -> np.ndarray:
    gen = np.random.default_rng(seed)
    v = gen.normal(size=(n, 3))
    return radius * v / np.linalg.norm(v, axis=1, keepdims=True)


def _write_case(folder: Path, *, n: int = 2000, gt: bool = True) -> Path:
    import trimesh

    folder.mkdir(parents=True)
    trimesh.PointCloud(_sphere_points(n) + [5.0, -2.0, 1.0]).export(folder / "input.ply")
    if gt:
        sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
        sphere.apply_translation([5.0, -2.0, 1.0])
        sphere.export(folder / "gt.ply")
    (folder / "meta.json").write_text(json.dumps({"kind": "closed", "points": n}))
    return folder


# ----------------------------------------------------------------------------- registry


def test_registry_has_every_fitter_and_the_baselines():
    from recon.fitters import load_all_fitters

    methods = all_methods()
    assert {"o3d-poisson", "o3d-bpa"} <= set(methods)
    for name in load_all_fitters():
        assert methods[name].kind == "fitter"
        assert methods[name].target == "recon.bench.methods:run_fitter"
        assert methods[name].options["fitter"] == name
    assert methods["o3d-poisson"].kind == "baseline"


def test_gridpull_is_a_bench_method():
    pytest.importorskip("recon.fitters.gridpull")
    m = all_methods()["gridpull"]
    assert m.kind == "fitter"
    # the warm-up shrinks the grid and the iterations (compiles the kernels, fits nothing real)
    assert m.warmup_options == {"overrides": {"resolution": 32, "iterations": 2}}


def test_auto_is_a_bench_method_that_warms_up_every_method_it_may_choose(monkeypatch):
    import recon.bench.methods as methods_module
    from recon.bench.child import warmup_cloud
    from recon.pipeline import AUTO_METHODS, installed
    from recon.triangles import TriangleMesh

    m = all_methods()["auto"]
    assert m.kind == "fitter" and m.warmup_options == {"warmup": True}
    calls = []
    run_fitter = methods_module.run_fitter

    def spy(cloud, *, fitter, module=None, overrides=None):
        calls.append(fitter)
        return run_fitter(cloud, fitter=fitter, overrides=overrides)

    monkeypatch.setattr(methods_module, "run_fitter", spy)
    mesh = methods_module.resolve_target(m.target)(warmup_cloud(200), **m.warmup_options)
    # a shrunk warm-up may leave an empty mesh: it compiles kernels, it is not scored
    assert isinstance(mesh, TriangleMesh)
    assert calls == [name for name in AUTO_METHODS if installed(name)]


def test_a_new_fitter_appears_with_no_edit_to_the_bench():
    from dataclasses import dataclass

    from recon.fitters import FitterSpec, _REGISTRY, register

    @dataclass
    class TinyConfig:
        iterations: int = 5

    spec = register(FitterSpec("tiny-test-fitter", TinyConfig, lambda cloud, config, progress=None, timings=None: None, "tiny"))
    try:
        m = all_methods()["tiny-test-fitter"]
        assert m.kind == "fitter" and m.warmup_options == {"overrides": {"iterations": 2}}
    finally:
        _REGISTRY.pop(spec.name)


def test_a_fitter_runs_through_fit_and_extract_mesh_in_a_child(tmp_path):
    import bench_fake_fitter

    from recon.bench.runner import run_one

    try:
        method = all_methods()[bench_fake_fitter.NAME]
        assert method.options == {"fitter": "fake-sdf", "module": "bench_fake_fitter"}
        case = _write_case(tmp_path / "case", n=500, gt=False)
        res = run_one(method, case / "input.ply", timeout_s=60)
        assert res.ok, res.error
        assert res.warmup_s is not None  # the untimed warm-up ran (resolution 32, iterations 2)
        # marching cubes on the sphere SDF: vertices about the unit radius around the centre
        r = np.linalg.norm(res.mesh.vertices - [5.0, -2.0, 1.0], axis=1)
        assert res.mesh.n_faces > 1000
        assert np.abs(r - r.mean()).max() < 0.02 and abs(r.mean() - 1.0) < 0.02
    finally:
        from recon.fitters import _REGISTRY

        _REGISTRY.pop(bench_fake_fitter.NAME, None)


def test_select_methods_order_and_unknown(fakes):
    assert [m.name for m in select_methods(["o3d-bpa", "fake-raise", "o3d-bpa"])] == ["o3d-bpa", "fake-raise"]
    with pytest.raises(InputError, match="unknown method.*nope.*known: .*o3d-poisson"):
        select_methods(["nope"])


# ----------------------------------------------------------------------------- isolation


def test_failures_are_isolated_and_recorded(tmp_path, fakes):
    from recon.bench.runner import run_one

    case = _write_case(tmp_path / "case", n=300, gt=False)
    inp = case / "input.ply"
    limit = 3 * 1024**3

    t0 = time.perf_counter()
    hung = run_one(fakes["fake-hang"], inp, timeout_s=2.0, memory_limit_bytes=limit)
    assert hung.status == "timeout" and "2 s time-out" in hung.error
    assert time.perf_counter() - t0 < 30

    raised = run_one(fakes["fake-raise"], inp, timeout_s=30, memory_limit_bytes=limit)
    assert raised.status == "error"
    assert raised.error == "RuntimeError: this fake method fails on purpose"

    oom = run_one(fakes["fake-alloc"], inp, timeout_s=30, memory_limit_bytes=limit)
    assert oom.status == "out of memory"
    assert "limit 3 GiB" in oom.error
    assert oom.peak_rss_mb < 3 * 1024  # the cap held

    crashed = run_one(fakes["fake-segv"], inp, timeout_s=30, memory_limit_bytes=limit)
    assert crashed.status == "crashed" and "SIGSEGV" in crashed.error

    wrong = run_one(fakes["fake-notmesh"], inp, timeout_s=30, memory_limit_bytes=limit)
    assert wrong.status == "error" and "not a TriangleMesh" in wrong.error

    good = run_one(fakes["fake-sphere"], inp, timeout_s=30, memory_limit_bytes=limit)
    assert good.ok and good.mesh.n_faces == 1280
    assert good.wall_s > 0 and 10 < good.peak_rss_mb < 1000

    # the peak is the child's own: 300 MB held by the method show, on top of the plain run
    big = run_one(fakes["fake-300mb"], inp, timeout_s=30, memory_limit_bytes=limit)
    assert big.ok
    assert big.peak_rss_mb - good.peak_rss_mb == pytest.approx(300, abs=40)


def test_resident_memory_mode_kills_past_the_limit(tmp_path, fakes):
    # the mode used where a GPU is visible: no RLIMIT_AS, the parent watches the resident set
    from recon.bench.runner import run_one

    inp = _write_case(tmp_path / "case", n=300, gt=False) / "input.ply"
    limit = 600 * 1024**2  # the fake would reach 3 GB in ~1.2 s
    res = run_one(fakes["fake-grow"], inp, timeout_s=30, memory_limit_bytes=limit, memory_mode="resident", poll_s=0.01)
    assert res.status == "out of memory" and "resident memory passed" in res.error
    assert 600 <= res.peak_rss_mb < 1500
    with pytest.raises(InputError, match="--memory-mode must be one of"):
        run_one(fakes["fake-grow"], inp, memory_mode="rss")


def test_bench_carries_on_past_failures(tmp_path, fakes):
    from recon.bench.cases import discover_cases
    from recon.bench.runner import BenchSettings, run_bench

    _write_case(tmp_path / "cases" / "ball", n=300)
    cases = discover_cases(tmp_path / "cases")
    methods = select_methods(["fake-hang", "fake-raise", "fake-sphere"])
    lines = []
    data = run_bench(
        cases, methods, out_dir=tmp_path / "out",
        settings=BenchSettings(timeout_s=3.0, memory_limit_bytes=3 * 1024**3, n_samples=2000),
        log=lines.append,
    )
    res = data["results"]["ball"]
    assert res["fake-hang"]["ok"] is False and res["fake-hang"]["status"] == "timeout"
    assert res["fake-raise"]["ok"] is False and res["fake-raise"]["status"] == "error"
    assert res["fake-sphere"]["ok"] is True and res["fake-sphere"]["n_ok"] == 1
    # the sphere fit of a noiseless sphere cloud is close to the GT sphere
    assert res["fake-sphere"]["metrics"]["chamfer_l1"] < 2e-3
    assert (tmp_path / "out" / res["fake-sphere"]["mesh"]).is_file()
    assert len(lines) == 3 and "FAILED (timeout)" in lines[0] and "FAILED (error)" in lines[1]


def test_method_order_rotates_per_repeat():
    from recon.bench.runner import run_order

    assert [run_order(["a", "b", "c"], r) for r in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"],
    ]


# ----------------------------------------------------------------------------- smoke


def test_smoke_poisson_and_fake_write_every_output(tmp_path, fakes):
    import recon.bench
    from recon.bench.runner import BenchSettings

    _write_case(tmp_path / "cases" / "ball", n=2000)
    _write_case(tmp_path / "cases" / "ball_nogt", n=2000, gt=False)
    out = tmp_path / "results"
    data = recon.bench.run(
        tmp_path / "cases",
        out_dir=out,
        methods=["o3d-poisson", "fake-sphere"],
        settings=BenchSettings(n_samples=5000, timeout_s=120),
        command="recon bench --smoke",
        report=tmp_path / "benchmarks.md",
    )
    for name in ("results.json", "results.md", "quality_vs_time.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "quality_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "results.json").read_text())
    assert set(saved) >= {"settings", "versions", "machine", "cases", "results", "runs", "command", "date"}
    assert saved["command"] == "recon bench --smoke"
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["cpu"]
    assert saved["versions"]["open3d"]
    for method in ("o3d-poisson", "fake-sphere"):
        e = saved["results"]["ball"][method]
        assert e["ok"], e
        assert set(e) >= {"wall_s", "peak_rss_mb", "faces", "vertices", "watertight", "metrics", "mesh"}
        assert set(e["metrics"]["fscore"]) == {"0.2%", "0.5%", "1%"}
        assert (out / e["mesh"]).is_file()
        nogt = saved["results"]["ball_nogt"][method]["metrics"]
        assert set(nogt) >= {"input_to_mesh_mean", "mesh_to_input_mean", "mesh_to_input_p95"}
    assert saved["results"]["ball"]["fake-sphere"]["watertight"] is True
    # Poisson on a clean sphere: close to the truth
    assert saved["results"]["ball"]["o3d-poisson"]["metrics"]["chamfer_l1"] < 5e-3
    md = (out / "results.md").read_text()
    assert "| case | o3d-poisson | fake-sphere |" in md
    assert "Chamfer-L1" in md and "*median*" in md and "*wins*" in md and "**" in md
    assert "recon bench --smoke" in md
    # the page: the run's figures, a summary row per method (1 case with a truth, compared to Poisson)
    page = Path(data["paths"]["report"]).read_text()
    assert "## Summary" in page and "| fake-sphere | 2/2 | " in page and "| o3d-poisson | 2/2 | 0/1 | 0/1 | 1.00 (ball) |" in page
    assert md.split("Chamfer-L1 (fraction", 1)[1] in page  # the same per-case tables


def test_watertight_check():
    import trimesh

    from recon.bench.runner import is_watertight
    from recon.triangles import TriangleMesh

    sphere = TriangleMesh.from_trimesh(trimesh.creation.icosphere(subdivisions=2))
    assert is_watertight(sphere)
    assert not is_watertight(TriangleMesh(sphere.vertices, sphere.faces[1:]))
    # the same sphere with every face's corners duplicated ("triangle soup") is still closed
    soup = TriangleMesh(sphere.vertices[sphere.faces.reshape(-1)], np.arange(sphere.n_faces * 3).reshape(-1, 3))
    assert is_watertight(soup)


def test_cases_discovery_errors(tmp_path):
    from recon.bench.cases import discover_cases

    with pytest.raises(InputError, match="is not a folder"):
        discover_cases(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no case"):
        discover_cases(tmp_path / "empty")
    _write_case(tmp_path / "cases" / "a", n=50)
    (tmp_path / "cases" / "a" / "input.xyz").write_text("0 0 0\n")
    with pytest.raises(InputError, match="several input"):
        discover_cases(tmp_path / "cases")
    _write_case(tmp_path / "one", n=50)
    cases = discover_cases(tmp_path / "one")  # a case folder itself
    assert [c.name for c in cases] == ["one"] and cases[0].gt is not None and cases[0].meta["kind"] == "closed"
    with pytest.raises(InputError, match="--only: unknown case"):
        discover_cases(tmp_path / "one", only=["two"])


def test_cli_bench_bad_input_is_one_line(tmp_path):
    from recon.cli.main import run

    assert run(["bench", "--cases", str(tmp_path / "nope")]) == 2
    assert run(["bench", "--cases", str(tmp_path), "--methods", "nope"]) == 2


# ----------------------------------------------------------------------------- the benchmark page


def _three_cases():
    from bench_fakes import fake_results

    return fake_results({
        # gridpull beats the better anchor (bpa, 2e-3) on Chamfer and (poisson, 0.90) on NC
        "a": {"gridpull": {"chamfer_l1": 1e-3, "normal_consistency": 0.95, "wall_s": 2.0, "peak_mb": 300.0},
              "o3d-poisson": {"chamfer_l1": 4e-3, "normal_consistency": 0.90, "wall_s": 1.0, "peak_mb": 200.0},
              "o3d-bpa": {"chamfer_l1": 2e-3, "normal_consistency": 0.80, "wall_s": 0.5, "peak_mb": 150.0}},
        # poisson fails: bpa alone is the anchor; gridpull 3x its Chamfer, NC tied (no win)
        "b": {"gridpull": {"chamfer_l1": 6e-3, "normal_consistency": 0.85, "wall_s": 4.0, "peak_mb": 500.0},
              "o3d-poisson": None,
              "o3d-bpa": {"chamfer_l1": 2e-3, "normal_consistency": 0.85, "wall_s": 0.7, "peak_mb": 160.0}},
        # no ground truth: not compared, but its time and memory count
        "c": {"gt": False,
              "gridpull": {"chamfer_l1": 0, "normal_consistency": 0, "wall_s": 9.0, "peak_mb": 900.0},
              "o3d-poisson": {"chamfer_l1": 0, "normal_consistency": 0, "wall_s": 3.0, "peak_mb": 250.0},
              "o3d-bpa": {"chamfer_l1": 0, "normal_consistency": 0, "wall_s": 0.9, "peak_mb": 170.0}},
    })


def test_summary_counts_wins_against_the_better_anchor():
    from recon.bench.document import method_summaries

    rows = {r.method: r for r in method_summaries(_three_cases())}
    g = rows["gridpull"]
    assert (g.cases_ok, g.cases, g.compared) == (3, 3, 2)
    assert (g.chamfer_wins, g.normal_wins) == (1, 1)
    assert g.worst_chamfer_ratio == pytest.approx(3.0) and g.worst_chamfer_case == "b"
    assert g.median_wall_s == 4.0 and g.median_peak_mb == 500.0 and g.max_peak_mb == 900.0
    p = rows["o3d-poisson"]
    assert (p.cases_ok, p.chamfer_wins, p.normal_wins) == (2, 0, 0)
    assert p.worst_chamfer_ratio == pytest.approx(2.0) and p.worst_chamfer_case == "a"
    assert p.median_wall_s == 2.0 and p.max_peak_mb == 250.0
    b = rows["o3d-bpa"]
    assert b.worst_chamfer_ratio == pytest.approx(1.0) and b.chamfer_wins == 0


def test_summary_without_anchors_counts_no_wins():
    from bench_fakes import fake_results

    from recon.bench.document import benchmark_document, method_summaries

    data = fake_results({"a": {"gridpull": {"chamfer_l1": 1e-3, "normal_consistency": 0.9}}}, methods=("gridpull",))
    (row,) = method_summaries(data)
    assert row.compared == 0 and row.chamfer_wins == 0 and row.worst_chamfer_ratio is None
    assert "so no wins are counted" in benchmark_document(data)


def test_document_holds_settings_summary_and_every_table():
    from recon.bench.document import benchmark_document

    text = benchmark_document(_three_cases(), source="run/results.json")
    assert text.startswith("# recon benchmark\n") and "Results: `run/results.json`." in text
    assert "Command: `recon bench --fake`" in text and "Libraries: python 3.11, recon 0." in text
    assert "| gridpull | 3/3 | 1/2 | 1/2 | 3.00 (b) | 4.00 | 500 | 900 |" in text
    assert "| o3d-poisson | 2/3 | 0/2 | 0/2 | 2.00 (a) | 2.00 | 225 | 250 |" in text
    for title in ("Chamfer-L1", "Normal consistency", "F-score at 0.5%", "No ground truth: mesh to input points",
                  "Faces out", "Watertight", "Wall time", "Peak resident memory", "Failures"):
        assert f"### {title}" in text, title
    assert "| b | **6.000e-03** |" not in text and "| b | 6.000e-03 | fail: timeout | **2.000e-03** |" in text


def test_report_written_again_from_results_json(tmp_path):
    from recon.bench.document import benchmark_document
    from recon.bench.report import write_json
    from recon.cli.main import run

    data = _three_cases()
    write_json(data, tmp_path / "results.json")
    page = tmp_path / "docs" / "benchmarks.md"
    page.parent.mkdir()
    assert run(["bench", "--from-results", str(tmp_path / "results.json"), "--report", str(page), "-q"]) == 0
    expected = benchmark_document(data, source=str(tmp_path / "results.json"))
    assert page.read_text() == expected
    # the folder holding results.json will do; the page is replaced, not appended to
    assert run(["bench", "--from-results", str(tmp_path), "--report", str(page), "-q"]) == 0
    assert page.read_text() == expected
    assert [p.name for p in page.parent.iterdir()] == ["benchmarks.md"]  # no temporary file left


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"settings": {}}', "it lacks cases, results, runs"),
        ('{"settings": {}, "cases": {}, "results": {}, "runs": []}', "not a complete recon bench results.json"),
    ],
)
def test_bad_results_json_is_one_clear_message(tmp_path, capsys, content, message):
    from recon.bench.document import load_results
    from recon.cli.main import run

    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_results(path)
    page = tmp_path / "page.md"
    assert run(["bench", "--from-results", str(path), "--report", str(page)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("recon: error: --from-results:") and message in err
    assert not page.exists()


def test_from_results_usage_errors(tmp_path, capsys):
    from recon.bench.report import write_json
    from recon.cli.main import run

    write_json(_three_cases(), tmp_path / "results.json")
    assert run(["bench", "--from-results", str(tmp_path / "results.json")]) == 2
    assert "needs --report PATH" in capsys.readouterr().err
    assert run(["bench", "--from-results", str(tmp_path), "--report", str(tmp_path / "p.md"), "--only", "a"]) == 2
    assert "--only cannot apply" in capsys.readouterr().err
    # the page is never written over the results it is made from
    assert run(["bench", "--from-results", str(tmp_path), "--report", str(tmp_path / "results.json")]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err
    # a run's --report folder is checked before the run starts
    _write_case(tmp_path / "cases" / "ball", n=50)
    args = ["bench", "--cases", str(tmp_path / "cases"), "--methods", "o3d-bpa", "--out", str(tmp_path / "out")]
    assert run([*args, "--report", str(tmp_path / "no" / "p.md")]) == 2
    assert "--report: the folder of" in capsys.readouterr().err
    assert run([*args, "--report", str(tmp_path / "out" / "results.md")]) == 2
    assert "would replace the run's own results.md" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
