"""Field files: byte-reproducible saves, and loading that checks every entry against the
format (presence, shape, dtype, finiteness) before any of it is used, with one line
naming the entry, through the library and through ``recon mesh`` (exit 2)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from recon.cli.main import run
from recon.cloud import Normalization
from recon.errors import InputError
from recon.fields import SignedDistanceGrid
from recon.fields.closest_point_grid import ClosestPointGrid
from recon.fields.loading import load_field


def sphere_grid(n: int = 12) -> SignedDistanceGrid:
    ax = np.linspace(-1.0, 1.0, n)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    values = (np.sqrt(x * x + y * y + z * z) - 0.6).astype(np.float32)
    return SignedDistanceGrid(values, [-1.0, -1.0, -1.0], 2.0 / (n - 1),
                              params={"method": "toy", "grid_shape": [n, n, n]},
                              normalization=Normalization(np.zeros(3), 0.5))


def sphere_closest_grid(n: int = 10) -> ClosestPointGrid:
    ax = np.linspace(-1.0, 1.0, n)
    p = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1)
    r = np.linalg.norm(p, axis=-1, keepdims=True)
    closest = 0.6 * p / np.where(r > 0, r, 1.0)
    return ClosestPointGrid((closest - p).astype(np.float32), [-1.0] * 3, 2.0 / (n - 1))


def small_network_field():
    from recon.fields.closest_point_network import ClosestPointField
    from recon.fitters.csp import CSPConfig, initial_arrays

    config = CSPConfig(levels=2, features=2, table_log2=10, base_resolution=4, resolution=8, hidden=8, layers=1)
    arrays = initial_arrays(config, np.random.default_rng(0))
    return ClosestPointField(arrays, normalization=Normalization(np.zeros(3), 0.5), params={"surface_decided": "closed"})


def small_occupancy_field():
    from recon.fields.occupancy_network import OccupancyField

    rng = np.random.default_rng(0)
    arrays = {"features": rng.normal(size=(2, 4, 4, 4)).astype(np.float32),
              "enc_box": np.array([[-0.6] * 3, [0.6] * 3]), "n_layers": np.int64(2),
              "w0": rng.normal(size=(4, 5)).astype(np.float32), "b0": np.zeros(4, np.float32),
              "w1": rng.normal(size=(1, 4)).astype(np.float32), "b1": np.zeros(1, np.float32)}
    return OccupancyField(arrays, normalization=Normalization(np.zeros(3), 0.5))


def every_field():
    from recon.fields.sparse_closest_point_grid import bake_sparse

    grid = sphere_closest_grid()
    occupancy = small_occupancy_field()
    return {"SignedDistanceGrid": sphere_grid(), "ClosestPointGrid": grid,
            "SparseClosestPointGrid": bake_sparse(grid, 16, brick=4), "ClosestPointField": small_network_field(),
            "OccupancyField": occupancy, "OccupancyGrid": occupancy.bake(8, sparse=False)}


@pytest.mark.parametrize("name", list(every_field()))
def test_the_same_field_saved_twice_gives_the_same_bytes(tmp_path, name):
    import time

    field = every_field()[name]
    a = field.save(tmp_path / "a.npz")
    time.sleep(2.1)  # zip timestamps have a resolution of 2 s
    b = field.save(tmp_path / "b.npz")
    assert a.read_bytes() == b.read_bytes()
    back = load_field(b)
    assert type(back).__name__ == name
    for key, arr in field._arrays().items():
        np.testing.assert_array_equal(back._arrays()[key], arr)


def entries(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def rewrite(path, contents: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **contents)
    path.write_bytes(buf.getvalue())


def load_error(path) -> str:
    with pytest.raises(InputError) as info:
        load_field(path)
    return str(info.value)


@pytest.mark.parametrize("name", list(every_field()))
def test_every_missing_entry_is_named(tmp_path, name):
    path = every_field()[name].save(tmp_path / "f.npz")
    full = entries(path)
    for key in full:
        if key == "format":
            continue
        rewrite(path, {k: v for k, v in full.items() if k != key})
        message = load_error(path)
        shown = key[2:] if key.startswith("a_") else key
        assert f"{shown!r} is missing" in message, (key, message)


@pytest.mark.parametrize("name", list(every_field()))
def test_every_array_of_a_wrong_shape_dtype_or_value_is_named(tmp_path, name):
    path = every_field()[name].save(tmp_path / "f.npz")
    full = entries(path)
    for key, arr in full.items():
        if key == "format":
            continue
        shown = key[2:] if key.startswith("a_") else key
        bad_shape = np.zeros(arr.shape + (2,), arr.dtype)
        bad_dtype = np.full(arr.shape, "x") if arr.dtype.kind != "U" else np.zeros(arr.shape)
        variants = [bad_shape, bad_dtype]
        if arr.dtype.kind == "f":
            nan = arr.copy()
            nan.reshape(-1)[0] = np.nan
            variants.append(nan)
        for bad in variants:
            rewrite(path, {**full, key: bad})
            message = load_error(path)
            assert repr(shown) in message and str(path) in message, (key, bad.dtype, bad.shape, message)


def test_corrupt_field_files_through_recon_mesh_exit_2_in_one_line(tmp_path, capsys):
    path = sphere_grid().save(tmp_path / "f.npz")
    full = entries(path)
    cases = {
        "origin of a wrong shape": {**full, "a_origin": np.zeros(2)},
        "no origin": {k: v for k, v in full.items() if k != "a_origin"},
        "invalid parameter JSON": {**full, "params_json": np.array("{not json")},
        "values cut against grid_shape": {**full, "a_values": full["a_values"][:, :, :6]},
        "values of one dimension": {**full, "a_values": full["a_values"].ravel()},
        "a negative voxel": {**full, "a_voxel_size": np.float64(-1.0)},
        "a network with a dense level too big": None,
    }
    expected = {
        "origin of a wrong shape": "'origin' must be a float array of shape (3,), got float64 of shape (2,)",
        "no origin": "field array 'origin' is missing",
        "invalid parameter JSON": "'params_json' is not valid JSON",
        "values cut against grid_shape": "'values' has shape (12, 12, 6), but the fit's parameters say grid_shape [12, 12, 12]",
        "values of one dimension": "'values' must be a float array of shape (X, Y, Z)",
        "a negative voxel": "'voxel_size' must be a positive length",
        "a network with a dense level too big": "'net_dense' marks a level dense",
    }
    net_path = small_network_field().save(tmp_path / "n.npz")
    net = entries(net_path)
    cases["a network with a dense level too big"] = {**net, "a_net_dense": np.ones_like(net["a_net_dense"]),
                                                     "a_net_resolutions": net["a_net_resolutions"] * 40}
    for what, contents in cases.items():
        bad = tmp_path / "bad.npz"
        rewrite(bad, contents)
        capsys.readouterr()
        code = run(["mesh", str(bad), "-o", str(tmp_path / "out.ply")])
        err = capsys.readouterr().err
        assert code == 2, (what, err)
        assert err.count("\n") == 1 and err.startswith(f"recon: error: {bad}: field "), (what, err)
        assert expected[what] in err, (what, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "f.npz", "n.npz"]


def test_a_saved_field_is_a_zip_with_fixed_member_times(tmp_path):
    path = sphere_grid().save(tmp_path / "f.npz")
    with zipfile.ZipFile(path) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert json.loads(str(entries(path)["params_json"]))["grid_shape"] == [12, 12, 12]
