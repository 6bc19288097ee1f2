"""perf/merge_bench.py: a later run's method replaces that method's figures, nothing else,
and the benchmark page says the figures come from two runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "perf" / "merge_bench.py"


def load_merge():
    spec = importlib.util.spec_from_file_location("merge_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.merge


def run(method, case, wall):
    return {"case": case, "method": method, "repeat": 0, "ok": True, "status": "ok", "error": None, "wall_s": wall}


def test_a_later_method_replaces_only_its_own_figures():
    merge = load_merge()
    base = {"settings": {"methods": {"auto": {"d": "old"}, "o3d-poisson": {"d": "poisson"}}},
            "results": {"a": {"auto": {"wall": 9.0}, "o3d-poisson": {"wall": 5.0}},
                        "b": {"auto": {"wall": 8.0}, "o3d-poisson": {"wall": 4.0}}},
            "runs": [run("auto", "a", 9.0), run("o3d-poisson", "a", 5.0), run("auto", "b", 8.0), run("o3d-poisson", "b", 4.0)],
            "command": "recon bench", "date": "d1"}
    later = {"settings": {"methods": {"auto": {"d": "new"}}},
             "results": {"a": {"auto": {"wall": 3.0}}, "b": {"auto": {"wall": 2.0}}},
             "runs": [run("auto", "a", 3.0), run("auto", "b", 2.0)], "command": "recon bench --methods auto", "date": "d2"}
    out = merge(base, later)
    assert out["results"]["a"] == {"auto": {"wall": 3.0}, "o3d-poisson": {"wall": 5.0}}
    assert out["results"]["b"]["auto"] == {"wall": 2.0} and out["results"]["b"]["o3d-poisson"] == {"wall": 4.0}
    assert sorted((r["method"], r["wall_s"]) for r in out["runs"]) == [
        ("auto", 2.0), ("auto", 3.0), ("o3d-poisson", 4.0), ("o3d-poisson", 5.0)]
    assert out["settings"]["methods"]["auto"] == {"d": "new"}
    assert out["merged"] == [{"command": "recon bench --methods auto", "date": "d2", "methods": ["auto"]}]
    assert base["results"]["a"]["auto"] == {"wall": 9.0}  # the base is not changed in place
