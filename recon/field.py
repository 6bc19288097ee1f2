"""The Field protocol: what every fitter returns and every consumer takes.

A field is a scalar function of position in the user's own units. ``kind`` says what
the value means:

- ``"signed"``: signed distance, negative inside, surface at ``level`` (0);
- ``"unsigned"``: distance to the surface, surface at ``level`` (0), no inside;
- ``"occupancy"``: probability of being inside, surface at ``level`` (0.5).

Every method takes ``x``: (N, 3) float array in input units, and returns float32 arrays.
Files are one self-describing ``.npz`` (format name and version, the field's class, its
arrays, the normalisation used to fit it and the fitting parameters as JSON); loading
never unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from recon.cloud import Normalization
from recon.errors import InputError

FieldKind = Literal["signed", "unsigned", "occupancy"]
FIELD_KINDS = ("signed", "unsigned", "occupancy")
FORMAT_NAME = "recon.field"
FORMAT_VERSION = 1


@runtime_checkable
class Field(Protocol):
    kind: FieldKind
    level: float

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


def check_points(x, *, name: str = "x") -> np.ndarray:
    """Validate (N, 3) query points and return them as a float64 C-contiguous array."""
    arr = np.asarray(x)
    if arr.ndim == 1 and arr.shape == (3,):
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{name} must be (N, 3), got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a float array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


class SignedDistanceGrid:
    """A distance field sampled on a regular grid, trilinearly interpolated.

    values     : (X, Y, Z) float32, input units; node (i, j, k) sits at
                 ``origin + (i, j, k) * voxel_size``
    origin     : (3,) float64, input units
    voxel_size : float, input units
    kind       : "signed" (default) or "unsigned"
    normalization : the transform the fitter used (kept for provenance), or None
    params     : the fitting parameters, JSON-serialisable, or {}

    Outside the grid the value is the value at the nearest grid point plus the distance
    to the grid's box, so it never creates a surface there.
    """

    def __init__(
        self,
        values: np.ndarray,
        origin,
        voxel_size: float,
        *,
        kind: FieldKind = "signed",
        level: float = 0.0,
        normalization: Normalization | None = None,
        params: dict | None = None,
    ):
        values = np.asarray(values)
        if values.ndim != 3 or min(values.shape) < 2:
            raise InputError(f"values must be (X, Y, Z) with every side >= 2, got {values.shape}")
        if kind not in ("signed", "unsigned"):
            raise InputError(f"kind must be 'signed' or 'unsigned' for a distance grid, got {kind!r}")
        if not (np.isfinite(voxel_size) and voxel_size > 0):
            raise InputError(f"voxel_size must be a positive number, got {voxel_size}")
        self.values = np.ascontiguousarray(values, dtype=np.float32)
        self.origin = np.asarray(origin, dtype=np.float64).reshape(3)
        self.voxel_size = float(voxel_size)
        self.kind = kind
        self.level = float(level)
        self.normalization = normalization
        self.params = dict(params or {})

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape)

    @property
    def bounds(self) -> np.ndarray:
        hi = self.origin + (np.array(self.values.shape) - 1) * self.voxel_size
        return np.stack([self.origin, hi])

    def value(self, x) -> np.ndarray:
        from recon.kernels.trilinear import trilinear_value

        return trilinear_value(self.values, self.origin, self.voxel_size, check_points(x))

    def gradient(self, x) -> np.ndarray:
        from recon.kernels.trilinear import trilinear_value_grad

        return trilinear_value_grad(self.values, self.origin, self.voxel_size, check_points(x))[1]

    def closest_point(self, x, *, max_steps: int = 64, tol: float = 1e-4) -> np.ndarray:
        """Project by ``x - (f - level) * grad / |grad|`` until ``|f - level|`` is below
        ``tol`` voxels (or ``max_steps``). Off the band the value is a lower bound of the
        distance, so far points take several steps; none overshoots."""
        from recon.kernels.trilinear import trilinear_value_grad

        p = check_points(x).copy()
        active = np.arange(len(p))
        for _ in range(max_steps):
            f, g = trilinear_value_grad(self.values, self.origin, self.voxel_size, p[active])
            d = f - self.level
            norm = np.linalg.norm(g, axis=1)
            norm[norm < 1e-12] = 1.0
            p[active] -= (d / norm)[:, None] * g
            active = active[np.abs(d) > tol * self.voxel_size]
            if not len(active):
                break
        return p

    def _arrays(self) -> dict:
        return {"values": self.values, "origin": self.origin, "voxel_size": np.float64(self.voxel_size)}

    @classmethod
    def _from_arrays(cls, arrays: dict, **common) -> "SignedDistanceGrid":
        return cls(arrays["values"], arrays["origin"], float(arrays["voxel_size"]), **common)

    def save(self, path) -> Path:
        return save_field(self, path)

    def __repr__(self) -> str:
        return (
            f"SignedDistanceGrid(kind={self.kind!r}, shape={self.shape}, "
            f"voxel_size={self.voxel_size:.6g}, bounds={self.bounds.tolist()})"
        )


# Field classes that can be loaded by name. A new field class adds itself here with
# `register_field_class`; loading dispatches on the name stored in the file.
_FIELD_CLASSES: dict[str, type] = {"SignedDistanceGrid": SignedDistanceGrid}


def register_field_class(cls: type) -> type:
    """Class decorator: make ``cls`` loadable by :func:`load_field`.

    The class provides ``_arrays() -> dict[str, ndarray]`` and
    ``_from_arrays(arrays, kind=, level=, normalization=, params=)``.
    """
    _FIELD_CLASSES[cls.__name__] = cls
    return cls


def save_field(field, path) -> Path:
    """Write ``field`` to ``path`` (.npz), atomically: a temporary file then a rename."""
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
            np.savez_compressed(fh, **payload)
    return path


def load_field(path) -> Field:
    """Read a field written by :func:`save_field` (any registered field class)."""
    from recon.io._common import load_numpy, numpy_error

    path = Path(path)
    data = load_numpy(path)
    if not hasattr(data, "files"):
        raise InputError(f"{path}: not a recon field file (a single .npy array, not an .npz archive)")
    try:
        with data:
            contents = {k: data[k] for k in data.files}
    except Exception as exc:  # truncated members, pickled objects
        raise numpy_error(path, exc) from None
    if str(contents.get("format", "")) != FORMAT_NAME:
        raise InputError(f"{path}: not a recon field file (no '{FORMAT_NAME}' format marker)")
    version = int(contents["format_version"])
    if version > FORMAT_VERSION:
        raise InputError(f"{path}: field format version {version} is newer than this recon reads ({FORMAT_VERSION})")
    name = str(contents["field_class"])
    cls = _FIELD_CLASSES.get(name)
    if cls is None:
        _import_field_plugins()
        cls = _FIELD_CLASSES.get(name)
    if cls is None:
        raise InputError(f"{path}: unknown field class {name!r}")
    scale = float(contents["norm_scale"])
    norm = Normalization(contents["norm_center"], scale) if scale > 0 else None
    arrays = {k[2:]: v for k, v in contents.items() if k.startswith("a_")}
    return cls._from_arrays(
        arrays,
        kind=str(contents["kind"]),
        level=float(contents["level"]),
        normalization=norm,
        params=json.loads(str(contents["params_json"])),
    )


def _import_field_plugins() -> None:
    # Field classes defined next to their fitters register on import.
    import recon.closest_point_grid  # noqa: F401  (ClosestPointGrid: baked closest-point fields)
    import recon.sparse_closest_point_grid  # noqa: F401  (SparseClosestPointGrid: the same, near the surface only)
    from recon.fitters import load_all_fitters

    load_all_fitters()
