"""Associative memory (cues, recall, the learned rule, the capacity curve), the attractor
landscape against brute-force fixed points, and the [memory]/[landscape] run and config."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from dynamics import Langevin
from dynamics.landscape import cluster_states, find_fixed_points
from plasticity.memory import (
    capacity_curve,
    corrupt,
    learn_patterns,
    overlaps,
    random_patterns,
    recall,
    retrieval_capacity,
    snr_load,
    store_patterns,
)
from studies.config import ConfigError, load_config
from studies.run import run
from tissue import Tissue


# ------------------------------------------------------------------ cues and overlaps
def test_corrupt_flips_or_erases_exactly_the_asked_share_of_living_voxels():
    rng = np.random.default_rng(0)
    xi = random_patterns(3, 200, rng)
    alive = np.ones(200, bool)
    alive[:50] = False
    xi[:, ~alive] = 0
    flip = corrupt(xi, 0.2, "flip", rng=1, alive=alive)
    assert np.all((flip != xi).sum(1) == 30)                   # round(0.2 * 150)
    assert np.all(flip[:, ~alive] == 0)
    erase = corrupt(xi, 0.3, "erase", rng=1, alive=alive)
    assert np.all((erase == 0.5).sum(1) == 45) and np.all(erase[erase != 0.5] == xi[erase != 0.5])
    # a flip of a share f gives overlap 1 - 2 f; an erasure gives 1 - f
    np.testing.assert_allclose(np.diagonal(overlaps(flip, xi, alive)), 1 - 2 * 0.2)
    np.testing.assert_allclose(np.diagonal(overlaps(erase, xi, alive)), 1 - 0.3)
    with pytest.raises(ValueError, match="mode"):
        corrupt(xi, 0.2, "scramble")
    with pytest.raises(ValueError, match="fraction"):
        corrupt(xi, 1.5)


def test_snr_load_inverts_the_gaussian_error_rate():
    for k, m in ((26, 0.95), (100, 0.9), (8, 0.99)):
        p = snr_load(k, m)
        eps = scipy.stats.norm.sf(np.sqrt(k / (p - 1)))        # P(cross-talk > signal)
        assert 1 - 2 * eps == pytest.approx(m)


# ------------------------------------------------------------------ Hebbian recall and capacity
def test_patterns_stored_at_low_load_are_recalled_from_20_percent_damage():
    rng = np.random.default_rng(3)
    t = Tissue.cube((8, 8, 8), stencil=26, init="zero")
    xi = random_patterns(2, t.n, rng)
    store_patterns(t, xi, gain=4.0)
    for mode, frac in (("flip", 0.2), ("erase", 0.4)):
        cues = corrupt(np.repeat(xi, 3, axis=0), frac, mode, rng)
        got = recall(t, cues)
        assert got.converged.all()
        m = overlaps(got.rates, xi)
        assert np.all(m[np.arange(6), np.repeat([0, 1], 3)] >= 0.95), m


def test_capacity_curve_falls_with_load_and_carries_its_references():
    ds = capacity_curve((7, 7, 7), [1, 3, 40], trials=4, seed=0,
                        engine=Langevin(dt=0.2, tol=1e-4, max_steps=600))
    m = ds.overlap.mean("trial").values
    assert m[0] >= 0.99 and m[-1] < 0.8 and m[0] > m[-1]       # overloaded: recall fails
    np.testing.assert_allclose(ds.cue_overlap.values, 0.6, atol=0.01)
    assert ds.attrs["N"] == 343 and ds.alpha.values[0] == pytest.approx(1 / 343)
    assert ds.attrs["hopfield_load"] == pytest.approx(0.138 * 343)
    assert ds.attrs["diluted_load"] == pytest.approx(2 / np.pi * ds.attrs["K_mean"])
    # the mean degree of a 26-neighbour box: count neighbour pairs inside the box directly
    n = 7
    pairs = sum((n - abs(dx)) * (n - abs(dy)) * (n - abs(dz))
                for dx, dy, dz in itertools.product((-1, 0, 1), repeat=3) if (dx, dy, dz) != (0, 0, 0))
    assert ds.attrs["K_mean"] == pytest.approx(pairs / n**3)
    assert retrieval_capacity(ds, 0.95) in (1, 3)
    fake = ds.copy()
    fake["overlap"] = fake.overlap * 0 + xr.DataArray([0.99, 0.5, 0.99], dims="load")
    assert retrieval_capacity(fake) == 1                        # the first failure ends the range


@pytest.mark.slow
def test_eqprop_learns_an_auto_associative_memory_beyond_the_hebbian_rule():
    """3 patterns in 64 neurons: the outer-product rule recalls them poorly from 20%-flipped
    cues; EqProp on the auto-associative task, started from a weak outer-product imprint,
    recalls them better (fresh test cues, not those of training)."""
    rng = np.random.default_rng(0)
    t = Tissue.cube((4, 4, 4), stencil=26, init="zero", seed=0)
    xi = random_patterns(3, t.n, rng)
    test_cues = corrupt(np.repeat(xi, 4, axis=0), 0.2, "flip", np.random.default_rng(9))
    target = np.repeat(np.arange(3), 4)

    def score():
        r = recall(t, test_cues, Langevin(dt=0.2, tol=1e-4, max_steps=2000)).rates
        return overlaps(r, xi)[np.arange(12), target].mean()

    store_patterns(t, xi, gain=4.0)
    hebbian = score()
    hist = learn_patterns(t, xi, epochs=20, cue_fraction=0.2, seed=1)     # re-imprints at gain 0.75
    learned = score()
    t.syn.check()
    assert hist["loss"][-1] < 0.1 * hist["loss"][0] and hist["overlap"][-1] > 0.99
    assert learned >= 0.93 and learned > hebbian + 0.02, (hebbian, learned)


# ------------------------------------------------------------------ the landscape
def brute_force_minima(W, b):
    """Every local minimum of E = 1/2 |s|^2 - 1/2 s W s - b s on [0, 1]^n (hard sigmoid):
    enumerate which units sit at 0, at 1 or inside, solve the inside ones, keep consistent
    points with a positive-definite inside block and strict forces holding the others."""
    n = len(b)
    out = []
    for status in itertools.product((0, 1, 2), repeat=n):
        st = np.array(status)
        s = np.where(st == 1, 1.0, 0.0)
        ins = np.flatnonzero(st == 2)
        if ins.size:
            bnd = np.flatnonzero(st != 2)
            A = np.eye(ins.size) - W[np.ix_(ins, ins)]
            rhs = b[ins] + W[np.ix_(ins, bnd)] @ s[bnd]
            try:
                s[ins] = np.linalg.solve(A, rhs)
            except np.linalg.LinAlgError:
                continue
            if np.any(s[ins] <= 1e-9) or np.any(s[ins] >= 1 - 1e-9) or np.linalg.eigvalsh(A)[0] <= 0:
                continue
        h = W @ s + b
        if np.any(h[st == 0] >= -1e-9) or np.any(h[st == 1] <= 1 + 1e-9):
            continue
        out.append(s)
    return np.array(out)


def tiny_tissue(W, b):
    t = Tissue.cube((3, 1, 1), radius=2.0, init="zero", dtype="float64")
    for i in range(3):
        for k in range(t.syn.deg[i]):
            t.syn.w[i, k] = W[i, t.syn.nbr[i, k]]
    t.bias[:] = b
    return t


@pytest.mark.parametrize("W, b", [
    (np.array([[0, 1.6, -0.4], [1.6, 0, 1.2], [-0.4, 1.2, 0]]), np.array([-0.5, -0.6, -0.3])),
    (np.array([[0, 2.0, 1.5], [2.0, 0, -1.8], [1.5, -1.8, 0]]), np.array([-0.7, 0.2, -0.2])),
    (np.array([[0, 0.3, 0.2], [0.3, 0, 0.1], [0.2, 0.1, 0]]), np.array([0.2, 0.4, 0.3])),   # convex: one
])
def test_landscape_finds_the_brute_force_minima_of_a_tiny_tissue(W, b):
    t = tiny_tissue(W, b)
    truth = brute_force_minima(W, b)
    land = find_fixed_points(t, starts=300, tol=1e-3, seed=1)
    assert land.converged.all()
    assert len(land.energy) == len(truth), (land.points, truth)
    for p in truth:
        d = np.abs(land.points - p).max(1)
        assert d.min() < 1e-4, (p, land.points)
    E = 0.5 * (truth**2).sum(1) - 0.5 * np.einsum("bi,ij,bj->b", truth, W, truth) - truth @ b
    np.testing.assert_allclose(np.sort(land.energy), np.sort(E), atol=1e-8)
    assert land.basin.sum() == pytest.approx(1.0) and np.all(land.min_curvature > 0)
    assert np.all(np.diff(land.energy) >= 0)                    # lowest energy first
    # basins from an independent integrator: NumPy projected gradient flow from the same starts
    s = np.random.default_rng(1).random((300, 3))
    for _ in range(4000):
        s = np.clip(s + 0.2 * (-s + s @ W + b), 0, 1)
    near = np.abs(s[:, None, :] - land.points[None]).max(-1).argmin(1)
    np.testing.assert_array_equal(near, land.label)


def test_cluster_states_groups_within_tolerance_by_energy():
    s = np.array([[0.0, 0.0], [0.005, 0.0], [1.0, 1.0], [0.0, 0.02]])
    lab, reps = cluster_states(s, [2.0, 1.0, 0.0, 3.0], tol=0.01)
    assert reps == [2, 1, 3]                                    # by energy; [0] joins [1]
    np.testing.assert_array_equal(lab, [1, 1, 0, 2])


def test_landscape_of_a_hebbian_memory_finds_true_fixed_points_and_the_patterns():
    rng = np.random.default_rng(2)
    t = Tissue.cube((6, 6, 6), stencil=26, init="zero")
    xi = random_patterns(2, t.n, rng)
    store_patterns(t, xi, gain=4.0)
    land = find_fixed_points(t, starts=48, seed=0)
    # every point found is a fixed point s = clip(W s + b, 0, 1) (scipy's matrix, not the kernel)
    W = t.to_scipy().toarray().astype(np.float64)
    b = t.bias.astype(np.float64)
    for p in land.points:
        assert np.abs(np.clip(W @ p + b, 0, 1) - p).max() < 1e-3
    assert len(set(land.label.tolist())) == len(land.energy)
    # the stored patterns are fixed points, and random starts find them (or fall nearby)
    for x in xi:
        assert np.abs(np.clip(W @ x + b, 0, 1) - x).max() == 0
    m = overlaps(np.clip(land.points, 0, 1), xi)
    assert m.max() > 0.99
    ds = land.to_dataset()
    assert ds.state.dims == ("point", "x", "y", "z") and float(ds.basin.sum()) == pytest.approx(1.0)


# ------------------------------------------------------------------ the run and its config
def test_memory_and_landscape_run(tmp_path):
    cfg = {"name": "m", "seed": 0,
           "memory": {"shape": [6, 6, 6], "load_min": 1, "load_max": 5, "load_step": 2, "trials": 4},
           "landscape": {"shape": [5, 5, 5], "starts": 16, "patterns": 2}}
    out = tmp_path / "m.zarr"
    s = run(cfg, out, progress=False)
    assert s.status == "complete"
    mem = xr.open_zarr(out, group="memory", consolidated=False)
    assert mem.overlap.dims == ("rule", "load", "trial") and list(mem["load"].values) == [1, 3, 5]
    assert int(mem.capacity.sel(rule="hebbian")) == s.figures["memory_capacity_hebbian"]
    land = xr.open_zarr(out, group="landscape", consolidated=False)
    assert float(land.basin.sum()) == pytest.approx(1.0)
    assert (tmp_path / "m.memory.png").is_file()
    assert run(cfg, out, resume=True, progress=False).status == "already complete"


@pytest.mark.parametrize("patch, needle", [
    ({"memory": {"load_min": 5, "load_max": 2}}, "[memory] load_max"),
    ({"memory": {"rules": ["oja"]}}, "[memory] rules"),
    ({"memory": {"mode": "mask"}}, "[memory] mode"),
    ({"memory": {"cue_fraction": 1.5}}, "[memory] cue_fraction"),
    ({"memory": {"shape": [4, 4]}}, "[memory] shape"),
    ({"memory": {"stencil": 7}}, "[memory] stencil"),
    ({"landscape": {"starts": 0}}, "[landscape] starts"),
    ({"landscape": {"label": 2}}, "[landscape] label"),
    ({"landscape": {"source": "missing.zarr"}}, "[landscape] source"),
    ({"memory": {}, "tissue": {"shape": [4, 4, 4]}}, "[tissue]"),
    ({"memory": {}, "oscillators": {}}, "different studies"),
])
def test_bad_memory_configs_name_the_key(patch, needle):
    with pytest.raises(ConfigError) as err:
        load_config({"name": "m", **patch})
    assert needle in str(err.value), str(err.value)


def test_shipped_memory_config_is_valid():
    from conftest import REPO

    cfg = load_config(REPO / "configs" / "memory-capacity.toml")
    assert cfg.memory is not None and cfg.memory.stencil == 26 and cfg.memory.cue_fraction == 0.2
