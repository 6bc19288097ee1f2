"""The README's promises: its quick-start commands, its Python API block, its layout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_quick_start_commands_are_the_ones_ci_runs():
    assert "bash scripts/setup.sh && .venv/bin/recon fit assets/demo_cloud.ply" in README
    assert "bash scripts/test.sh\n" in README
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test.sh </dev/null" in ci and "set -euo pipefail" in ci
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    assert "bash scripts/setup.sh --test" in test_sh and ".venv/bin/pytest" in test_sh


def test_python_api_block_runs(tmp_path, monkeypatch):
    block = re.search(r"## Python API\s+```python\n(.*?)```", README, re.S).group(1)
    d = np.random.default_rng(0).normal(size=(2000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    from recon.cloud import Cloud
    from recon.io import write_cloud

    write_cloud(Cloud(d * 3.0 + 100.0), tmp_path / "scan.ply")
    monkeypatch.chdir(tmp_path)
    small = block.replace("resolution=256", "resolution=24, iterations=3")  # same calls, quick
    assert small != block
    exec(compile(small, "README.md", "exec"), {})
    from recon.io import read_mesh

    mesh = read_mesh(tmp_path / "scan.mesh.ply")
    r = np.linalg.norm(mesh.vertices - 100.0, axis=1)
    assert mesh.n_faces > 100 and abs(np.median(r) - 3.0) < 0.15


def test_layout_names_what_the_package_installs():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping = project["tool"]["setuptools"]["package-dir"]
    assert mapping["recon.kernels"] == "kernels" and mapping["recon.cli"] == "cli"
    assert "kernels/    -> recon.kernels" in README and "cli/        -> recon.cli" in README
    # no generic top-level package is installed
    assert all(p == "recon" or p.startswith("recon.") for p in project["tool"]["setuptools"]["packages"])


def test_demo_asset_fits_quickly(tmp_path):
    demo = REPO / "assets" / "demo_cloud.ply"
    assert demo.is_file(), "the README's quick start fits assets/demo_cloud.ply"
    out = tmp_path / "demo.mesh.ply"
    proc = subprocess.run(
        [sys.executable, "-m", "recon.cli.main", "fit", str(demo), "-o", str(out),
         "--resolution", "32", "--iterations", "3", "--json"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
