"""reconstruct: what ``recon fit`` does, as one library call.

    from recon import reconstruct
    result = reconstruct("scan.ply", seed=0)   # method="auto": measured, then chosen
    result.decisions[0]                        # Decision("method", "csp", "auto: open one-sided scan, ...")
    result = reconstruct("scan.ply", method="gridpull", seed=0, resolution=256)
    result.write_mesh("scan.mesh.ply")        # atomically; never over an input
    result.field.save("scan.field.npz")

Read (or take) a cloud, pre-process it, fit a field, mesh it. With ``method="auto"`` (the
default) the cloud is measured (``recon.points.measure``) and the fitter chosen from the
measures (``recon.choice``); the choice is the first decision of the Result and is stored
in the field's parameters (``auto_choice``). The CLI, the bench and
batch runs all call this, so a Python user can do everything the command does.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recon.cloud import Cloud
from recon.errors import InputError
from recon.fields.base import Field
from recon.triangles import TriangleMesh

AUTO = "auto"
DEFAULT_METHOD = AUTO
AUTO_METHODS = ("gridpull", "csp")
"The methods auto chooses between; sparse clouds also try ``Choice.alternatives`` (hrbf)."
"The fitters ``method='auto'`` chooses from (recon.choice's rules know these)."
MIN_AUTO_POINTS = 10
"Fewer points than this cannot be measured (spacing and noise need neighbours)."


class EmptySurfaceError(InputError):
    """The fitted field has no surface inside its bounds: nothing to mesh. The input (or
    the settings) gave no surface, so it is the user's to change: exit 2, like bad input."""


@dataclass(frozen=True)
class Decision:
    """One thing the pipeline (or the fitter) decided from the data, and why."""

    name: str
    "What was decided, e.g. ``method`` or ``merged``."
    value: Any
    "The decision: a method name, a count, a flag (JSON-serialisable)."
    reason: str
    "One line a user can read."


@dataclass
class Result:
    """Everything one reconstruction produced.

    field     : the fitted Field (input units); None where the mesh came from the points
                alone (an unsigned field's mesh through the points) and ``fit_field`` was False
    mesh      : TriangleMesh of the field's surface, input units and frame, with vertex
                attribute ``distance_to_data`` and the cloud's colours when it has them
    cloud     : the points that were fitted (after sampling and pre-processing)
    points_in : how many points the input had
    method    : the fitter's name; ``config`` its config dataclass
    device    : where the fit ran ("cpu" or "cuda")
    timings   : seconds: read_s, preprocess_s, choose_s (auto: measuring and choosing),
                fit_s (and the fit's phases), mesh_s, attributes_s, total_s
    decisions : what was decided from the data, in order
    choice    : with method "auto": the choice (method, settings, reasons, evidence) as a dict
    """

    field: Field
    mesh: TriangleMesh
    cloud: Cloud
    points_in: int
    method: str
    config: Any
    device: str
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    decisions: list[Decision] = dataclasses.field(default_factory=list)
    choice: dict | None = None

    def write_mesh(self, path, *, inputs=()) -> Path:
        """Write the mesh to ``path`` (format from the suffix), atomically; refuses to
        overwrite any of ``inputs`` (the cloud's source file is always one)."""
        from recon.io import write_mesh

        guard = list(inputs)
        if os.path.exists(self.cloud.source):
            guard.append(self.cloud.source)
        return write_mesh(self.mesh, path, inputs=guard)

    def summary(self) -> dict:
        """A JSON-serialisable summary (what ``recon fit --json`` prints, paths aside)."""
        config = dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}
        return {
            "method": self.method,
            "device": self.device,
            "points_in": int(self.points_in),
            "points_fitted": int(len(self.cloud)),
            "points_merged": 0 if self.field is None else int(self.field.params.get("merged_points", 0) or 0),
            "vertices": int(self.mesh.n_vertices),
            "faces": int(self.mesh.n_faces),
            "timings": {k: round(float(v), 3) for k, v in self.timings.items()},
            "decisions": [dataclasses.asdict(d) for d in self.decisions],
            **({"auto": self.choice} if self.choice is not None else {}),
            "config": config,
        }


@dataclass(frozen=True)
class Preprocessing:
    """What is done to the points before fitting (all off by default)."""

    sample: int | None = None
    "Fit this many points drawn from the input (area-uniform on a mesh, a random subset of a cloud)."
    voxel_size: float | None = None
    "Down-sample first: one point (the mean) per voxel of this size, input units."
    remove_outliers: bool = False
    "Drop statistical outliers (mean distance to 20 neighbours > mean + 2 std)."

    def check(self) -> None:
        if self.sample is not None and (isinstance(self.sample, bool)
                                        or not isinstance(self.sample, (int, np.integer)) or self.sample < 1):
            raise InputError(f"sample must be a positive integer, got {self.sample!r}")
        if self.voxel_size is not None and not (np.isfinite(self.voxel_size) and self.voxel_size > 0):
            raise InputError(f"voxel_size must be a positive length, got {self.voxel_size}")


def prepare(method: str, *, config=None, seed: int | None = None, device: str | None = None,
            **options):
    """The fitter's spec and config for ``method``, with ``options`` (config fields) applied.

    ``seed`` and ``device`` go into the config when the method has such fields and they
    are given. Unknown options are refused (InputError naming them). Returns (spec, config).
    """
    from recon.fitters import get_fitter, make_config

    spec = get_fitter(method)
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    shared = {k: v for k, v in (("seed", seed), ("device", device)) if v is not None and k in fields}
    if config is None:
        config = make_config(method, **options, **shared)
    elif options or shared:
        config = dataclasses.replace(config, **options, **shared)
    return spec, config


def load_input(source, preprocessing: Preprocessing = Preprocessing(), *, seed: int | None = None):
    """The cloud to fit, from a path or a Cloud: sampled and pre-processed as asked.

    Returns (cloud, points_in, timings) with timings ``read_s`` and ``preprocess_s``."""
    from recon.seeding import rng

    preprocessing.check()
    timings = {}
    t = time.perf_counter()
    draw_seed = 0 if seed is None else int(seed)
    if isinstance(source, Cloud):
        cloud = source
        if preprocessing.sample is not None and preprocessing.sample < len(cloud):
            keep = np.sort(rng(draw_seed).choice(len(cloud), size=int(preprocessing.sample), replace=False))
            cloud = cloud.subset(keep)
        points_in = len(source)
    elif isinstance(source, (str, os.PathLike)):
        from recon.io import read_cloud

        cloud = read_cloud(source, sample=preprocessing.sample, seed=draw_seed)
        points_in = len(cloud)
    else:
        raise InputError(f"source must be a path or a Cloud, got {type(source).__name__}")
    timings["read_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if preprocessing.voxel_size is not None or preprocessing.remove_outliers:
        from recon.points import preprocess

        if preprocessing.voxel_size is not None:
            cloud = preprocess.voxel_downsample(cloud, voxel_size=preprocessing.voxel_size)
        if preprocessing.remove_outliers:
            cloud = preprocess.remove_statistical_outliers(cloud)
    timings["preprocess_s"] = time.perf_counter() - t
    return cloud, points_in, timings


def reconstruct(
    source,
    *,
    method: str = DEFAULT_METHOD,
    config=None,
    sample: int | None = None,
    voxel_size: float | None = None,
    remove_outliers: bool = False,
    min_component: float | None = None,
    seed: int | None = None,
    device: str | None = None,
    progress=None,
    log=None,
    require_surface: bool = True,
    interpolate: bool | None = None,
    fit_field: bool = True,
    subdivide: bool = True,
    **options,
) -> Result:
    """Fit a surface to a point cloud and mesh it.

    source        : a path to a cloud (.ply .pcd .xyz .las .npz ..., or a mesh with
                    ``sample``) or a :class:`~recon.cloud.Cloud`, input units
    method        : a registered fitter (``recon.fitters``), or "auto" (default): measure
                    the cloud and choose (see :func:`choose`); options that only one of
                    the auto methods has choose that one
    config        : the method's config dataclass (with "auto": picks its method);
                    ``options`` replace single fields of it
    sample, voxel_size, remove_outliers : pre-processing, see :class:`Preprocessing`
    min_component : drop mesh pieces with fewer faces than this fraction of the largest;
                    default: the fitter's field kind decides (signed fields drop bubbles)
    seed, device  : the fitter's seed and device ("auto", "cpu", "cuda") when it has them;
                    ``seed`` also seeds ``sample``
    progress      : ``progress(step, total, losses)`` called during the fit
    log           : ``log(line)`` called with lines once the input is read: with "auto"
                    the decision (``auto: <evidence> -> <method>``), then what is fitted,
                    with what, where

    require_surface : raise EmptySurfaceError when the field has no surface to mesh
                    (default); False returns the Result with an empty mesh
    interpolate   : mesh through the points instead of marching the field's grid: with a
                    signed or occupancy field the restricted Delaunay triangulation
                    (:mod:`recon.meshing.through_points`, vertices = the fitted points);
                    with an unsigned field, the points denoised onto their neighbours'
                    planes, triangulated across the scan's direction on a one-sided cloud
                    (:mod:`recon.meshing.height_field`), else between the two sides of the
                    planes (``mesh_open_through_points``, an open mesh); at most 600,000
                    points. None (default): "auto" decides from the data (clean, sparse,
                    one-sided or mildly noisy open samples), a named method meshes as it is
                    registered to (hrbf through the points, the others from the grid)

    fit_field     : fit the field even where the mesh does not need it (an unsigned field's
                    mesh through the points is made from the points alone); False skips
                    that fit (``Result.field`` is then None), as ``recon fit`` does unless
                    ``--save-field`` is given
    subdivide     : a mesh through the points gets one interpolating subdivision step
                    (:mod:`recon.meshing.subdivide`: four faces for one, the new vertices on
                    Hermite curves between the samples; the samples stay vertices) when it
                    predicts held-out points better (:func:`_subdivided_if_it_helps`);
                    False: never

    Every option is checked before the cloud is read (``interpolate``'s point limit only
    after). Raises InputError on bad input.
    """
    from recon.device import resolve_device
    from recon.fitters import fit
    from recon.meshing.marching_cubes import extract_mesh, fit_min_component_fraction
    from recon.meshing.vertex_attributes import attach_vertex_attributes

    t_start = time.perf_counter()
    given_config = config
    if method == AUTO and config is not None:
        method = _method_of_config(config)
    candidates = auto_candidates(options) if method == AUTO else ()
    if method != AUTO:
        spec, config = prepare(method, config=config, seed=seed, device=device, **options)
    preprocessing = Preprocessing(sample=sample, voxel_size=voxel_size, remove_outliers=remove_outliers)
    preprocessing.check()
    if min_component is not None and not 0.0 <= min_component <= 1.0:
        raise InputError(f"min_component must be a fraction in [0, 1], got {min_component}")
    if device is not None and device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {device!r}")

    cloud, points_in, timings = load_input(source, preprocessing, seed=seed)
    decisions: list[Decision] = []
    choice = None
    if method == AUTO:
        t = time.perf_counter()
        choice = choose(cloud, candidates=candidates, options=options)
        timings["choose_s"] = time.perf_counter() - t
        decisions.append(Decision("method", choice.method, choice.line()))
        if log is not None:
            log(choice.line())
        spec, config = prepare(choice.method, seed=seed, device=device, **{**choice.overrides, **options})
    used_device = resolve_device(_config_value(config, "device", device or "auto"))
    from recon.meshing.through_points import LIMITS

    denoise, snap, limits = False, 0, LIMITS
    if interpolate is None:
        plan = _default_meshing(spec, cloud, choice, decisions)
        interpolate, denoise, snap = plan.through, plan.denoise, plan.snap_neighbors
        limits = dataclasses.replace(LIMITS, **plan.limits)
        explicit = False
        if given_config is None and plan.settings:  # the plan's settings, where the caller set none
            config = dataclasses.replace(config, **{k: v for k, v in plan.settings.items() if k not in options})
    else:
        explicit = choice is None
    # how the mesh is made is known before the fit (a refusal costs no fit); an unsigned
    # field's mesh through the points is made from the points alone
    through = interpolate and _through_points(spec.field_kind, cloud, choice=choice, explicit=explicit,
                                              denoise=denoise, decisions=decisions)
    fitting = fit_field or not (through and through != "delaunay")
    if log is not None:
        kept = "" if len(cloud) == points_in else f" ({len(cloud):,} after pre-processing)"
        doing = (f"fitting with {spec.name} on {used_device}" if fitting else
                 f"meshing through the points (no {spec.name} field fitted: --save-field fits one)")
        log(f"{cloud.source}: {points_in:,} points{kept}; {doing}")

    field_ = None
    if fitting:
        phases: dict[str, float] = {}
        t = time.perf_counter()
        field_ = fit(cloud, spec.name, config, progress=progress, timings=phases)
        timings["fit_s"] = time.perf_counter() - t
        timings.update({f"fit_{k}": v for k, v in phases.items()})
        if choice is not None:
            field_.params["auto_choice"] = choice.as_dict()
    else:
        timings["fit_s"] = 0.0
        decisions.append(Decision("field", "not fitted", f"the mesh comes from the points alone, and no {spec.name} "
                                  "field was asked for"))

    t = time.perf_counter()
    if through == "delaunay":
        from recon.meshing.through_points import mesh_through_points

        mesh = mesh_through_points(field_, cloud.points, min_component_fraction=min_component or 0.0, denoise=denoise,
                                   limits=limits)
        if choice is not None and choice.alternatives:
            spec, config, field_, mesh = _nearest_to_data(
                cloud, (spec, config, field_, mesh), choice.alternatives, spacing=choice.evidence["spacing"],
                seed=seed, device=device, min_component=min_component or 0.0, decisions=decisions,
                timings=timings, log=log)
            field_.params["auto_choice"] = choice.as_dict()
    elif through == "open":
        from recon.meshing.through_points import mesh_open_through_points

        mesh = mesh_open_through_points(cloud.points)
    elif through:
        from recon.meshing.height_field import mesh_height_field

        mesh = mesh_height_field(cloud.points, through)
    else:
        if min_component is None:
            min_component = fit_min_component_fraction(field_)
        mesh = extract_mesh(field_, min_component_fraction=min_component)
        if snap and mesh.n_faces:
            mesh = _snapped(mesh, cloud.points, snap)
    if through and subdivide and mesh.n_faces:
        if through == "delaunay":
            def remesh(p):
                return mesh_through_points(field_, p, min_component_fraction=min_component or 0.0, denoise=denoise,
                                           limits=limits)
        elif through == "open":
            remesh = mesh_open_through_points
        else:
            def remesh(p):
                return mesh_height_field(p, through)
        mesh = _subdivided_if_it_helps(mesh, remesh, cloud.points, seed=seed, decisions=decisions)
    timings["mesh_s"] = time.perf_counter() - t
    t = time.perf_counter()
    mesh = attach_vertex_attributes(mesh, cloud)  # colours and distance_to_data from the fitted points
    timings["attributes_s"] = time.perf_counter() - t
    if mesh.n_faces == 0 and require_surface:
        raise EmptySurfaceError(
            f"the fitted field of {cloud.source} has no surface (0 faces); nothing written. "
            f"Try another --resolution or check the input"
        )
    timings["total_s"] = time.perf_counter() - t_start
    return Result(field=field_, mesh=mesh, cloud=cloud, points_in=points_in, method=spec.name, config=config,
                  device=used_device, timings=timings,
                  decisions=decisions + ([] if field_ is None else fitter_decisions(field_)),
                  choice=None if choice is None else choice.as_dict())


HELD_OUT_SHARE = 0.1
"Share of the points held out to tell whether subdividing a mesh through the points predicts the surface between samples."
HELD_OUT_PATCH = 10_000
"Larger clouds are judged on one patch of this many points (the nearest to a random one), so that the test costs a mesh of at most this many (500 held-out points judged: a gain of 3 % on hammer_4views reads t 9 on 1,583, about 5 on 500; 20,000 made the test 1.2 s of occupancy's 5 s there)."
HELD_OUT_T = 2.0
"Subdivide when the held-out points lie nearer the subdivided mesh by at least this many standard errors (a paired t statistic)."


def _subdivided_if_it_helps(mesh: TriangleMesh, remesh, points: np.ndarray, *, seed, decisions: list) -> TriangleMesh:
    """``mesh`` subdivided onto Hermite curves (:mod:`recon.meshing.subdivide`) when that
    predicts the surface between the samples: HELD_OUT_SHARE of the points (seeded; of one
    patch of HELD_OUT_PATCH points on larger clouds) are held out, ``remesh(rest)`` meshes
    the others the same way, and the held-out points' distances to it and to its
    subdivision are compared, point by point. On clean or sparse
    samples of a curved surface the subdivision is nearer (chords sag); through noisy ones
    the Hermite curves follow the noise, and there is no significant gain."""
    from recon.meshing.subdivide import subdivide_hermite
    from recon.metrics import distance_to_faces
    from recon.seeding import rng

    gen = rng(0 if seed is None else int(seed))
    sample = np.asarray(points, np.float64)
    inner = np.ones(len(sample), bool)
    if len(sample) > HELD_OUT_PATCH:
        # one patch at the cloud's own density (a thinner sample would sag more): the
        # points nearest a random one, judged on its inner half, away from the patch's rim
        from scipy.spatial import cKDTree

        centre = sample[gen.integers(len(sample))]
        _, near = cKDTree(sample - centre).query(np.zeros(3), k=HELD_OUT_PATCH)
        sample = sample[near]  # nearest first
        inner = np.arange(len(sample)) < len(sample) // 2
    n = len(sample)
    held = np.zeros(n, bool)
    held[gen.choice(n, max(int(HELD_OUT_SHARE * n), 2), replace=False)] = True
    try:
        rest = remesh(sample[~held])
    except InputError:
        rest = None
    if rest is None or rest.n_faces == 0:
        decisions.append(Decision("subdivide", False, "the mesh of the points left after holding some out was "
                                  "empty: not subdivided"))
        return mesh
    held &= inner
    plain = distance_to_faces(sample[held], rest)
    gain = plain - distance_to_faces(sample[held], subdivide_hermite(rest))
    spread = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
    t = float(gain.mean() / spread) if spread > 0 else 0.0
    helps = t >= HELD_OUT_T
    decisions.append(Decision(
        "subdivide", helps,
        f"{held.sum():,} held-out points lie {gain.mean() / max(plain.mean(), 1e-300):.1%} nearer a Hermite "
        f"subdivision of the others' mesh (paired t {t:.1f}; {HELD_OUT_T:g} needed): "
        + ("subdivided, 4 faces for each" if helps else "not subdivided")))
    return subdivide_hermite(mesh) if helps else mesh


def _nearest_to_data(cloud: Cloud, first: tuple, alternatives: tuple, *, spacing: float, seed, device,
                     min_component: float, decisions: list, timings: dict, log) -> tuple:
    """Fit each of ``alternatives`` too, mesh it (through the points where its field has
    sides, else as its method meshes), and keep the (spec, config, field, mesh) whose mesh
    strays least from the data (mean distance of its surface to the nearest point): a
    surface bridging the wrong samples, or bulging or closing a lid where there are none,
    lies far from them. An alternative that refuses the cloud is passed over. ``spacing``
    (the measured median point spacing, input units) only scales the distances reported."""
    from recon.fitters import fit
    from recon.meshing.marching_cubes import extract_mesh, fit_min_component_fraction
    from recon.meshing.through_points import mesh_through_points
    from recon.metrics import mesh_to_data_mean

    t = time.perf_counter()
    entries = [first] if first[3].n_faces else []
    if not first[3].n_faces:
        decisions.append(Decision("alternative", first[0].name, f"{first[0].name} gave no surface through the points"))
    for method in alternatives:
        if not installed(method):
            continue
        try:
            spec, config = prepare(method, seed=seed, device=device)
            field_ = fit(cloud, method, config)
            if spec.field_kind == "unsigned":  # no sides: meshed as its method meshes
                mesh = extract_mesh(field_, min_component_fraction=fit_min_component_fraction(field_))
            else:
                mesh = mesh_through_points(field_, cloud.points, min_component_fraction=min_component)
        except InputError as exc:
            decisions.append(Decision("alternative", method, f"{method} passed over: {exc}"))
            continue
        if mesh.n_faces:
            entries.append((spec, config, field_, mesh))
    if not entries:
        return first
    stray = [mesh_to_data_mean(e[3], cloud.points) for e in entries]
    best = int(np.argmin(stray))
    scores = ", ".join(f"{e[0].name} {s / (spacing or 1.0):.3f}" for e, s in zip(entries, stray))
    decisions.append(Decision("method", entries[best][0].name,
                              f"the candidates' meshes stray from the data by (mean, in point spacings) {scores}: "
                              f"{entries[best][0].name} kept"))
    if log is not None and len(entries) > 1:
        log(f"auto: mean distance of each candidate's mesh to the data, in spacings: {scores} -> {entries[best][0].name}")
    timings["alternatives_s"] = time.perf_counter() - t
    return entries[best]


def _snapped(mesh: TriangleMesh, points: np.ndarray, neighbors: int) -> TriangleMesh:
    """``mesh`` with its vertices moved onto the weighted planes of their ``neighbors``
    nearest ``points`` (recon.points.preprocess.onto_local_planes); faces unchanged."""
    from recon.meshing.cleanup import vertex_normals
    from recon.points.preprocess import onto_local_planes

    v = onto_local_planes(points, neighbors=neighbors, scale_neighbor=neighbors // 2, queries=mesh.vertices)
    return dataclasses.replace(mesh, vertices=v, vertex_normals=vertex_normals(v, mesh.faces))


def _default_meshing(spec, cloud: Cloud, choice, decisions: list):
    """How to mesh when the caller did not say, as a :class:`recon.choice.MeshPlan`: auto's
    choice, else the fitter's plan (``recon.choice.MESH_PLANS``) from the cloud's measures,
    else its ``interpolates``."""
    from recon.choice import MESH_PLANS, MeshPlan

    if choice is not None:
        return MeshPlan(choice.interpolate)
    if spec.name not in MESH_PLANS or len(cloud) < MIN_AUTO_POINTS:
        return MeshPlan(spec.interpolates)
    from recon.points.measure import measure_cloud

    plan = MESH_PLANS[spec.name](measure_cloud(cloud.points))
    decisions.append(Decision("mesh rule", "through the points" if plan.through else "grid", plan.why))
    return plan


def _through_points(kind: str, cloud: Cloud, *, choice, explicit: bool, decisions: list, denoise: bool = False):
    """How the mesh passes through the points, for a field of ``kind``: "delaunay" (a field with sides: the
    restricted Delaunay triangulation), a direction (3,) (an unsigned field's one-sided
    cloud: a height field along it), "open" (an unsigned field's other clouds: the denoised
    points' open restricted Delaunay mesh), or None (marching the field's grid); says why in
    ``decisions``. An explicit request that cannot be met is refused (InputError); auto's
    falls back to the grid."""
    from recon.meshing.through_points import LIMITS

    if len(cloud) > LIMITS.max_points:
        why = f"a mesh through the points takes at most {LIMITS.max_points:,} points, and {len(cloud):,} were fitted"
    elif kind in ("signed", "occupancy"):
        decisions.append(Decision("mesh", "through the points",
                                  ("vertices are the fitted points moved onto their neighbours' planes"
                                   if denoise else "vertices are the fitted points") +
                                  ", faces the Delaunay triangles the field's surface crosses (restricted Delaunay)"))
        return "delaunay"
    else:
        direction = None if choice is None else choice.height_direction
        if direction is None and explicit:
            from recon.choice import RULES
            from recon.points.measure import measure_cloud

            m = measure_cloud(cloud.points)
            if m.single_layer_share >= RULES.one_sided_share:
                direction = m.layer_direction
        if direction is not None:
            decisions.append(Decision("mesh", "through the points (a height field)",
                                      "vertices are the points moved onto their neighbours' planes, faces their "
                                      "Delaunay triangles across the scan's direction "
                                      f"({', '.join(f'{x:.3f}' for x in direction)})"))
            return tuple(direction)
        decisions.append(Decision("mesh", "through the points (open)",
                                  "vertices are the points moved onto their neighbours' planes, faces the Delaunay "
                                  "triangles between the two sides of those planes"))
        return "open"
    if explicit:
        raise InputError(f"cannot interpolate: {why}; mesh without --interpolate")
    decisions.append(Decision("mesh", "grid", why + ": marching the field's grid instead"))
    return None


def auto_candidates(options: dict) -> tuple[str, ...]:
    """The auto methods that take every one of ``options`` (config field names), in
    AUTO_METHODS order. Refuses (InputError) options that no auto method takes."""
    from recon.fitters import load_all_fitters

    registry = load_all_fitters()
    names = [m for m in AUTO_METHODS if m in registry]
    fields = {m: {f.name for f in dataclasses.fields(registry[m].config_cls)} for m in names}
    fits = tuple(m for m in names if set(options) <= fields[m])
    if not fits:
        unknown = sorted(set(options) - set().union(*fields.values()))
        if unknown:
            raise InputError(f"method 'auto' chooses from {', '.join(names)}, and none has option(s) "
                             f"{', '.join(unknown)}; name the method that has them")
        raise InputError(f"options {', '.join(sorted(options))} belong to different methods "
                         f"({', '.join(names)}); name one method")
    return fits


def installed(method: str) -> bool:
    """Whether ``method``'s optional extra is importable (csp needs torch); nothing is imported."""
    import importlib.util

    return method != "csp" or importlib.util.find_spec("torch") is not None


def choose(cloud: Cloud, *, candidates: tuple[str, ...] = AUTO_METHODS, options: dict | None = None):
    """Measure ``cloud`` and choose among ``candidates`` (a :class:`recon.choice.Choice`).

    When ``options`` narrowed the candidates and the rules chose another method, or the
    rules' method is not installed (csp needs torch), another candidate is taken and the
    choice says why (``overruled``)."""
    from recon.choice import choose_method
    from recon.points.measure import measure_cloud

    if len(cloud) < MIN_AUTO_POINTS:
        raise InputError(f"{cloud.source}: {len(cloud)} points; method 'auto' needs at least {MIN_AUTO_POINTS} "
                         "to measure the cloud")
    choice = choose_method(measure_cloud(cloud.points))
    if choice.method == "gridpull":
        from recon.points.shape_checks import check_encloses_volume

        try:
            check_encloses_volume(cloud.points, method="gridpull", source=cloud.source or "the cloud")
        except InputError:  # flat or collinear: no sides for a signed field
            choice = choice.instead("csp", "the points lie on a plane or a line, which has no inside: csp instead")
    if choice.method not in candidates:
        return choice.instead(candidates[0], f"options {', '.join(sorted(options or ()))} are {candidates[0]}'s")
    if not installed(choice.method):
        others = [m for m in candidates if installed(m)]
        if not others:
            raise InputError(f"method 'auto' chose {choice.method}, which is not installed here: "
                             "pip install 'recon[csp]' (or pip install torch)")
        return choice.instead(others[0], f"{choice.method} needs torch, which is not installed: {others[0]} instead")
    return choice


def _method_of_config(config) -> str:
    """The registered method whose config class ``config`` is an instance of."""
    from recon.fitters import load_all_fitters

    for name, spec in load_all_fitters().items():
        if type(config) is spec.config_cls:
            return name
    raise InputError(f"config {type(config).__name__} belongs to no registered method")


def _config_value(config, name: str, default):
    """A config field's value, or ``default`` when the method's config has no such field."""
    names = {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else set()
    return getattr(config, name) if name in names else default


def fitter_decisions(field_: Field) -> list[Decision]:
    """What the fitter decided from the data, read from the parameters it stored."""
    params = field_.params
    out = []
    merged = int(params.get("merged_points", 0) or 0)
    if merged:
        out.append(Decision("merged", merged,
                            f"fitted to {merged:,} voxel means: the cloud is denser than the grid "
                            "(--merge-cells 0 fits every point)"))
    trimmed = int(params.get("trimmed", 0) or 0)
    if trimmed:
        out.append(Decision("trimmed", trimmed,
                            f"{trimmed:,} points outside the noise band of a thin surface were left out"))
    if params.get("surface_decided"):
        decided = str(params["surface_decided"])
        out.append(Decision("surface", decided,
                            f"{decided}: whether the surface encloses a volume, judged from the fitted field"))
    return out
