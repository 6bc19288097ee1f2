"""The Field protocol (what every fitter returns and every consumer takes) and the file writer.

A field is a scalar function of position in the user's own units. ``kind`` says what
the value means:

- ``"signed"``: signed distance, negative inside, surface at ``level`` (0);
- ``"unsigned"``: distance to the surface, surface at ``level`` (0), no inside;
- ``"occupancy"``: probability of being inside, surface at ``level`` (0.5).

Every method takes ``x``: (N, 3) float array in input units, and returns float32 arrays.
Beyond ``Field``, a field class may offer capabilities, each a small protocol below that
it implements or not, so that consumers test ``isinstance(field, Capability)`` instead of
probing for attributes: samples on a regular grid (:class:`GridSamples`), closest-point
offsets on a dense grid (:class:`ClosestPointOffsets`) or in sparse bricks
(:class:`SparseBricks`), a data-support mask (:class:`HasSupport`), a surface tolerance
(:class:`HasSurfaceTolerance`), baking onto a grid (:class:`Bakeable`), and projection onto
the data it was fitted to (:class:`ProjectsOntoData`).

Files are one self-describing ``.npz`` (format name and version, the field's class, its
arrays, the normalisation used to fit it and the fitting parameters as JSON); loading
never unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from recon.errors import InputError

if TYPE_CHECKING:
    from recon.cloud import Normalization

FieldKind = Literal["signed", "unsigned", "occupancy"]
FIELD_KINDS = ("signed", "unsigned", "occupancy")
FORMAT_NAME = "recon.field"
FORMAT_VERSION = 1


@runtime_checkable
class Field(Protocol):
    """What every fitter returns and every consumer may rely on."""

    kind: FieldKind
    level: float
    params: dict
    "The fitting parameters and what the fitter decided (JSON-serialisable; {} when none)."
    normalization: Normalization | None
    "The transform between input units and the fitting cube, or None (analytic fields)."

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) float64: min and max corner of where the field is defined, input units."""

    def value(self, x: np.ndarray) -> np.ndarray:
        """(N, 3) points -> (N,) float32 field values (input units for distances)."""

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """(N, 3) points -> (N, 3) float32 spatial gradient of the value."""

    def closest_point(self, x: np.ndarray) -> np.ndarray:
        """(N, 3) points -> (N, 3) float64 closest points on the surface, input units."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write the field to one ``.npz`` file (atomically) and return its path."""


@runtime_checkable
class RegularGrid(Protocol):
    """A field stored at the nodes of a regular grid: node (i, j, k) sits at
    ``origin + (i, j, k) * voxel_size``."""

    origin: np.ndarray
    "(3,) float64 position of node (0, 0, 0), input units."
    voxel_size: float
    "Node spacing, input units."

    @property
    def shape(self) -> tuple[int, int, int]:
        """Nodes along each axis."""


@runtime_checkable
class GridSamples(RegularGrid, Protocol):
    """Scalar field values at the grid's nodes, which kernels read directly."""

    values: np.ndarray
    "(X, Y, Z) float32 field values at the nodes."


@runtime_checkable
class ClosestPointOffsets(RegularGrid, Protocol):
    """Closest-point offsets at every node of a dense grid."""

    offsets: np.ndarray
    "(X, Y, Z, 3) float32: closest surface point minus the node, input units."


@runtime_checkable
class SparseBricks(RegularGrid, Protocol):
    """Closest-point offsets in bricks near the surface, a distance bound elsewhere
    (layout: :mod:`recon.fields.sparse_closest_point_grid`)."""

    table: np.ndarray
    "(BX, BY, BZ) float32: a brick index per block, or a negative distance bound."
    bricks: np.ndarray
    "(3, K * (B + 1), B + 1, B + 1) float32 offsets, input units."
    brick: int
    "Cells along a brick's side (B)."


@runtime_checkable
class HasSupport(Protocol):
    """A fitted field that knows where its data supports it; elsewhere its surface is a guess."""

    def supported(self, x: np.ndarray) -> np.ndarray:
        """(N, 3) points -> (N,) bool: whether the data supports the field at x."""


@runtime_checkable
class HasSurfaceTolerance(Protocol):
    """A fitted field whose surface is only as sharp as its fit."""

    @property
    def surface_tolerance(self) -> float:
        """Input units (0 for exact fields): a ray this near the surface counts as on it."""


@runtime_checkable
class Bakeable(Protocol):
    """A field that is slow to evaluate and can be sampled onto a grid that kernels read."""

    def bake(self, resolution: int = 256, *, bounds=None, sparse: bool = True) -> Field:
        """The field sampled with ``resolution`` nodes along the longest side of ``bounds``."""


@runtime_checkable
class ProjectsOntoData(Protocol):
    """A field that may keep the data it was fitted to and project points onto it."""

    @property
    def keeps_data(self) -> bool:
        """Whether the field keeps its data (``onto_data`` returns x unchanged otherwise)."""

    def onto_data(self, x: np.ndarray) -> np.ndarray:
        """(N, 3) points near the surface -> (N, 3) float64 feet on the data's local planes."""


def save_field(field, path) -> Path:
    """Write ``field`` to ``path`` (.npz), atomically: a temporary file then a rename.

    The same field always gives the same bytes: the archive's members carry a fixed
    timestamp and come in a fixed order, and the parameters are JSON with sorted keys.
    """
    from recon.io.atomic import atomic_path

    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"a field is saved as .npz, got {path.name!r}")
    norm = field.normalization
    payload = {
        "format": np.array(FORMAT_NAME),
        "format_version": np.int64(FORMAT_VERSION),
        "field_class": np.array(type(field).__name__),
        "kind": np.array(field.kind),
        "level": np.float64(field.level),
        "params_json": np.array(json.dumps(field.params, sort_keys=True, default=str)),
        "norm_center": np.zeros(3) if norm is None else np.asarray(norm.center, np.float64),
        "norm_scale": np.float64(0.0 if norm is None else norm.scale),
    }
    for key, arr in field._arrays().items():
        payload["a_" + key] = arr
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            write_npz(fh, payload)
    return path


ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
"The timestamp of every member of a saved field (the earliest a zip can hold)."


def write_npz(fh, arrays: dict) -> None:
    """Write ``arrays`` to the binary file ``fh`` as a compressed .npz that ``np.load``
    reads, byte for byte the same for the same arrays (fixed member timestamps)."""
    import zipfile

    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with archive.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def network_frame(arrays: dict, normalization, box, *, what: str, check) -> tuple[dict, object, np.ndarray]:
    """What a network field's constructor keeps: its arrays as NumPy arrays, its
    normalisation (input units <-> fitting cube) and its (2, 3) float64 box in input units
    (by default its encoding box ``arrays["enc_box"]`` carried to input units). Refuses
    (InputError, naming ``what``) a missing normalisation, then whatever ``check(arrays)``
    refuses."""
    from recon.errors import InputError

    if normalization is None:
        raise InputError(f"{what} needs its normalisation (input units <-> fitting cube)")
    check(arrays)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    if box is None:
        box = normalization.to_world(np.asarray(arrays["enc_box"], np.float64))
    return arrays, normalization, np.asarray(box, np.float64).reshape(2, 3)
