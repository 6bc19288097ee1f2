"""recon.choice and method="auto": which fitter a cloud gets, and how the choice is reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recon import Cloud, InputError
from recon.choice import Choice, choose_method
from recon.points.measure import measure_cloud
from test_measure import fibonacci_sphere, grid_plane, height_field, hemisphere, random_sphere


def choice_of(points) -> Choice:
    return choose_method(measure_cloud(points))


def test_a_clean_closed_densely_sampled_sphere_gets_gridpull_meshed_through_its_points():
    c = choice_of(random_sphere(20_000) * 3.0)
    assert c.method == "gridpull" and c.overrides == {} and c.interpolate
    assert c.kind == "clean closed object"
    assert c.line().startswith("auto: ") and c.line().endswith("-> gridpull, closed mesh through the points")
    assert "20,000 points" in c.line()


def test_a_noisy_closed_sphere_gets_gridpull_meshed_from_its_grid():
    p = random_sphere(20_000)
    p = p + np.random.default_rng(5).normal(scale=0.004, size=p.shape)  # about half a spacing
    c = choice_of(p)
    assert c.method == "gridpull" and not c.interpolate
    assert c.line().endswith("-> gridpull, closed mesh")


def test_a_closed_surface_holding_another_surface_inside_gets_csp():
    plate = np.random.default_rng(3).uniform(-0.5, 0.5, size=(4000, 3)) * [1.0, 1.0, 0.0]
    c = choice_of(np.concatenate([random_sphere(20_000), plate]))
    assert c.method == "csp" and c.kind.endswith("closed object with inner surfaces")
    assert any("inside the enclosed volume" in r for r in c.reasons)


@pytest.mark.parametrize("n", [3000, 20_000, 300_000])
def test_a_random_sample_of_a_sphere_seals_at_any_count(n):
    m = measure_cloud(random_sphere(n, seed=n))
    assert m.enclosed_share > 0.3 and m.enclosed_share >= m.enclosed_share_coarse


@pytest.mark.parametrize("points", [grid_plane(150, 0.01), hemisphere(15_000)], ids=["plane", "hemisphere"])
def test_noisy_open_surfaces_get_csp(points):
    noisy = points + np.random.default_rng(4).normal(scale=0.004, size=points.shape)
    c = choice_of(noisy)
    assert c.method == "csp" and c.alternatives == ()
    assert any("enclose no volume" in r for r in c.reasons)


def test_clean_open_surfaces_get_csp_once_measured_against_the_closed_reading():
    from recon.pipeline import choose, reconstruct

    flat = choose(Cloud(grid_plane(150, 0.01), source="plane"))  # one-sided: csp alone
    assert flat.method == "csp" and flat.alternatives == ()
    result = reconstruct(Cloud(hemisphere(4000), source="hemisphere"), seed=0)
    assert result.choice["alternatives"] == ["csp"]
    assert result.method == "csp"  # the closed reading's lid lies far from every point
    assert result.mesh.surface == "open"


def test_a_height_field_is_a_one_sided_scan_and_gets_an_open_mesh():
    c = choice_of(height_field(30_000))
    assert c.method == "csp" and c.overrides == {"surface": "open"}
    assert "one-sided" in c.kind and c.line().endswith("-> csp, open mesh through the points (a height field)")
    assert c.interpolate and abs(c.height_direction[2]) > 0.95  # the terrain's up axis


def test_a_sparse_closed_cloud_is_meshed_through_its_points_and_called_sparse():
    c = choice_of(fibonacci_sphere(500))
    assert c.method == "gridpull" and c.interpolate and c.kind.startswith("sparse")
    assert "noise at most" in c.line() or "noise below" in c.line()


def test_a_scene_of_separate_pieces_gets_an_open_mesh():
    pieces = [grid_plane(60, 0.02) + [3.0 * i, 0.0, 0.5 * i] for i in range(3)]
    c = choice_of(np.concatenate(pieces))
    assert c.method == "csp" and c.overrides == {"surface": "open"} and "pieces" in " ".join(c.reasons)


@pytest.mark.parametrize("make", [lambda: random_sphere(20_000), lambda: height_field(20_000), lambda: fibonacci_sphere(500)],
                         ids=["sphere", "terrain", "sparse"])
def test_the_choice_does_not_depend_on_units_or_position(make):
    p = make()
    a, b = choice_of(p), choice_of(p * 1000.0 + [5.0e4, 1.0e3, -7.0e5])
    assert (a.method, a.overrides, a.kind) == (b.method, b.overrides, b.kind)


def test_the_evidence_is_json_and_instead_says_why():
    c = choice_of(grid_plane(100, 0.1))
    d = json.loads(json.dumps(c.as_dict()))
    assert d["method"] == "csp" and d["evidence"]["points"] == 10_000 and d["overruled"] == ""
    other = c.instead("gridpull", "csp needs torch, which is not installed: gridpull instead")
    assert other.method == "gridpull" and other.overrides == {} and other.kind == c.kind
    assert other.line().endswith("(csp needs torch, which is not installed: gridpull instead)")


# ----------------------------------------------------------------------------- in the pipeline


def test_options_that_only_one_method_has_choose_that_method():
    from recon.pipeline import auto_candidates

    assert auto_candidates({}) == ("gridpull", "csp")
    assert auto_candidates({"resolution": 64}) == ("gridpull", "csp")
    assert auto_candidates({"surface": "open"}) == ("csp",)
    assert auto_candidates({"denoise": "off"}) == ("gridpull",)
    with pytest.raises(InputError, match="none has option"):
        auto_candidates({"frobnicate": 1})
    with pytest.raises(InputError, match="different methods"):
        auto_candidates({"surface": "open", "denoise": "off"})


def test_choose_follows_the_options_and_falls_back_without_torch(monkeypatch):
    import recon.pipeline as pipeline

    plane = Cloud(grid_plane(100, 0.1), source="plane")
    forced = pipeline.choose(plane, candidates=("gridpull",), options={"denoise": "off"})
    assert forced.method == "gridpull" and "denoise" in forced.overruled
    monkeypatch.setattr(pipeline, "installed", lambda method: method != "csp")
    fallback = pipeline.choose(plane)
    assert fallback.method == "gridpull" and "torch" in fallback.overruled and "torch" in fallback.line()
    with pytest.raises(InputError, match="not installed"):
        pipeline.choose(plane, candidates=("csp",), options={"surface": "open"})


def test_reconstruct_auto_records_the_choice_first_and_in_the_field(tmp_path):
    from recon.fields.loading import load_field
    from recon.pipeline import reconstruct

    cloud = Cloud(random_sphere(20_000) * 1.5 + [4.0, -2.0, 1.0], source="sphere")
    lines = []
    result = reconstruct(cloud, device="cpu", resolution=32, iterations=3, log=lines.append)
    assert result.method == "gridpull"
    first = result.decisions[0]
    assert first.name == "method" and first.value == "gridpull" and first.reason.startswith("auto: ")
    assert lines[0] == first.reason  # the one line, before the fit starts
    assert result.field.params["auto_choice"]["method"] == "gridpull"
    summary = json.loads(json.dumps(result.summary()))
    assert summary["decisions"][0]["value"] == "gridpull" and summary["auto"]["method"] == "gridpull"
    assert summary["auto"]["evidence"]["points"] == 20_000
    assert result.timings["choose_s"] > 0
    saved = load_field(result.field.save(tmp_path / "f.npz"))
    assert saved.params["auto_choice"]["kind"] == result.field.params["auto_choice"]["kind"]


def test_too_few_points_to_measure_are_refused_in_one_message():
    from recon.pipeline import reconstruct

    with pytest.raises(InputError, match="5 points; method 'auto' needs at least 10"):
        reconstruct(Cloud(random_sphere(5), source="five"))


def test_an_explicit_method_is_not_measured():
    from recon.pipeline import reconstruct

    cloud = Cloud(fibonacci_sphere(2000), source="sparse sphere")  # auto would take csp: sparse
    result = reconstruct(cloud, method="gridpull", device="cpu", resolution=24, iterations=2)
    assert result.method == "gridpull" and "auto_choice" not in result.field.params and result.choice is None
    assert "auto" not in result.summary()
    assert all(d.name != "method" for d in result.decisions)


def test_a_config_given_with_auto_names_its_method():
    from recon.fitters.gridpull import GridPullConfig
    from recon.pipeline import reconstruct

    result = reconstruct(Cloud(fibonacci_sphere(2000), source="s"), config=GridPullConfig(resolution=24, iterations=2),
                         device="cpu")
    assert result.method == "gridpull" and result.choice is None and result.config.resolution == 24


def test_clean_samples_enclosing_nothing_try_both_readings():
    import dataclasses

    m = dataclasses.replace(measure_cloud(random_sphere(20_000)), enclosed_share=0.003, enclosed_share_coarse=0.46)
    c = choose_method(m)
    assert c.method == "gridpull" and c.interpolate and c.alternatives == ("csp",)
    assert "unevenly sampled" in " ".join(c.reasons) and c.line().endswith("whichever strays less from the data)")
    noisy = choose_method(dataclasses.replace(m, noise_spacings=0.5))
    assert noisy.method == "csp" and noisy.alternatives == ()


def test_occupancy_meshes_sparse_and_clean_clouds_through_the_points_and_noisy_ones_snapped():
    from recon.choice import RULES, SNAP_MAX_NEIGHBORS, SNAP_NOISE_LEFT, occupancy_meshing

    sparse = occupancy_meshing(measure_cloud(random_sphere(300)))
    assert sparse.through and not sparse.denoise and sparse.settings == {"upsample": 1, "iterations": 50}
    assert sparse.why.startswith("sparse")
    assert sparse.limits == {"occupancy_seed_gradient": 0.0}  # the field seeds every sample's orientation
    clean = occupancy_meshing(measure_cloud(random_sphere(20_000) * 3.0))
    assert clean.through and not clean.denoise and clean.settings == {} and clean.why.startswith("clean")
    assert clean.limits == {}
    rng = np.random.default_rng(5)
    p = random_sphere(20_000)
    mild = measure_cloud(p + rng.normal(scale=0.006, size=p.shape))  # about a quarter of a spacing
    assert RULES.clean_spacings <= mild.noise_spacings < RULES.open_through_spacings
    plan = occupancy_meshing(mild)
    assert plan.through and plan.denoise and plan.snap_neighbors == 0
    assert plan.settings == {"upsample": 1, "iterations": 50}  # a finer grid would fit the noise
    heavy = measure_cloud(p + rng.normal(scale=0.03, size=p.shape))  # about a spacing
    plan = occupancy_meshing(heavy)
    assert not plan.through and not plan.denoise
    expected = min(SNAP_MAX_NEIGHBORS, max(16, round((heavy.noise_spacings / SNAP_NOISE_LEFT) ** 2)))
    assert plan.snap_neighbors == expected and 16 < expected
    assert f"{expected} nearest points" in plan.why
