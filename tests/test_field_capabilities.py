"""Each field class declares the capabilities (recon.fields.base) that consumers test for."""

import numpy as np

from recon.cloud import Normalization
from recon.fields.analytic import Sphere, sample_closest_point_grid, sample_grid
from recon.fields.base import (
    Bakeable,
    ClosestPointOffsets,
    Field,
    GridSamples,
    HasSupport,
    HasSurfaceTolerance,
    ProjectsOntoData,
    RegularGrid,
    SparseBricks,
)
from recon.fields.sparse_closest_point_grid import bake_sparse

CAPABILITIES = (RegularGrid, GridSamples, ClosestPointOffsets, SparseBricks, HasSupport, HasSurfaceTolerance,
                Bakeable, ProjectsOntoData)


def offered(field) -> set:
    return {cap.__name__ for cap in CAPABILITIES if isinstance(field, cap)}


def test_grids_and_analytic_fields_offer_what_they_have():
    sphere = Sphere(radius=0.4)
    assert isinstance(sphere, Field) and offered(sphere) == set()
    grid = sample_grid(sphere, resolution=12)
    assert isinstance(grid, Field) and offered(grid) == {"RegularGrid", "GridSamples"}
    cp = sample_closest_point_grid(sphere, resolution=12)
    assert isinstance(cp, Field) and offered(cp) == {"RegularGrid", "ClosestPointOffsets", "HasSurfaceTolerance"}
    sparse = bake_sparse(sphere, 16, brick=4)
    assert isinstance(sparse, Field)
    assert offered(sparse) == {"RegularGrid", "SparseBricks", "HasSupport", "HasSurfaceTolerance"}


def test_network_field_offers_bake_support_tolerance_and_data():
    from recon.fields.closest_point_network import ClosestPointField

    arrays = {"tables": np.zeros((1, 8, 2), np.float32), "resolutions": np.array([1]), "dense": np.array([True]),
              "enc_box": np.array([[-1.0] * 3, [1.0] * 3]), "n_layers": np.int64(1), "out_scale": np.float32(1),
              "w0": np.zeros((3, 5), np.float32), "b0": np.zeros(3, np.float32)}
    field = ClosestPointField(arrays, normalization=Normalization(np.zeros(3), 1.0))
    assert isinstance(field, Field)
    assert offered(field) == {"Bakeable", "HasSupport", "HasSurfaceTolerance", "ProjectsOntoData"}
    assert not field.keeps_data
