"""The README's promises: short, its quick-start commands, its Python API block, its layout, its links."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_is_short():
    # the full benchmark tables and the measurement diary live in docs/, not here
    assert len(README.splitlines()) <= 250


def test_quick_start_commands_are_the_ones_ci_runs():
    assert "bash scripts/setup.sh && .venv/bin/recon fit assets/demo_cloud.ply" in README
    assert "bash scripts/test.sh\n" in README
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test.sh </dev/null" in ci and "set -euo pipefail" in ci
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    assert "bash scripts/setup.sh --test" in test_sh and ".venv/bin/pytest" in test_sh


def test_python_api_block_runs(tmp_path, monkeypatch):
    block = re.search(r"## Python API\s+```python\n(.*?)```", README, re.S).group(1)
    d = np.random.default_rng(0).normal(size=(20000, 3))  # dense and closed: auto picks gridpull
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


def test_layout_names_every_folder_of_the_tree():
    block = re.search(r"## Layout\s+```\n(.*?)```", README, re.S).group(1)
    named = set()
    for line in block.splitlines():
        if line.startswith("   "):
            continue  # a description carried over from the line above
        tokens = line.split()
        # a line names one path, or two as "device.py, seeding.py"; the rest is its description
        paths = tokens[:2] if tokens and tokens[0].endswith(",") else tokens[:1]
        for token in (t.rstrip(",") for t in paths):
            if not token.endswith(("/", ".py", ".toml")) and token != ".ci/run":
                continue
            named.add("recon/" + token if line.startswith("  ") else token)  # indented: inside recon/
    missing = sorted(p for p in named if not (REPO / p.rstrip("/")).exists())
    assert not missing, f"the Layout names paths that do not exist: {missing}"
    files = _tracked_files()
    packages = {f"recon/{f.split('/')[1]}/" for f in files
                if f.startswith("recon/") and f.count("/") == 2 and f.endswith("/__init__.py")}
    top = {f"{f.split('/')[0]}/" for f in files if "/" in f and not f.startswith((".", "recon/"))}
    unlisted = sorted((packages | top) - named)
    assert not unlisted, f"folders missing from the README's Layout: {unlisted}"


def _tracked_files() -> list[str]:
    """The repository's files, relative paths (git's list: build outputs and .venv are not in it)."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        return out.splitlines()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: what is on disk
        skip = (".venv", "build", "dist", "bench-results", ".git")
        return [str(f.relative_to(REPO)) for f in REPO.rglob("*")
                if f.is_file() and not f.relative_to(REPO).parts[0].startswith(skip)]


def test_links_to_docs_exist():
    links = set(re.findall(r"\]\((docs/[^)#]+)\)", README))
    assert {"docs/methods.md", "docs/benchmarks.md", "docs/measurements.md"} <= links
    for link in links:
        assert (REPO / link).is_file(), link
