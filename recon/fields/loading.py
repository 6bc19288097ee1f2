"""load_field: read any field file written by :func:`recon.fields.base.save_field`.

The file names its class; the table below lists every class this recon can load, so the
loader needs no registration side effects. Before any array reaches a class (or a numba
kernel, which does not check its indices), every entry of the file is checked against the
format: present, of the declared shape (dimensions that must agree, agree) and dtype, and
finite. A file that fails is an InputError naming the entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recon.cloud import Normalization
from recon.errors import InputError
from recon.fields.base import FORMAT_NAME, FORMAT_VERSION, Field
from recon.fields.closest_point_grid import ClosestPointGrid
from recon.fields.closest_point_network import ClosestPointField
from recon.fields.grid import SignedDistanceGrid
from recon.fields.hermite_rbf import HermiteRBFField
from recon.fields.occupancy_network import OccupancyField, OccupancyGrid
from recon.fields.sparse_closest_point_grid import SparseClosestPointGrid

FIELD_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (SignedDistanceGrid, ClosestPointGrid, SparseClosestPointGrid, ClosestPointField,
                                  HermiteRBFField, OccupancyField, OccupancyGrid)
}

# An entry's spec: (dtype kinds, shape). Kinds: "f" float, "i" integer (signed or not),
# "b" bool or integer 0/1, "U" a string. A shape names its dimensions: an int is exact, a
# letter must agree wherever it appears in one file, None is free.
FLOAT, INT, BOOL, TEXT = "f", "iu", "biu", "U"

COMMON_ENTRIES = {
    "format": (TEXT, ()),
    "format_version": (INT, ()),
    "field_class": (TEXT, ()),
    "kind": (TEXT, ()),
    "level": (FLOAT, ()),
    "params_json": (TEXT, ()),
    "norm_center": (FLOAT, (3,)),
    "norm_scale": (FLOAT, ()),
}

FIELD_ARRAYS: dict[str, dict[str, tuple]] = {
    "SignedDistanceGrid": {
        "values": (FLOAT, ("X", "Y", "Z")),
        "origin": (FLOAT, (3,)),
        "voxel_size": (FLOAT, ()),
    },
    "ClosestPointGrid": {
        "offsets": (FLOAT, ("X", "Y", "Z", 3)),
        "origin": (FLOAT, (3,)),
        "voxel_size": (FLOAT, ()),
    },
    "SparseClosestPointGrid": {
        "table": (FLOAT, ("BX", "BY", "BZ")),
        "bricks": (FLOAT, (3, "KB", "B", "B")),
        "origin": (FLOAT, (3,)),
        "voxel_size": (FLOAT, ()),
        "box": (FLOAT, (2, 3)),
    },
    "HermiteRBFField": {
        "centers": (FLOAT, ("N", 3)),
        "alpha": (FLOAT, ("N",)),
        "beta": (FLOAT, ("N", 3)),
        "poly": (FLOAT, (4,)),
        "box": (FLOAT, (2, 3)),
    },
    "ClosestPointField": {
        "box": (FLOAT, (2, 3)),
        "net_tables": (FLOAT, ("L", "T", "F")),
        "net_resolutions": (INT, ("L",)),
        "net_dense": (BOOL, ("L",)),
        "net_enc_box": (FLOAT, (2, 3)),
        "net_n_layers": (INT, ()),
        "net_out_scale": (FLOAT, ()),
    },
    "OccupancyField": {
        "box": (FLOAT, (2, 3)),
        "net_features": (FLOAT, ("C", "R", "R", "R")),
        "net_enc_box": (FLOAT, (2, 3)),
        "net_n_layers": (INT, ()),
    },
    "OccupancyGrid": {
        "values": (FLOAT, ("X", "Y", "Z")),
        "origin": (FLOAT, (3,)),
        "voxel_size": (FLOAT, ()),
    },
}
"""The arrays (``a_<name>`` in the file) each class stores; ClosestPointField's MLP layers
and optional data / support arrays are checked by :func:`_check_network`, OccupancyField's
decoder layers by :func:`_check_decoder`."""

OPTIONAL_NETWORK_ARRAYS = {
    "net_support": (BOOL, ("SX", "SY", "SZ")),
    "net_support_origin": (FLOAT, (3,)),
    "net_support_h": (FLOAT, ()),
    "net_data_points": (FLOAT, ("M", 3)),
    "net_data_normals": (FLOAT, ("M", 3)),
    "net_data_spacing": (FLOAT, ("M",)),
}
MAX_NETWORK_LAYERS = 64
"More MLP layers than this in a field file is taken for a corrupt count."


def load_field(path) -> Field:
    """Read a field written by :func:`save_field` (any registered field class).

    Raises InputError (one line, naming the file and the entry) when the file is not a
    readable .npz, is not a recon field, or any entry is missing or malformed.
    """
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
    if "format" not in contents or _text(contents["format"]) != FORMAT_NAME:
        raise InputError(f"{path}: not a recon field file (no '{FORMAT_NAME}' format marker)")
    dims: dict[str, int] = {}
    for key, spec in COMMON_ENTRIES.items():
        _check_entry(path, contents, key, spec, dims, what="entry")
    version = int(contents["format_version"])
    if version > FORMAT_VERSION:
        raise InputError(f"{path}: field format version {version} is newer than this recon reads ({FORMAT_VERSION})")
    name = _text(contents["field_class"])
    cls = FIELD_CLASSES.get(name)
    if cls is None:
        raise InputError(f"{path}: unknown field class {name!r}; this recon reads {', '.join(FIELD_CLASSES)}")
    arrays = {k[2:]: v for k, v in contents.items() if k.startswith("a_")}
    for key, spec in FIELD_ARRAYS[name].items():
        _check_entry(path, arrays, key, spec, dims)
    if name == "ClosestPointField":
        _check_network(path, arrays, dims)
    if name == "OccupancyField":
        _check_decoder(path, arrays, dims)
    for key in ("voxel_size", "net_support_h"):
        if key in arrays and not float(arrays[key]) > 0:
            raise InputError(f"{path}: field array {key!r} must be a positive length, got {float(arrays[key])!r}")
    for key in ("box", "net_enc_box"):
        if key in arrays and not np.all(arrays[key][1] > arrays[key][0]):
            raise InputError(f"{path}: field array {key!r} must be a box (low corner below high), got "
                             f"{arrays[key].tolist()}")
    scale = float(contents["norm_scale"])
    if scale < 0:
        raise InputError(f"{path}: field entry 'norm_scale' must be >= 0, got {scale!r}")
    norm = Normalization(contents["norm_center"].astype(np.float64), scale) if scale > 0 else None
    params = _params(path, contents["params_json"])
    grid_shape = params.get("grid_shape")
    if name == "SignedDistanceGrid" and grid_shape is not None and list(arrays["values"].shape) != grid_shape:
        raise InputError(f"{path}: field array 'values' has shape {arrays['values'].shape}, but the fit's "
                         f"parameters say grid_shape {grid_shape}")
    try:
        return cls._from_arrays(arrays, kind=_text(contents["kind"]), level=float(contents["level"]),
                                normalization=norm, params=params)
    except InputError as exc:  # a class's own consistency checks
        raise InputError(f"{path}: {exc}") from None


def _text(value) -> str:
    return str(np.asarray(value)[()])


def _params(path, value) -> dict:
    try:
        params = json.loads(_text(value))
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path}: field entry 'params_json' is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(params, dict):
        raise InputError(f"{path}: field entry 'params_json' must hold a JSON object, got {type(params).__name__}")
    return params


def _describe(kinds: str, shape: tuple) -> str:
    kind = {FLOAT: "float", INT: "integer", BOOL: "bool", TEXT: "string"}[kinds]
    if not shape:
        return f"a {kind} scalar"
    dims = ", ".join("?" if d is None else str(d) for d in shape)
    return f"a {kind} array of shape ({dims}{',' if len(shape) == 1 else ''})"


def _check_entry(path, arrays: dict, key: str, spec: tuple, dims: dict, *, what: str = "array") -> None:
    """Check ``arrays[key]`` against ``spec`` (binding the named dimensions in ``dims``)."""
    kinds, shape = spec
    if key not in arrays:
        raise InputError(f"{path}: field {what} {key!r} is missing")
    arr = np.asarray(arrays[key])
    if arr.dtype.kind not in kinds or arr.ndim != len(shape):
        raise InputError(f"{path}: field {what} {key!r} must be {_describe(kinds, shape)}, "
                         f"got {arr.dtype} of shape {arr.shape}")
    for axis, (want, have) in enumerate(zip(shape, arr.shape)):
        if isinstance(want, int) and have != want:
            raise InputError(f"{path}: field {what} {key!r} must be {_describe(kinds, shape)}, "
                             f"got {arr.dtype} of shape {arr.shape}")
        if isinstance(want, str) and have != dims.setdefault(want, have):
            raise InputError(f"{path}: field {what} {key!r} has shape {arr.shape}; its axis {axis} must be "
                             f"{dims[want]} to match the other arrays")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError(f"{path}: field {what} {key!r} holds NaN or infinite values")
    if kinds == BOOL and arr.dtype.kind != "b" and arr.size and not np.all((arr == 0) | (arr == 1)):
        raise InputError(f"{path}: field {what} {key!r} must hold 0 or 1 only")


def _check_layers(path, arrays: dict, dims: dict, *, inputs: int, outputs: int) -> None:
    """An MLP's ``net_n_layers`` layers (``net_w{i}``, ``net_b{i}``) chain from ``inputs``
    features to ``outputs``."""
    layers = int(arrays["net_n_layers"])
    if not 1 <= layers <= MAX_NETWORK_LAYERS:
        raise InputError(f"{path}: field array 'net_n_layers' must be in 1..{MAX_NETWORK_LAYERS}, got {layers}")
    width = inputs
    for i in range(layers):
        out = outputs if i == layers - 1 else None
        _check_entry(path, arrays, f"net_w{i}", (FLOAT, (out, width)), dims)
        width = arrays[f"net_w{i}"].shape[0]
        if width < 1:
            raise InputError(f"{path}: field array 'net_w{i}' has no outputs")
        _check_entry(path, arrays, f"net_b{i}", (FLOAT, (width,)), dims)


def _check_network(path, arrays: dict, dims: dict) -> None:
    """The MLP's layers chain (encoding features + 3 in, 3 out), each level's table rows
    cover what its resolution indexes, and the optional arrays come complete."""
    _check_layers(path, arrays, dims, inputs=dims["L"] * dims["F"] + 3, outputs=3)
    res = arrays["net_resolutions"].astype(np.int64)
    if np.any(res < 1) or np.any(res > 1 << 20):
        raise InputError(f"{path}: field array 'net_resolutions' must hold cell counts in 1..{1 << 20}")
    rows = dims["T"]
    if rows < 1 or rows & (rows - 1):
        raise InputError(f"{path}: field array 'net_tables' must have a power-of-two row count, got {rows}")
    dense = arrays["net_dense"].astype(bool)
    if np.any(dense & ((res + 1) ** 3 > rows)):
        raise InputError(f"{path}: field array 'net_dense' marks a level dense whose nodes do not fit "
                         f"the table's {rows} rows")
    for group in (("net_support", "net_support_origin", "net_support_h"),
                  ("net_data_points", "net_data_normals", "net_data_spacing")):
        present = [k for k in group if k in arrays]
        if present and len(present) < len(group):
            missing = [k for k in group if k not in arrays]
            raise InputError(f"{path}: field array {missing[0]!r} is missing (it comes with {present[0]!r})")
        for key in present:
            _check_entry(path, arrays, key, OPTIONAL_NETWORK_ARRAYS[key], dims)


def _check_decoder(path, arrays: dict, dims: dict) -> None:
    """The occupancy decoder's layers chain (C features + 3 in, 1 out)."""
    _check_layers(path, arrays, dims, inputs=dims["C"] + 3, outputs=1)
    if dims["R"] < 2:
        raise InputError(f"{path}: field array 'net_features' must have at least 2 nodes per side")
