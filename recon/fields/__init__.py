"""Fields: what every fitter returns and every consumer (mesher, tracer, viewer) takes.

- :mod:`~recon.fields.base`: the ``Field`` protocol, its kinds, the capabilities a field
  may offer (grid samples, closest-point offsets, sparse bricks, support, surface
  tolerance, baking, projection onto the data), and the ``.npz`` writer;
- :mod:`~recon.fields.grid`: ``SignedDistanceGrid`` (GridPull's field);
- :mod:`~recon.fields.closest_point_network`: ``ClosestPointField`` (the csp network), whose
  network and forward passes are in :mod:`~recon.fields.hashgrid_network`;
- :mod:`~recon.fields.closest_point_grid`, :mod:`~recon.fields.sparse_closest_point_grid`:
  closest-point offsets baked onto a dense grid or near the surface only;
- :mod:`~recon.fields.closest_point_geometry`: normals, curvature and inside/outside of a
  closest-point field;
- :mod:`~recon.fields.analytic`: exact shapes (sphere, torus, box, disc, hemisphere);
- :mod:`~recon.fields.loading`: ``load_field`` for any of them.
"""

from recon.fields.base import FIELD_KINDS, FORMAT_NAME, FORMAT_VERSION, Field, FieldKind, save_field
from recon.fields.grid import SignedDistanceGrid
from recon.fields.loading import load_field
from recon.geometry import check_points

__all__ = [
    "Field", "FieldKind", "FIELD_KINDS", "FORMAT_NAME", "FORMAT_VERSION",
    "SignedDistanceGrid", "load_field", "save_field", "check_points",
]
