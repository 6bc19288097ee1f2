"""Which fitter suits a cloud: ``choose_method(measures) -> Choice``.

The rules read :class:`~recon.points.measure.CloudMeasures` only through scale-free
quantities (shares of cells or points, samples across the cloud, noise in spacings), and
their thresholds live in :class:`ChoiceRules`. What they encode:

- gridpull fits a signed distance grid: its surface is always closed and watertight, and
  its smoothing averages noise away. It is the fitter for a surface that seals a volume
  and is sampled densely enough that no part is only a few samples thick, with no
  surfaces inside that volume (its inside is one solid).
- Where the samples are clean (noise a small share of their spacing) or sparse, the
  gridpull field only tells the sides, and the mesh passes through the points: the
  restricted Delaunay triangulation (:mod:`recon.meshing.through_points`). Clean samples
  lie on the surface, so smoothing them only costs accuracy; sparse ones are too few for any
  field to place the surface between them better than a triangle through them, and a
  signed field's sides keep the shape closed where a closest-point field tears.
- csp fits an unsigned closest-point field: open surfaces keep their boundaries, and thin
  parts are not smoothed shut. It is the fitter for everything else: open sheets,
  one-sided scans and terrain, scenes, closed objects scanned with holes or holding inner
  surfaces, sparse clouds.
  On a closed, dense cloud it costs a little accuracy; gridpull on open data costs a lot
  (lids and blobs), so when the evidence is unclear csp is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recon.points.measure import CloudMeasures


@dataclass(frozen=True)
class ChoiceRules:
    """Thresholds of :func:`choose_method`, all scale-free."""

    sealed_share: float = 0.1
    "A cloud encloses a volume when at least this share of its occupied and enclosed cells are enclosed: a closed surface's interior is a large part of its hull, a leaking one keeps only stray sealed pockets."
    inner_share: float = 0.02
    "More than this share of the points inside the enclosed volume (not stray points) are surfaces a signed field cannot hold: its inside is one solid."
    dense_system_points: int = 800
    "Sparse clouds of at most this many points are also fitted with hrbf (its dense system grows as N^2 in memory and N^3 in time: about 0.2 GB and seconds at 800), and the mesh that strays less from the data is kept."
    sparse_samples_across: float = 60.0
    "Fewer samples than this across the diagonal is sparse: a part a twentieth of the cloud's size is then about three samples wide, which a signed grid's smoothing closes."
    one_sided_share: float = 0.9
    "Single-layer projection cells along the best direction at or above this share make a height field or a one-view scan."
    scene_pieces: int = 3
    "At least this many separate pieces (each with a share of the points) make a scene rather than an object."
    scene_spacing_spread: float = 6.0
    "A nearest-neighbour spread (90th / 10th percentile) above this is a density falling off with range, as in a LiDAR sweep; sampled objects stay below 5."
    noisy_spacings: float = 0.25
    "Noise above this many surface spacings is called noisy in the description (only words, no rule depends on it)."
    clean_spacings: float = 0.1
    "Noise below this many surface spacings is clean: the samples lie on the surface to a tenth of their spacing, closer than any smoothing field puts it, so a closed object's mesh passes through them."
    open_through_spacings: float = 0.5
    "Open (not sealed, no inner surfaces) clouds with noise below this many spacings are meshed through their points denoised onto their neighbours' planes (a 16-point fit takes the noise to a fraction of a spacing); noisier ones keep csp's own mesh (on the bench: open scans 0.16 to 0.44 spacings, where the points' mesh was better, CAD scans 1.0 to 1.5, where csp's was). Occupancy fields of dense clouds follow the same line (:func:`occupancy_meshing`)."


RULES = ChoiceRules()


@dataclass
class Choice:
    """What :func:`choose_method` decided."""

    method: str
    "The fitter's registered name."
    overrides: dict = field(default_factory=dict)
    "Config fields of that fitter set by the choice (explicit options still win)."
    reasons: list = field(default_factory=list)
    "Why, as short phrases."
    evidence: dict = field(default_factory=dict)
    "The measures the rules read (JSON-serialisable)."
    kind: str = ""
    "The cloud as the rules see it, e.g. 'open one-sided scan' or 'closed object'."
    overruled: str = ""
    "Why the rules' method was not taken (not installed, or options of another method given); empty when it was."
    interpolate: bool = False
    "Mesh through the points (restricted Delaunay, labelled by the signed field) rather than from the field's grid."
    alternatives: tuple = ()
    "Other methods fitted too, each meshed through the points; the mesh that strays least from the data is kept."
    height_direction: tuple | None = None
    "One-sided clouds: the direction they are a height field along; with ``interpolate`` the mesh passes through the denoised points, triangulated across it (recon.meshing.height_field)."

    def line(self) -> str:
        """One line: ``auto: <kind>, noise ..., N points -> <method>[, surface]``."""
        ev = self.evidence
        target = self.method
        if self.method == "csp" and self.interpolate:
            target += ", open mesh through the points" + (" (a height field)" if self.height_direction else "")
        elif self.overrides.get("surface") == "open":
            target += ", open mesh"
        elif self.method == "gridpull":
            target += ", closed mesh" + (" through the points" if self.interpolate else "")
            if self.alternatives:
                target = f"{target} (or {', '.join(self.alternatives)}, whichever strays less from the data)"
        elif self.method == "csp":
            target += ", open or closed from the fitted field"
        percent = 100 * ev["noise_fraction"]
        if percent < 0.001:
            noise = "noise below 0.001 %"
        elif self.kind.startswith("sparse"):  # between sparse samples the shape itself counts as noise
            noise = f"noise at most {percent:.2g} %"
        else:
            noise = f"noise {percent:.2g} %"
        text = f"auto: {self.kind}, {noise} of the diagonal, {ev['points']:,} points -> {target}"
        if self.overruled:
            text += f" ({self.overruled})"
        return text

    def instead(self, method: str, why: str) -> "Choice":
        """This choice with ``method`` taken instead (its settings dropped), saying ``why``."""
        return Choice(method=method, overrides={}, reasons=[*self.reasons, why], evidence=dict(self.evidence),
                      kind=self.kind, overruled=why, interpolate=False, alternatives=(), height_direction=None)

    def as_dict(self) -> dict:
        return {"method": self.method, "overrides": dict(self.overrides), "kind": self.kind,
                "reasons": list(self.reasons), "overruled": self.overruled, "interpolate": self.interpolate,
                "alternatives": list(self.alternatives), "evidence": dict(self.evidence),
                "height_direction": None if self.height_direction is None else list(self.height_direction)}


def choose_method(measures: CloudMeasures, *, rules: ChoiceRules = RULES) -> Choice:
    """The fitter (and a few of its settings) for a cloud with these measures: "gridpull"
    or "csp". Whether it is installed is the caller's business (:meth:`Choice.instead`)."""
    m = measures
    # sealed: enough is enclosed, and no more at coarser cells (a surface with holes about
    # as wide as the cells encloses more once they are coarser; a sealed one less, its shell thickening)
    sealed = m.enclosed_share >= rules.sealed_share and m.enclosed_share >= m.enclosed_share_coarse
    leaks_wider = not sealed and max(m.enclosed_share, m.enclosed_share_coarse) >= rules.sealed_share
    inner = sealed and m.inner_share > rules.inner_share
    sparse = m.samples_across < rules.sparse_samples_across
    one_sided = not sparse and not sealed and m.single_layer_share >= rules.one_sided_share
    scene = not sealed and (m.components >= rules.scene_pieces or m.spacing_spread > rules.scene_spacing_spread)
    noisy = m.noise_spacings > rules.noisy_spacings
    clean = m.noise_spacings < rules.clean_spacings

    reasons = []
    overrides: dict[str, Any] = {}
    interpolate = False
    height_direction = None
    alternatives: tuple = ()
    if sparse:
        method, interpolate = "gridpull", True
        reasons.append(f"sparse ({m.samples_across:.0f} samples across): the mesh passes through the samples, "
                       "a signed field telling its sides")
        if m.points <= rules.dense_system_points:
            alternatives = ("hrbf",)
            reasons.append("few enough points for hrbf's smoothest interpolant too: the mesh nearer the data is kept")
    elif sealed and not inner:
        method = "gridpull"
        reasons.append(f"the points seal a volume ({m.enclosed_share:.0%} of the hull enclosed at "
                       f"{m.enclosure_cell_spacings:.0f} spacings)")
        reasons.append(f"densely sampled ({m.samples_across:.0f} samples across)")
        if clean:
            interpolate = True
            reasons.append(f"clean (noise {m.noise_spacings:.2f} spacings): the mesh passes through the samples")
    elif clean and not (one_sided or scene or inner):
        # clean samples that enclose nothing at the measuring cells: an open surface, or a
        # closed one sampled unevenly (gaps wider than random sampling leaves); both readings
        # are fitted and the one whose mesh lies nearer the data is kept
        method, interpolate, alternatives = "gridpull", True, ("csp",)
        reasons.append(f"clean (noise {m.noise_spacings:.2f} spacings) but enclosing no volume at "
                       f"{m.enclosure_cell_spacings:.0f} spacings ({m.enclosed_share:.0%}, {m.enclosed_share_coarse:.0%} "
                       "at coarser cells): open, or closed and unevenly sampled")
        reasons.append("gridpull through the points and csp are both fitted: the mesh nearer the data is kept")
    else:
        method = "csp"
        if inner:
            reasons.append(f"surfaces inside the enclosed volume ({m.inner_share:.0%} of the points), "
                           "which a signed field's solid inside would drop")
        if leaks_wider:
            reasons.append(f"holes or thin walls about as wide as the cells ({m.enclosed_share:.0%} of the hull "
                           f"enclosed at {m.enclosure_cell_spacings:.0f} spacings, {m.enclosed_share_coarse:.0%} "
                           "at coarser cells)")
        elif not sealed:
            reasons.append(f"the points enclose no volume ({m.enclosed_share:.1%} of the hull at "
                           f"{m.enclosure_cell_spacings:.0f} spacings)")
        if one_sided:
            reasons.append(f"one-sided ({m.single_layer_share:.0%} of the cells one layer deep)")
            interpolate, height_direction = True, tuple(float(x) for x in m.layer_direction)
            reasons.append("a height field along the scan's direction: the mesh passes through the denoised points")
        elif not (sealed or inner) and m.noise_spacings < rules.open_through_spacings:
            interpolate = True
            reasons.append(f"noise {m.noise_spacings:.2f} spacings: the mesh passes through the points denoised "
                           "onto their neighbours' planes")
        if scene:
            reasons.append(f"a scene ({m.components} pieces, spacing spread {m.spacing_spread:.1f})")
        if one_sided or scene:
            overrides["surface"] = "open"

    if one_sided:
        kind = "open one-sided scan"
    elif scene:
        kind = "open scene"
    elif inner:
        kind = "closed object with inner surfaces"
    elif sealed:
        kind = "closed object"
    elif leaks_wider:
        kind = "object with holes or thin walls"
    else:
        kind = "open surface"
    if sparse and not sealed:  # random gaps between few samples leak: open or closed is not told
        kind = "cloud"
    kind = ("noisy " if noisy and not sparse else "clean " if clean else "") + kind
    if sparse:
        kind = "sparse " + kind

    evidence = {k: v for k, v in m.as_dict().items() if k not in ("layer_direction", "measured_points")}
    return Choice(method=method, overrides=overrides, reasons=reasons, evidence=evidence, kind=kind,
                  interpolate=interpolate, alternatives=alternatives, height_direction=height_direction)


@dataclass(frozen=True)
class MeshPlan:
    """How a field of a given cloud is meshed (see :func:`occupancy_meshing`)."""

    through: bool
    "Through the points (restricted Delaunay), not marching the field's grid."
    denoise: bool = False
    "Through the points moved onto their neighbours' planes first."
    snap_neighbors: int = 0
    "Marched: the vertices then moved onto the weighted planes of this many nearest points (0: left where the field put them)."
    why: str = ""
    settings: dict = field(default_factory=dict)
    "Fields of the fitter's config the plan sets (options the caller gives win)."
    limits: dict = field(default_factory=dict)
    "Fields of recon.meshing.through_points.ThroughPointsLimits the plan sets (through the points)."


SNAP_NOISE_LEFT = 0.125
"A snapped vertex's plane is fitted to enough points that the noise left in it, sigma / sqrt(k), is this many spacings: the residual a 16-point fit leaves at the ``open_through_spacings`` line of half a spacing, so both sides of that line end equally near the data."
SNAP_MAX_NEIGHBORS = 128
"Past this many points a plane spans enough of a curved part that its sagitta outweighs the noise it averages."


def occupancy_meshing(measures: CloudMeasures, *, rules: ChoiceRules = RULES) -> MeshPlan:
    """How an occupancy field of a cloud with these measures is meshed when the caller does
    not say.

    The occupancy network's features sit on a coarse grid (48 nodes across at most), so its
    0.5 level is smoother than the data wherever the samples are clean or sparse, and it is
    then better used only to tell the sides of the points' restricted Delaunay triangulation
    (recon.meshing.through_points): sparse or clean samples are its vertices as they are;
    mildly noisy dense ones (below ``open_through_spacings``) are first moved onto their
    neighbours' planes, which takes the noise to a fraction of a spacing. Noisier clouds are
    meshed from the field's 0.5 level (marching cubes; through points that far off the
    surface the triangles' normals scatter), and the vertices then snapped onto the planes of
    their nearest points, as many as average the noise down to ``SNAP_NOISE_LEFT`` spacings:
    the field gives the shape's topology and rough place, the data its exact place."""
    m = measures
    # sparse samples' own planes label the circumcentres within tangent_reach spacings of
    # them, most of the volume: the field only labels the rest and seeds the planes'
    # orientation, for which the prior's node grid and a short refinement serve (on the
    # bench's five sparse clouds 50 steps on the prior's grid met 100 on the finer one, at
    # half the time). So it does through mildly noisy dense samples, whose noise a finer grid
    # only fits (hammer_4views 8.3e-4 either way, scorpion_noisy 3.8e-4 fine, 3.5e-4 coarse,
    # the refinement in half the time). Through clean dense samples the field's gradient seeds the
    # orientation by thin parts a coarse grid does not resolve (cow_clean 7.3e-5 fine,
    # 1.3e-4 coarse).
    coarse = {"upsample": 1, "iterations": 50}
    # and the field seeds the planes' orientation at every sample: spread along a tree of so
    # few samples, orientation jumps across thin parts (goathead_sparse 1.4e-3 seeded
    # everywhere, 2.0e-3 seeded where the field is steep, as dense clouds are)
    seeded = {"occupancy_seed_gradient": 0.0}
    if m.samples_across < rules.sparse_samples_across:
        return MeshPlan(True, settings=coarse, limits=seeded, why=f"sparse ({m.samples_across:.0f} samples across): the mesh "
                        "passes through the samples, the field telling its sides")
    if m.noise_spacings < rules.clean_spacings:
        return MeshPlan(True, why=f"clean (noise {m.noise_spacings:.2f} spacings): the mesh passes "
                        "through the samples, the field telling its sides")
    if m.noise_spacings < rules.open_through_spacings:
        return MeshPlan(True, denoise=True, settings=coarse, why=f"noise {m.noise_spacings:.2f} spacings: the mesh "
                        "passes through the points denoised onto their neighbours' planes, the field telling its sides")
    k = int(min(SNAP_MAX_NEIGHBORS, max(16, round((m.noise_spacings / SNAP_NOISE_LEFT) ** 2))))
    return MeshPlan(False, snap_neighbors=k, why=f"noise {m.noise_spacings:.2f} spacings: the field's 0.5 level, "
                    f"marched, its vertices snapped onto the planes of their {k} nearest points")


MESH_PLANS = {"occupancy": occupancy_meshing}
"Fitters whose mesh is planned from the cloud's measures when neither auto nor the caller says how to mesh (the others follow their FitterSpec.interpolates)."
