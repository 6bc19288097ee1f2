"""Fitter registry: a name -> (config dataclass, fit function, description).

A fitter is one module in this package that calls :func:`register` at import time::

    @dataclass
    class MyConfig:
        iterations: int = 100
        "Optimisation steps."          # <- one-line docstring: becomes the --help text

    def fit_my(cloud: Cloud, config: MyConfig, *, progress=None, timings=None) -> Field: ...

    register(FitterSpec("my", MyConfig, fit_my, "one line for --help and the bench"))

Every module here is imported by :func:`load_all_fitters`, so the CLI's ``--method``,
the bench and the registry smoke test pick a new fitter up with no other edit.

Config convention, read by ``recon fit`` (``recon.cli._config_options``): every field of
every registered config becomes an option ``--field-name`` (underscores to dashes), its
type from the annotation (int, float, str, bool -> ``--x/--no-x``, ``Literal[...]`` of
strings -> a choice, ``X | None`` -> X, fixed-length tuples), its help from the string
literal on the line after the field, or from ``dataclasses.field(metadata={"help": ...})``
(which wins). Fields named ``seed`` and ``device`` are fed by the command's own ``--seed``
and ``--device``. Keep module-level imports light (no numba, torch, open3d): the registry
is loaded whenever the ``recon`` command starts.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from recon.errors import InputError


class Progress(Protocol):
    def __call__(self, step: int, total: int, losses: dict[str, float]) -> None:
        """Called after optimisation step ``step`` (1-based) of ``total``."""


@dataclass(frozen=True)
class FitterSpec:
    name: str
    config_cls: type
    fit: Callable[..., Any]
    description: str
    min_points: int = 10
    "Fewer input points than this is refused with a clear message."
    needs_volume: bool = False
    "The method fits closed surfaces only: clouds on a plane or a line are refused before fitting."
    interpolates: bool = False
    "Its fields are meshed through the points by default (restricted Delaunay; --no-interpolate marches the grid)."
    field_kind: str = "signed"
    "The kind of the fields it returns (signed, unsigned or occupancy): what can be done with them is known before fitting."


_REGISTRY: dict[str, FitterSpec] = {}


def register(spec: FitterSpec) -> FitterSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"fitter {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def load_all_fitters() -> dict[str, FitterSpec]:
    """Import every fitter module in this package; return the registry."""
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return dict(_REGISTRY)


def get_fitter(name: str) -> FitterSpec:
    registry = load_all_fitters()
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise InputError(f"unknown method {name!r}; known methods: {known}")
    return registry[name]


def make_config(name: str, **overrides) -> Any:
    """The fitter's config with ``overrides`` applied; unknown keys are refused."""
    spec = get_fitter(name)
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(f"method {name!r} has no option(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}")
    return spec.config_cls(**overrides)


def fit(cloud, method: str = "gridpull", config=None, *, progress: Progress | None = None,
        timings: dict | None = None, **overrides):
    """Fit ``cloud`` with the named method and return its Field.

    ``config`` is the method's config dataclass (default: its defaults); keyword
    ``overrides`` replace single fields of it. ``timings``, when given, receives the
    seconds of the fit's phases (``setup_s``, ``optimise_s``, ...).
    """
    spec = get_fitter(method)
    if config is None:
        config = make_config(method, **overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    if len(cloud) < spec.min_points:
        raise InputError(
            f"{cloud.source}: {len(cloud)} points; method {method!r} needs at least {spec.min_points}"
        )
    if spec.needs_volume:
        from recon.points.shape_checks import check_encloses_volume

        check_encloses_volume(cloud.points, method=method, source=cloud.source or "the cloud")
    return spec.fit(cloud, config, progress=progress, timings=timings)
