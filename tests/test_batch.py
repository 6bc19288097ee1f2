"""Batches of clouds: expanding a folder, a glob or a list file; one result per cloud,
failures listed without stopping the rest; resume; the CLI; Ray."""

from __future__ import annotations

import numpy as np
import pytest

from recon.batch import BatchRow, expand_inputs, is_batch_input, run_batch
from recon.cloud import Cloud
from recon.errors import InputError
from recon.io import write_cloud

FAST = {"resolution": 32, "iterations": 10}


def sphere(n=600, seed=0):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return Cloud(d / np.linalg.norm(d, axis=1, keepdims=True) + [10.0, -5.0, 3.0])


@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    write_cloud(sphere(seed=1), folder / "a.ply")
    write_cloud(sphere(seed=2), folder / "b.xyz")
    (folder / "broken.ply").write_bytes(b"ply\nformat nonsense\n")
    (folder / "notes.md").write_text("not a cloud")
    (folder / "a.mesh.ply").write_bytes(b"an earlier output")
    return folder


def test_inputs_from_a_folder_a_glob_and_a_list(scans, tmp_path):
    names = [p.name for p in expand_inputs(str(scans))]
    assert names == ["a.ply", "b.xyz", "broken.ply"]
    assert [p.name for p in expand_inputs(str(scans / "*.ply"))] == ["a.mesh.ply", "a.ply", "broken.ply"]
    listing = scans / "todo.list"
    listing.write_text("# two of them\nb.xyz\n\na.ply\n")
    assert [p.name for p in expand_inputs(str(listing))] == ["a.ply", "b.xyz"]
    assert is_batch_input(str(scans)) and is_batch_input(str(scans / "*.ply")) and is_batch_input(str(listing))
    assert not is_batch_input(str(scans / "a.ply"))
    with pytest.raises(InputError, match="no point clouds"):
        expand_inputs(str(tmp_path / "nothing*.ply"))


def test_a_failure_is_listed_and_the_others_are_meshed(scans, tmp_path):
    out = tmp_path / "meshes"
    seen = []
    rows = run_batch(expand_inputs(str(scans)), out, method="gridpull", options=FAST, workers=0, on_row=seen.append)
    assert [r.ok for r in rows] == [True, True, False]
    assert "broken.ply" in rows[2].error and "PLY" in rows[2].error
    assert (out / "a.mesh.ply").stat().st_size > 0 and (out / "b.mesh.ply").stat().st_size > 0
    assert not (out / "broken.mesh.ply").exists()
    assert len(seen) == 3 and all(isinstance(r, BatchRow) for r in seen)
    again = run_batch(expand_inputs(str(scans)), out, method="gridpull", options=FAST, workers=0, resume=True)
    assert [r.skipped for r in again] == [True, True, False]
    assert "FAILED" in again[2].line() and "skipped" in again[0].line()


def test_cli_batch_prints_a_line_per_cloud_and_exits_1_on_a_failure(scans, tmp_path, capsys):
    from recon.cli import main as cli_main

    out = tmp_path / "meshes"
    code = cli_main.run(["fit", str(scans), "--out-dir", str(out), "--workers", "0", "--resolution", "32",
                         "--iterations", "10"])
    printed = capsys.readouterr().out
    assert code == 1
    assert printed.count("ok ") == 2 and "FAILED" in printed and "2 of 3 clouds meshed" in printed
    assert cli_main.run(["fit", str(scans), "--workers", "0"]) == 2  # no --out-dir
    assert "--out-dir" in capsys.readouterr().err


def test_batch_on_ray(scans, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = run_batch([scans / "a.ply", scans / "broken.ply"], tmp_path / "out", method="gridpull", options=FAST)
    finally:
        ray.shutdown()
    assert [r.ok for r in rows] == [True, False]
    assert (tmp_path / "out" / "a.mesh.ply").exists()
