"""The bench's method registry: every recon fitter, plus the Open3D baselines.

A bench method is named by an import target ``"package.module:function"`` rather than
held as a function object, because it runs in a fresh child process that imports it
there. The function takes ``(cloud: Cloud, **options)`` and returns a TriangleMesh in
the cloud's units.

Every fitter in :mod:`recon.fitters` becomes a method of the same name (run through
:func:`recon.pipeline.reconstruct`, as ``recon fit`` runs it), so a new fitter appears in the bench
with no edit here.
Extra methods (the baselines, or fakes in the tests) are added with :func:`register_method`.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from recon.errors import InputError


@dataclass(frozen=True)
class BenchMethod:
    name: str
    "Name on the command line and in the tables."
    target: str
    "Import target 'package.module:function'; the function maps (cloud, **options) -> TriangleMesh."
    description: str
    kind: str = "baseline"
    "'fitter' (a recon fitter) or 'baseline' (another library)."
    options: dict = field(default_factory=dict)
    "Keyword arguments passed to the function on every call."
    warmup_options: dict | None = field(default_factory=dict)
    "Options for the untimed warm-up run on a tiny cloud (merged over ``options``); None: no warm-up."


_EXTRA: dict[str, BenchMethod] = {}

# fitter config fields that a warm-up shrinks, when the fitter's config has them: a warm-up
# only has to compile (or load from numba's disk cache) every kernel, not fit well
# (csp's mesh_resolution: its 2-step field is near zero everywhere, and meshing it at 256^3
# evaluated every node, which took GBs and tens of seconds per case)
WARMUP_FITTER_OVERRIDES = {"resolution": 32, "iterations": 2, "mesh_resolution": 32}


def register_method(method: BenchMethod) -> BenchMethod:
    """Add a non-fitter method (a baseline, or a test's fake). Re-registering the same name replaces it."""
    if not method.name or "," in method.name:
        raise ValueError(f"bad bench method name {method.name!r}")
    _EXTRA[method.name] = method
    return method


def unregister_method(name: str) -> None:
    _EXTRA.pop(name, None)


def _fitter_method(spec) -> BenchMethod:
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    warm = {k: v for k, v in WARMUP_FITTER_OVERRIDES.items() if k in known}
    return BenchMethod(
        name=spec.name,
        target="recon.bench.methods:run_fitter",
        description=spec.description,
        kind="fitter",
        # the module that registers the fitter, so that a child process finds fitters
        # registered outside recon.fitters (plug-ins, tests) too
        options={"fitter": spec.name, "module": spec.fit.__module__},
        warmup_options={"overrides": warm},
    )


def all_methods() -> dict[str, BenchMethod]:
    """Every bench method by name: the recon fitters first (sorted), then the extras."""
    from recon.fitters import load_all_fitters

    out = {name: _fitter_method(spec) for name, spec in sorted(load_all_fitters().items())}
    for name, method in _EXTRA.items():
        if name in out:
            raise ValueError(f"bench method {name!r} is both a recon fitter and a registered extra")
        out[name] = method
    return out


def select_methods(names: list[str] | None) -> list[BenchMethod]:
    """The methods named (in that order), or all of them; unknown names are refused."""
    methods = all_methods()
    if not names:
        return list(methods.values())
    unknown = [n for n in names if n not in methods]
    if unknown:
        raise InputError(f"--methods: unknown method(s) {', '.join(unknown)}; known: {', '.join(methods)}")
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return [methods[n] for n in seen]


def resolve_target(target: str) -> Callable[..., Any]:
    """'package.module:function' -> the function (imports the module)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"bench method target must be 'module:function', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def run_fitter(cloud, *, fitter: str, module: str | None = None, overrides: dict | None = None):
    """Bench entry for a recon fitter: :func:`recon.pipeline.reconstruct` of ``cloud`` with
    the method's defaults + ``overrides``, as ``recon fit`` runs it; returns the mesh.

    ``module`` is imported first when given: the module whose import registers the fitter.
    """
    from recon.pipeline import reconstruct

    if module:
        importlib.import_module(module)
    return reconstruct(cloud, method=fitter, require_surface=False, **(overrides or {})).mesh


def run_auto(cloud, *, warmup: bool = False):
    """Bench entry for ``recon fit``'s default, ``--method auto``: the choice and the fit,
    as a user's run makes them. The warm-up compiles every method auto may choose."""
    from recon.fitters import get_fitter
    from recon.pipeline import AUTO, AUTO_METHODS, installed, reconstruct

    if warmup:
        meshes = [run_fitter(cloud, fitter=name, overrides=_fitter_method(get_fitter(name)).warmup_options["overrides"])
                  for name in AUTO_METHODS if installed(name)]
        return meshes[-1]
    return reconstruct(cloud, method=AUTO, require_surface=False, fit_field=False).mesh  # as recon fit without --save-field

register_method(
    BenchMethod(
        name="auto",
        target="recon.bench.methods:run_auto",
        description="recon fit's default: the method chosen from the data (gridpull or csp)",
        kind="fitter",
        warmup_options={"warmup": True},
    )
)
register_method(
    BenchMethod(
        name="o3d-poisson",
        target="recon.bench.baselines:o3d_poisson",
        description="Open3D screened Poisson, depth 9, normals estimated + oriented by Open3D when absent, "
        "densities below the 2 % quantile trimmed",
    )
)
register_method(
    BenchMethod(
        name="o3d-bpa",
        target="recon.bench.baselines:o3d_bpa",
        description="Open3D ball pivoting, radii 1, 2, 4 x mean nearest-neighbour spacing, "
        "normals estimated + oriented by Open3D when absent",
    )
)
