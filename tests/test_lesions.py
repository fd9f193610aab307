"""Lesions (tissue.lesions) and the graph view of damage (tissue.graph).

Truths used: brute-force geometry on voxel coordinates, set algebra on the edge
lists, the law of large numbers for weight noise, and scipy.sparse.csgraph / dense
numpy linear algebra as independent references for the networkx metrics.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import (
    breadth_first_order,
    connected_components,
    shortest_path,
)

from tissue import HIDDEN, INPUT, OUTPUT, Tissue
from tissue.graph import METRICS, damage_metrics
from tissue.lesions import (
    LesionLog,
    candidates,
    cut_synapses,
    kill_ball,
    kill_fraction,
    kill_region,
    kill_slab,
    weight_noise,
)


def _tissue(shape=(6, 6, 4), seed=0, small_world=0.1):
    t = Tissue.cube(shape, stencil=26, small_world=small_world, seed=seed)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=4)
    return t


def _no_synapse_on_dead(t):
    i, j, _ = t.syn.edges()
    return bool(np.all(t.alive[i]) and np.all(t.alive[j]))


# ------------------------------------------------------------------ neuron lesions
def test_kill_fraction_counts_roles_and_nesting():
    t = _tissue()
    hidden = np.flatnonzero(t.role == HIDDEN)
    log = LesionLog()
    a = t.copy()
    rec = kill_fraction(a, 0.3, seed=7, log=log, when="t1")
    assert rec.n_neurons == round(0.3 * len(hidden))
    assert set(rec.voxels.tolist()) <= set(hidden.tolist())
    assert not a.alive[rec.voxels].any() and a.alive.sum() == t.n - rec.n_neurons
    assert np.all(a.bias[rec.voxels] == 0)
    assert np.all(a.syn.deg[rec.voxels] == 0)
    assert _no_synapse_on_dead(a)
    a.syn.check()
    # synapses removed: exactly those with an end among the victims
    i, j, _ = t.syn.edges()
    dead = np.isin(i, rec.voxels) | np.isin(j, rec.voxels)
    assert rec.n_synapses == int(dead.sum()) == t.syn.n_synapses - a.syn.n_synapses
    # same seed -> same victims; a larger fraction kills a superset
    b = t.copy()
    assert np.array_equal(kill_fraction(b, 0.3, seed=7).voxels, rec.voxels)
    c = t.copy()
    big = kill_fraction(c, 0.6, seed=7).voxels
    assert set(rec.voxels.tolist()) < set(big.tolist())
    # the log records it
    assert len(log) == 1 and log.records[0].when == "t1" and log.records[0].params["fraction"] == 0.3


def test_kill_ball_and_slab_match_geometry():
    t = _tissue((7, 7, 5))
    c = t.lattice.coords()
    centre, r = (3.0, 2.0, 2.0), 2.2
    a = t.copy()
    rec = kill_ball(a, centre, r)
    d2 = ((c - np.array(centre)) ** 2).sum(1)
    want = np.flatnonzero((d2 <= r * r) & (t.role == HIDDEN))
    assert np.array_equal(rec.voxels, want)
    assert rec.params == {"roles": ["hidden"], "center": list(centre), "radius": r}
    b = t.copy()
    rec = kill_slab(b, "y", 1, 3, roles=("hidden", "output"))
    want = np.flatnonzero((c[:, 1] >= 1) & (c[:, 1] < 3) & np.isin(t.role, [HIDDEN, OUTPUT]))
    assert np.array_equal(rec.voxels, want)
    assert _no_synapse_on_dead(b)
    # a second lesion over dead voxels kills nobody again
    again = kill_slab(b, "y", 1, 3, roles=("hidden", "output"))
    assert again.n_neurons == 0 and again.n_synapses == 0


def test_kill_region_roles_and_errors():
    t = _tissue()
    rec = kill_region(t, np.arange(t.n), roles=("input",))
    assert np.array_equal(rec.voxels, np.flatnonzero(t.role == INPUT))
    with pytest.raises(ValueError, match="roles"):
        candidates(t, roles=("glia",))
    with pytest.raises(ValueError, match="fraction"):
        kill_fraction(t, 1.5)
    with pytest.raises(ValueError, match="fraction"):
        cut_synapses(t, -0.1)
    with pytest.raises(ValueError, match="noise std"):
        weight_noise(t, float("nan"))


# ------------------------------------------------------------------ synapse lesions
def test_cut_synapses_removes_exactly_the_drawn_pairs():
    t = _tissue()
    i0, j0, w0 = t.syn.edges()
    rec = cut_synapses(t, 0.25, seed=3)
    assert rec.n_synapses == round(0.25 * len(i0))
    i1, j1, w1 = t.syn.edges()
    before = {(a, b): w for a, b, w in zip(i0.tolist(), j0.tolist(), w0.tolist())}
    after = {(a, b): w for a, b, w in zip(i1.tolist(), j1.tolist(), w1.tolist())}
    cut = set(zip(rec.synapses[0].tolist(), rec.synapses[1].tolist()))
    assert set(before) - set(after) == cut and set(after) <= set(before)
    assert all(before[k] == after[k] for k in after)      # the survivors keep their weights
    t.syn.check()


def test_weight_noise_is_symmetric_with_the_requested_spread():
    t = _tissue((10, 10, 6), small_world=0.0)
    _, _, w0 = t.syn.edges()
    rec = weight_noise(t, 0.5, seed=1)
    t.syn.check()                                          # symmetric: the same draw on both slots
    _, _, w1 = t.syn.edges()
    eps = (w1 - w0).astype(np.float64)
    sigma = 0.5 * np.std(w0.astype(np.float64))
    assert rec.noise == pytest.approx(sigma, rel=1e-6)
    # m ~ 3000 gaussian draws: sample mean within 4 standard errors, sample std within 5%
    assert abs(eps.mean()) < 4 * sigma / np.sqrt(len(eps))
    assert eps.std() == pytest.approx(sigma, rel=0.05)


def test_lesion_log_dataset():
    t = _tissue()
    log = LesionLog()
    r1 = kill_fraction(t, 0.2, seed=0, log=log, when="first")
    cut_synapses(t, 0.1, seed=0, log=log, when="second")
    r3 = kill_ball(t, (2, 2, 2), 1.5, log=log, when="third")
    ds = log.to_dataset(t.lattice)
    recs = json.loads(ds.attrs["lesion_log"])
    assert [r["kind"] for r in recs] == ["random", "synapses", "ball"]
    assert [r["when"] for r in recs] == ["first", "second", "third"]
    assert recs[2]["params"]["radius"] == 1.5 and recs[1]["synapses"] == ds.log_synapses.values[1] > 0
    by = ds.lesioned_by.values.reshape(-1)
    assert set(np.flatnonzero(by == 0).tolist()) == set(r1.voxels.tolist())
    assert set(np.flatnonzero(by == 2).tolist()) == set(r3.voxels.tolist())
    assert np.array_equal(np.flatnonzero(by >= 0), np.flatnonzero(~t.alive))
    assert ds.log_neurons.values.tolist() == [r1.n_neurons, 0, r3.n_neurons]


# ------------------------------------------------------------------ graph metrics
def _reference_metrics(t) -> dict:
    """The metrics from scipy.sparse.csgraph and dense numpy, not networkx."""
    alive = np.flatnonzero(t.alive)
    i, j, _ = t.syn.edges()
    n = t.n
    A = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    A = ((A + A.T) > 0).astype(np.int64).tocsr()
    Aa = A[alive][:, alive]
    ncomp, lab = connected_components(Aa, directed=False)
    sizes = np.bincount(lab)
    out = {"neurons": len(alive), "synapses": len(i), "mean_degree": 2 * len(i) / len(alive),
           "components": ncomp, "largest_component": sizes.max() / len(alive)}
    role = t.role[alive]
    free = np.flatnonzero(role != INPUT)
    nc, fl = connected_components(Aa[free][:, free], directed=False)
    touches_in = np.asarray((Aa[free][:, np.flatnonzero(role == INPUT)]).sum(1)).ravel() > 0
    comp_in = np.zeros(nc, bool)
    comp_in[fl[touches_in]] = True
    comp_out = np.zeros(nc, bool)
    comp_out[fl[role[free] == OUTPUT]] = True
    hid = role[free] == HIDDEN
    out["hidden_connected"] = float(np.mean((comp_in & comp_out)[fl[hid]])) if hid.any() else np.nan
    d = shortest_path(Aa, unweighted=True, directed=False, indices=np.flatnonzero(role == INPUT)).min(0)
    do = d[role == OUTPUT]
    ok = np.isfinite(do)
    out.update(outputs_reached=ok.mean(), path_mean=do[ok].mean() if ok.any() else np.nan,
               path_min=do[ok].min() if ok.any() else np.nan, path_max=do[ok].max() if ok.any() else np.nan)
    D = Aa.toarray().astype(np.float64)
    tri = np.diag(D @ D @ D) / 2
    k = D.sum(1)
    c = np.where(k > 1, 2 * tri / np.maximum(k * (k - 1), 1), 0.0)
    out["clustering"] = c.mean()
    return out


@pytest.mark.parametrize("case", range(4))
def test_graph_metrics_match_scipy_reference(case):
    rng = np.random.default_rng(case)
    t = _tissue((6, 6, 5), seed=case, small_world=0.05)
    if case >= 1:
        kill_fraction(t, 0.5 + 0.15 * case, seed=case)
    if case >= 2:
        cut_synapses(t, 0.3, seed=case)
    if case == 3:      # cut the tissue in two along z: outputs unreachable
        kill_slab(t, "z", 2, 3)
        # and remove every long-range synapse across the cut
        i, j, _ = t.syn.edges()
        zi, zj = t.lattice.coords(i)[:, 2], t.lattice.coords(j)[:, 2]
        for a, b in zip(i[(zi < 2) != (zj < 2)].tolist(), j[(zi < 2) != (zj < 2)].tolist()):
            t.syn.remove(a, b)
    got = damage_metrics(t)
    ref = _reference_metrics(t)
    assert set(got) == set(METRICS)
    for k in METRICS:
        if np.isnan(ref[k]):
            assert np.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-12), k
    if case == 3:
        assert got["outputs_reached"] == 0 and got["hidden_connected"] == 0
    assert rng is not None


def test_graph_metrics_intact_cube_known_values():
    # an intact 26-neighbour cube without rewiring: one component, every hidden neuron connected,
    # inputs at z = 0 and outputs at z = 3: the shortest path is 3 hops for every output
    t = _tissue((5, 5, 4), small_world=0.0)
    m = damage_metrics(t)
    assert m["components"] == 1 and m["largest_component"] == 1 and m["hidden_connected"] == 1
    assert m["path_min"] == m["path_max"] == m["path_mean"] == 3 and m["outputs_reached"] == 1
    # BFS on the CSR export confirms it: everything is reached, every output at 3 hops from the inputs
    order, _ = breadth_first_order(t.to_scipy() != 0, int(t.region("input")[0]), directed=False)
    assert len(order) == t.n
    d = shortest_path(t.to_scipy() != 0, unweighted=True, directed=False, indices=t.region("input")).min(0)
    assert np.all(d[t.region("output")] == 3)
