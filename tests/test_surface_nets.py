"""Surface nets of crossed grid edges (recon.meshing.surface_nets) and the winding kernel
(recon.kernels.winding_cpu), on analytic closest-point fields with exact answers: a
plane, a fin standing on a floor (a T-junction), the open disc, a sphere."""

from __future__ import annotations

import numpy as np
import pytest

from mesh_checks import check_mesh
from recon.fields.analytic import OpenDisc
from recon.meshing.surface_nets import consistent_winding, crossed_edges, net_quads, split_quads


def _grid_nodes(shape):
    return np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), -1).reshape(-1, 3).astype(np.int64)


def test_plane_crosses_exactly_the_edges_that_straddle_it_and_its_net_lies_on_it():
    shape = (6, 7, 8)
    h, z0 = 0.1, 0.337  # the plane z = z0 passes between nodes k = 3 and 4
    nodes = _grid_nodes(shape)
    pos = nodes * h
    feet = pos.copy()
    feet[:, 2] = z0
    dist = np.abs(pos[:, 2] - z0)
    dirs = (pos - feet) / dist[:, None]
    index = np.arange(len(nodes)).reshape(shape)
    a, b, axis = crossed_edges(nodes, pos, feet, dist, dirs, index)
    assert (axis == 2).all()
    assert (nodes[a, 2] == 3).all() and (nodes[b, 2] == 4).all()
    assert len(a) == shape[0] * shape[1]
    t = dist[a] / (dist[a] + dist[b])
    cross = pos[a] + (t * h)[:, None] * np.eye(3)[axis]
    np.testing.assert_allclose(cross[:, 2], z0, atol=1e-12)
    verts, quads, edge = net_quads(nodes, a, axis, cross, shape)
    # edges on the border of the grid have fewer than four cells around them: no quad
    assert len(quads) == (shape[0] - 2) * (shape[1] - 2)
    assert len(verts) == (shape[0] - 1) * (shape[1] - 1)
    np.testing.assert_allclose(verts[:, 2], z0, atol=1e-12)
    # each quad's edge: an interior one, and the quad's cells lie around it
    inner = (nodes[a[edge], 0] > 0) & (nodes[a[edge], 1] > 0)
    assert inner.all() and len(np.unique(edge)) == len(quads)
    faces, owner = split_quads(verts, quads, np.arange(len(quads)))
    assert len(faces) == 2 * len(quads) and np.bincount(owner).tolist() == [2] * len(quads)
    normal = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    assert (normal[:, 2] > 0).all()  # a quad faces +axis unless told to flip
    _, flipped, _ = net_quads(nodes, a, axis, cross, shape, flip=np.ones(len(a), bool))
    np.testing.assert_array_equal(flipped, quads[:, ::-1])


class FinOnFloor:
    """Unsigned closest points of a floor (z = 0) with a fin (x = 0, 0 <= z <= 0.4) standing
    on it: three half-sheets meet along the fin's foot, which no two-sided labelling can
    colour."""

    kind = "unsigned"
    level = 0.0
    params: dict = {}
    normalization = None
    bounds = np.array([[-0.5, -0.5, -0.3], [0.5, 0.5, 0.6]])
    fin_height = 0.4

    def closest_point(self, x):
        x = np.asarray(x, np.float64)
        floor = x.copy()
        floor[:, 2] = 0.0
        fin = x.copy()
        fin[:, 0] = 0.0
        fin[:, 2] = np.clip(fin[:, 2], 0.0, self.fin_height)
        use_fin = np.linalg.norm(x - fin, axis=1) < np.linalg.norm(x - floor, axis=1)
        return np.where(use_fin[:, None], fin, floor)


def test_a_t_junction_meshes_all_three_half_sheets_up_to_their_foot():
    from recon.meshing.unsigned import extract_unsigned_mesh

    field = FinOnFloor()
    m = extract_unsigned_mesh(field, resolution=48, surface="open")
    check_mesh(m)
    v = m.vertices
    h = 1.0 / 47
    on_floor = np.abs(v[:, 2]) < 1e-9
    on_fin = (np.abs(v[:, 0]) < 1e-9) & (v[:, 2] > -1e-9) & (v[:, 2] < field.fin_height + 1e-9)
    assert (on_floor | on_fin).all()  # every vertex on the surface
    # each half-sheet comes within a voxel and a half of the foot (x = 0, z = 0)
    assert v[on_floor & (v[:, 0] < 0), 0].max() > -1.5 * h - 1e-9
    assert v[on_floor & (v[:, 0] > 0), 0].min() < 1.5 * h + 1e-9
    assert v[on_fin & ~on_floor, 2].min() < 1.5 * h
    area = 0.5 * np.linalg.norm(np.cross(v[m.faces[:, 1]] - v[m.faces[:, 0]], v[m.faces[:, 2]] - v[m.faces[:, 0]]),
                                axis=1).sum()
    # the floor (1 x 1) and the fin (1 x 0.4), less a voxel along the box's border (edges
    # there have fewer than four cells around them) and a voxel and a half at the foot
    true_area = 1.0 + 1.0 * field.fin_height
    lost = 4 * h + 2 * field.fin_height * h + 3 * 1.5 * h
    assert true_area - lost < area <= true_area + 1e-9


def test_open_disc_winds_alike_across_every_inner_edge():
    from recon.meshing.marching_cubes import extract_mesh

    m = extract_mesh(OpenDisc(radius=0.5), resolution=48)
    f = m.faces
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    _, dcounts = np.unique(directed, axis=0, return_counts=True)
    assert (dcounts == 1).all()  # no edge walked twice the same way
    normal = np.cross(m.vertices[f[:, 1]] - m.vertices[f[:, 0]], m.vertices[f[:, 2]] - m.vertices[f[:, 0]])
    assert (np.abs(np.sign(normal[:, 2]).sum()) == len(f))  # all faces up, or all down


def _sphere_mesh():
    from skimage.measure import marching_cubes

    g = np.linspace(-1.0, 1.0, 24)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    verts, faces, _, _ = marching_cubes(np.sqrt(x ** 2 + y ** 2 + z ** 2) - 0.7, 0.0)
    return verts, faces.astype(np.int64)


def test_winding_made_alike_on_a_sphere_with_faces_turned_at_random():
    verts, faces = _sphere_mesh()
    gen = np.random.default_rng(0)
    turned = gen.random(len(faces)) < 0.3
    messy = faces.copy()
    messy[turned] = messy[turned][:, [0, 2, 1]]
    fixed = consistent_winding(messy)

    class M:
        pass

    mesh = M()
    mesh.vertices, mesh.faces = verts, fixed
    check_mesh(mesh, watertight=True)  # every edge walked once each way
    # votes choose the way: for the faces as they were, the original winding comes back
    votes = np.where(turned, -1.0, 1.0)
    np.testing.assert_array_equal(np.sort(consistent_winding(messy, seed_votes=votes), axis=1),
                                  np.sort(faces, axis=1))
    back = consistent_winding(messy, seed_votes=votes)
    np.testing.assert_array_equal(back, faces)


def test_winding_of_a_moebius_band_ends_and_keeps_every_face():
    n = 24
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    # two rows of vertices; the band closes with a half twist (row 0 meets row 1)
    verts = np.concatenate([np.stack([np.cos(t), np.sin(t), -0.1 + 0 * t], 1),
                            np.stack([np.cos(t), np.sin(t), 0.1 + 0 * t], 1)])
    faces = []
    for i in range(n - 1):
        faces += [[i, i + 1, n + i], [i + 1, n + i + 1, n + i]]
    faces += [[n - 1, n, 2 * n - 1], [n, 0, 2 * n - 1]]  # the twist
    faces = np.array(faces, np.int64)
    out = consistent_winding(faces)
    assert out.shape == faces.shape
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(faces, axis=1))


@pytest.mark.parametrize("resolution", [32, 48])
def test_open_net_of_the_disc_ends_at_its_rim(resolution):
    from recon.meshing.cleanup import boundary_loops
    from recon.meshing.unsigned import extract_unsigned_mesh

    m = extract_unsigned_mesh(OpenDisc(radius=0.5), resolution=resolution, surface="open")
    check_mesh(m)
    rho = np.hypot(m.vertices[:, 0], m.vertices[:, 1])
    h = 1.25 / (resolution - 1)
    assert rho.max() <= 0.5 + 1e-9 and rho.max() > 0.5 - 1.5 * h
    assert len(boundary_loops(m.faces)) == 1


class BlockAndPlate:
    """Unsigned closest points of two disjoint boxes: a block, thick enough to enclose free
    space at the test's resolution, and a plate thinner than the mesher's band, whose
    inside is band through and through."""

    kind = "unsigned"
    level = 0.0
    params: dict = {}
    normalization = None
    boxes = (np.array([[-0.45, -0.3, -0.3], [-0.05, 0.3, 0.3]]),  # block
             np.array([[0.1, -0.3, -0.03], [0.45, 0.3, 0.03]]))  # plate, 0.06 thick
    bounds = np.array([[-0.55, -0.4, -0.4], [0.55, 0.4, 0.4]])

    @staticmethod
    def _box_closest(x, lo, hi):
        out = np.clip(x, lo, hi)
        inside = ((x > lo) & (x < hi)).all(axis=1)
        gaps = np.concatenate([x[inside] - lo, hi - x[inside]], axis=1)  # (k, 6)
        face = np.argmin(gaps, axis=1)
        q = x[inside].copy()
        rows = np.arange(len(q))
        q[rows, face % 3] = np.where(face < 3, lo[face % 3], hi[face % 3])
        out[inside] = q
        return out

    def closest_point(self, x):
        x = np.asarray(x, np.float64)
        feet = [self._box_closest(x, *b) for b in self.boxes]
        nearer = np.linalg.norm(x - feet[1], axis=1) < np.linalg.norm(x - feet[0], axis=1)
        return np.where(nearer[:, None], feet[1], feet[0])


def test_a_plate_thinner_than_the_band_keeps_its_inside():
    from mesh_checks import signed_volume
    from recon.meshing.unsigned import extract_unsigned_mesh

    field = BlockAndPlate()
    m = extract_unsigned_mesh(field, resolution=56, surface="closed")
    # (vertices snapped onto the boxes' sharp edges make some slivers)
    check_mesh(m, watertight=True, area_rtol=-1.0)
    h = 1.1 / 55
    assert 0.06 < 2 * 2.0 * h  # the plate's inside is all band (2 voxels each side)
    vol = [float(np.prod(b[1] - b[0])) for b in field.boxes]

    class Piece:
        pass

    # the two solids are separate pieces: each outward, with its own volume (corners and
    # edges are cut by a voxel at most); without its inside the plate would be lost
    for k, keep in enumerate((m.vertices[:, 0] < 0.0, m.vertices[:, 0] > 0.075)):
        piece = Piece()
        piece.vertices, piece.faces = m.vertices, m.faces[keep[m.faces].all(axis=1)]
        assert signed_volume(piece) == pytest.approx(vol[k], rel=0.15)
    plate = m.vertices[:, 0] > 0.075
    np.testing.assert_allclose(np.abs(m.vertices[plate, 2]).max(), 0.03, atol=1e-9)


@pytest.mark.parametrize("clean, resolution, coarse", [(False, None, True), (True, None, False), (False, 64, False)])
def test_open_meshes_of_noisy_fits_get_a_voxel_of_one_point_spacing(clean, resolution, coarse):
    from recon.meshing.unsigned import extract_unsigned_mesh

    class NoisyFitDisc(OpenDisc):
        params = {"mesh_resolution": 64, "clean": clean, "spacing_median": 0.05, "surface_decided": "open"}

    m = extract_unsigned_mesh(NoisyFitDisc(radius=0.5), resolution=resolution)
    check_mesh(m)
    assert m.surface == "open"
    e = np.concatenate([m.faces[:, [0, 1]], m.faces[:, [1, 2]]])
    median_edge = float(np.median(np.linalg.norm(m.vertices[e[:, 0]] - m.vertices[e[:, 1]], axis=1)))
    voxel = 0.05 if coarse else 1.25 / 63  # the disc's box is 1.25 wide
    assert voxel * 0.8 < median_edge < voxel * 1.3


def test_face_edges_key_both_directions_of_an_edge_alike():
    from recon.triangles import face_edges

    faces = np.array([[0, 1, 2], [2, 1, 3]])
    e, key = face_edges(faces)
    np.testing.assert_array_equal(e[[0, 2, 4]], [[0, 1], [1, 2], [2, 0]])  # face 0's edges: rows 0, F, 2F
    shared = key[(e[:, 0] == 1) & (e[:, 1] == 2)][0]
    assert key[(e[:, 0] == 2) & (e[:, 1] == 1)][0] == shared
    assert len(np.unique(key)) == 5  # six directed edges, one edge shared
    assert face_edges(np.zeros((0, 3), np.int64))[0].shape == (0, 2)
