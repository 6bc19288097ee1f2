"""The library's import structure: no import circles, and no import up a layer.

Every ``import`` in the library is read from the source (also those inside functions,
which Python runs late but which still make one module depend on another), so a
circle or an upward dependency fails here, not in a user's session.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# installed package name -> folder in the repository (see pyproject.toml's package-dir)
PACKAGE_DIRS = {"recon": ROOT / "recon", "recon.kernels": ROOT / "kernels", "recon.cli": ROOT / "cli"}

# Lowest first. A module may import modules of its own layer or of a lower one.
LAYERS = [
    ("base", ["recon.errors", "recon.device", "recon.seeding", "recon.geometry", "recon.kernels"]),
    ("data", ["recon.cloud", "recon.triangles"]),
    ("files", ["recon.io"]),
    ("points", ["recon.points"]),
    ("fields", ["recon.fields"]),
    ("surfaces", ["recon.meshing", "recon.metrics"]),
    ("methods", ["recon.fitters", "recon.render"]),
    ("applications", ["recon.choice", "recon.describe", "recon.pipeline", "recon.viewer", "recon.tiling",
                      "recon.batch"]),
    ("harness", ["recon.bench"]),
    ("commands", ["recon.cli"]),
]


def library_modules() -> dict[str, Path]:
    mods = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if package == "recon" and parts[0] in ("kernels", "cli"):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([package, *parts])] = path
    return mods


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The library modules ``name`` imports (``from pkg import module`` counts as the module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                out.add(candidate if candidate in known else module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = library_modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def layer_of(module: str) -> int | None:
    if module == "recon":  # the facade re-exports the pipeline: only the harness and the CLI use it
        return layer_of("recon.pipeline")
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_reader_sees_the_library():
    g = graph()
    # a broken reader would make every other test here pass vacuously
    assert len(g) > 50
    assert "recon.fields.grid" in g["recon.fields.loading"]
    assert "recon.kernels.trilinear" in g["recon.fields.grid"]  # imported inside a method


def test_no_import_circles():
    found = cycles(graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in graph() if m != "recon" and layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"


def test_no_import_runs_up_a_layer():
    g = graph()
    upward = []
    for module, deps in g.items():
        if module == "recon":  # the facade re-exports from every layer
            continue
        for dep in deps:
            lower, upper = layer_of(module), layer_of(dep)
            if upper > lower:
                upward.append(f"{module} ({LAYERS[lower][0]}) imports {dep} ({LAYERS[upper][0]})")
    assert not upward, "imports up a layer:\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize("module,dep", [("recon.fields.grid", "recon.meshing.marching_cubes"),
                                        ("recon.io.ply", "recon.cli.main")])
def test_an_upward_import_would_be_caught(module, dep):
    assert layer_of(dep) > layer_of(module)


def test_a_circle_would_be_caught():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
