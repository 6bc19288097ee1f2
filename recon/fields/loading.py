"""load_field: read any field file written by :func:`recon.fields.base.save_field`.

The file names its class; the table below lists every class this recon can load, so the
loader needs no registration side effects.
"""

from __future__ import annotations

import json
from pathlib import Path

from recon.cloud import Normalization
from recon.errors import InputError
from recon.fields.base import FORMAT_NAME, FORMAT_VERSION, Field
from recon.fields.closest_point_grid import ClosestPointGrid
from recon.fields.closest_point_network import ClosestPointField
from recon.fields.grid import SignedDistanceGrid
from recon.fields.sparse_closest_point_grid import SparseClosestPointGrid

FIELD_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (SignedDistanceGrid, ClosestPointGrid, SparseClosestPointGrid, ClosestPointField)
}


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
    cls = FIELD_CLASSES.get(name)
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
