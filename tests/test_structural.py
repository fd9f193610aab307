"""Structural plasticity (plasticity.structural) and EqProp's cache after structural edits.

The property test drives random sequences of lesions, prunes, growths and births
and checks the invariants after every edit against brute-force references:
symmetric weights, no synapse on a dead neuron, no duplicates or self-loops, and
the padded table, the CSR export and the networkx export holding the same graph.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamics import Langevin
from plasticity import EqProp
from plasticity.structural import Scheduler, StructuralPlasticity, remap_slots
from tissue import INPUT, Tissue
from tissue.lesions import cut_synapses, kill_ball, kill_fraction, weight_noise


def _tissue(shape=(5, 5, 4), seed=0):
    t = Tissue.cube(shape, stencil=26, small_world=0.1, seed=seed, bias=0.2)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=2)
    return t


def _table_dict(t) -> dict:
    """{(i, j): w} read slot by slot with plain Python loops (both directions)."""
    out = {}
    for i in range(t.n):
        for k in range(t.syn.width):
            j = int(t.syn.nbr[i, k])
            if j >= 0:
                assert (i, j) not in out, "duplicate synapse"
                out[(i, j)] = float(t.syn.w[i, k])
    return out


def check_invariants(t):
    t.syn.check()
    d = _table_dict(t)
    for (i, j), w in d.items():
        assert i != j, "self-loop"
        assert d[(j, i)] == w, "asymmetric weight"
        assert t.alive[i] and t.alive[j], "synapse on a dead neuron"
    # CSR export: the same pairs and weights
    csr = t.to_scipy().tocoo()
    assert {(int(a), int(b)): float(w) for a, b, w in zip(csr.row, csr.col, csr.data)} == d
    # networkx export: living nodes, the same undirected edges and weights
    g = t.to_networkx()
    assert set(g.nodes) == set(np.flatnonzero(t.alive).tolist())
    und = {(min(i, j), max(i, j)): w for (i, j), w in d.items()}
    assert {(min(a, b), max(a, b)): float(w) for a, b, w in g.edges(data="weight")} == und


def _loud(sp, t, rng):
    """Give the rules a random running nudge and probe rates (as a probe would)."""
    b = 3
    rp, rm = rng.random((b, t.n)), rng.random((b, t.n))
    rp[:, ~t.alive] = rm[:, ~t.alive] = 0
    sp.observe_nudge(t, rp, rm, beta=0.1)


OPS = st.lists(st.tuples(st.sampled_from(["kill", "ball", "cut", "noise", "prune", "grow", "birth", "birth_far",
                                          "learn"]),
                         st.integers(0, 2**16)), min_size=1, max_size=8)


@given(OPS)
def test_random_edit_sequences_keep_the_invariants(ops):
    t = _tissue()
    sp = StructuralPlasticity(prune_weight=0.1, prune_dw=0.5, prune_max=0.3, grow_max=15, grow_quantile=0.5,
                              birth_max=5, birth_quantile=0.0, seed=1)
    far = StructuralPlasticity(birth_max=5, birth_quantile=0.0, birth_small_world=0.5, seed=2)
    for op, s in ops:
        rng = np.random.default_rng(s)
        if op == "kill":
            kill_fraction(t, float(rng.uniform(0, 0.5)), seed=s)
        elif op == "ball":
            c = rng.uniform(0, np.array(t.lattice.shape) - 1)
            kill_ball(t, c, float(rng.uniform(0.5, 2.5)), roles=("hidden", "output"))
        elif op == "cut":
            cut_synapses(t, float(rng.uniform(0, 0.3)), seed=s)
        elif op == "noise":
            weight_noise(t, 0.3, seed=s)
        elif op == "learn":   # a fake update of random size on every synapse, seen by the dw statistics
            w0 = t.syn.w.astype(np.float64)
            i, j, _ = t.syn.edges()
            for a, b in zip(i.tolist(), j.tolist()):
                k = t.syn.slot(a, b)
                dw = np.float32(rng.normal(0, 0.01))
                t.syn.w[a, k] += dw
                t.syn.w[b, t.syn.rev[a, k]] = t.syn.w[a, k]
            sp.observe_update(t, w0)
        else:
            _loud(sp, t, rng)
            if op == "prune":
                sp.prune_silent(t)
            elif op == "grow":
                sp.grow_synapses(t)
            elif op == "birth":
                sp.birth(t)
            else:
                _loud(far, t, rng)
                far.birth(t)
        check_invariants(t)


# ------------------------------------------------------------------ the rules, one by one
def test_prune_removes_exactly_the_silent_synapses_smallest_first():
    t = _tissue()
    rng = np.random.default_rng(0)
    sp = StructuralPlasticity(prune_weight=0.1, prune_dw=0.004, prune_max=1.0)
    w0 = t.syn.w.astype(np.float64)
    i, j, _ = t.syn.edges()
    dws = {}
    for a, b in zip(i.tolist(), j.tolist()):   # one update: |dw| uniform in [0, 0.01)
        k = t.syn.slot(a, b)
        dws[(a, b)] = abs(float(np.float32(rng.uniform(-0.01, 0.01))))
        t.syn.w[a, k] += np.float32(np.sign(rng.random() - 0.5) * dws[(a, b)])
        t.syn.w[b, t.syn.rev[a, k]] = t.syn.w[a, k]
    sp.observe_update(t, w0)                   # first observation: the running |dw| is this |dw|
    before = _table_dict(t)
    dw_now = {(a, b): abs(before[(a, b)] - float(w0[a, t.syn.slot(a, b)])) for (a, b) in dws}
    silent = {p for p in dws if abs(before[p]) <= 0.1 and dw_now[p] <= 0.004}
    n = sp.prune_silent(t)
    after = {(a, b) for (a, b) in _table_dict(t) if a < b}
    assert n == len(silent) > 0
    assert set(dws) - after == silent
    # with a cap, the smallest |w| among the silent ones go first
    t2 = _tissue()
    sp2 = StructuralPlasticity(prune_weight=1.0, prune_dw=1.0, prune_max=1.0)
    sp2.observe_update(t2, t2.syn.w.astype(np.float64))     # no change: every synapse silent
    d = {p: abs(w) for p, w in _table_dict(t2).items() if p[0] < p[1]}
    n = sp2.prune_silent(t2, max_count=10)
    gone = set(d) - {p for p in _table_dict(t2) if p[0] < p[1]}
    assert n == 10 and len(gone) == 10
    assert max(d[p] for p in gone) <= min(d[p] for p in set(d) - gone)
    # budget
    sp3 = StructuralPlasticity(prune_weight=1.0, prune_dw=1.0, prune_max=1.0, prune_budget=7)
    t3 = _tissue()
    sp3.observe_update(t3, t3.syn.w.astype(np.float64))
    assert sp3.prune_silent(t3) == 7 and sp3.prune_silent(t3) == 0


def test_unmeasured_synapses_are_not_silent():
    t = _tissue()
    sp = StructuralPlasticity(prune_weight=1.0, prune_dw=1.0, prune_max=1.0)
    assert sp.prune_silent(t) == 0


def test_grow_follows_the_contrast_within_the_radius():
    t = _tissue((6, 6, 4))
    kill_fraction(t, 0.3, seed=2)
    cut_synapses(t, 0.5, seed=2)
    rng = np.random.default_rng(3)
    sp = StructuralPlasticity(grow_radius=1.5, grow_quantile=0.7, grow_max=25, grow_weight=0.02)
    rp, rm = rng.random((4, t.n)), rng.random((4, t.n))
    rp[:, ~t.alive] = rm[:, ~t.alive] = 0
    sp.observe_nudge(t, rp, rm, beta=0.1)
    before = set(_table_dict(t))
    n = sp.grow_synapses(t)
    new = {(a, b) for (a, b) in set(_table_dict(t)) - before if a < b}
    assert n == len(new) == 25
    # brute-force candidate set: living, unconnected, within the radius, one end loud, not input-input
    nudge = np.abs(rp - rm).mean(0)
    free = t.alive & (t.role != INPUT)
    thr = np.quantile(nudge[free], 0.7)
    loud = free & (nudge >= thr)
    c = t.lattice.coords()
    score = {}
    for a in range(t.n):
        for b in range(a + 1, t.n):
            if not (t.alive[a] and t.alive[b]) or (a, b) in before:
                continue
            if not (loud[a] or loud[b]) or (t.role[a] == INPUT and t.role[b] == INPUT):
                continue
            if ((c[a] - c[b]) ** 2).sum() > 1.5 ** 2 + 1e-9:
                continue
            score[(a, b)] = ((rp[:, a] * rp[:, b]) - (rm[:, a] * rm[:, b])).mean() / 0.2
    best = sorted(score, key=lambda p: -abs(score[p]))[:25]
    assert new == set(best)
    d = _table_dict(t)
    for p in new:
        assert d[p] == pytest.approx(0.02 * np.sign(score[p]))
    check_invariants(t)


def test_births_fill_dead_voxels_next_to_loud_neurons():
    t = _tissue((6, 6, 5))
    rec = kill_ball(t, (2.5, 2.5, 2.0), 1.8)
    assert rec.n_neurons > 5
    sp = StructuralPlasticity(birth_radius=1.75, birth_quantile=0.0, birth_max=4, birth_weight=0.05, seed=0)
    rng = np.random.default_rng(0)
    rp = rng.random((2, t.n))
    rm = rp.copy()
    near = np.isin(np.arange(t.n), rec.voxels[:1])       # make the first lesioned voxel's area loud
    c = t.lattice.coords()
    d0 = np.sqrt(((c - c[rec.voxels[0]]) ** 2).sum(1))
    rp[:, (d0 <= 2.5) & t.alive] += 0.5
    rp[:, ~t.alive] = rm[:, ~t.alive] = 0
    sp.observe_nudge(t, rp, rm, beta=0.1)
    dead_before = ~t.alive.copy()
    t.bias[:] = np.where(t.alive, np.random.default_rng(5).uniform(0, 0.4, t.n), 0).astype(t.bias.dtype)
    bias_before = t.bias.copy()
    new = sp.birth(t)
    assert len(new) == 4 and dead_before[new].all() and t.alive[new].all()
    assert np.all(t.role[new] != INPUT) and near.any()
    assert np.all(sp.born[new] == 0) and np.sum(sp.born >= 0) == 4
    # each newborn is wired to exactly its living neighbours within the radius, and takes the mean
    # bias of its (previously) living free neighbours
    for v in new.tolist():
        near_v = np.sqrt(((c - c[v]) ** 2).sum(1)) <= 1.75 + 1e-9
        old_free = near_v & ~dead_before & (t.role != INPUT)
        assert t.bias[v] == pytest.approx(float(np.mean(bias_before[old_free].astype(np.float64))), rel=1e-6)
        nb = set(np.flatnonzero(near_v & t.alive).tolist()) - {v}
        row = set(t.syn.nbr[v, :t.syn.deg[v]].tolist())
        assert row == nb
        assert np.all(np.abs(t.syn.w[v, :t.syn.deg[v]]) <= 0.05)
    # the loudest sites are chosen: mean neighbour nudge of the chosen >= that of any other dead site
    nudge = sp.nudge

    def site_score(v):
        nb = np.flatnonzero((np.sqrt(((c - c[v]) ** 2).sum(1)) <= 1.75 + 1e-9) & ~dead_before
                            & (t.role != INPUT))
        return nudge[nb].mean() if len(nb) else 0.0
    others = [v for v in np.flatnonzero(dead_before & ~t.alive) if t.role[v] != INPUT]
    assert min(site_score(v) for v in new) >= max([site_score(v) for v in others] + [0])
    check_invariants(t)


def test_long_range_newborns_keep_their_synapse_count_and_draw_far_partners_uniformly():
    """birth_small_world = f moves the far end of round(f m) of the m local synapses a set of newborns
    would get to living neurons drawn uniformly: the count of new synapses is m, about f m of them
    are longer than the birth radius, and their far ends spread over the living neurons as a uniform
    draw does (chi-square over the z layers against the living count per layer)."""
    from scipy import stats

    f, radius = 0.3, 1.75
    t = _tissue((12, 12, 6), seed=3)
    kill_ball(t, (5.5, 5.5, 2.5), 3.0)
    sp = StructuralPlasticity(birth_radius=radius, birth_quantile=0.0, birth_max=200, birth_small_world=f, seed=4)
    _loud(sp, t, np.random.default_rng(0))
    alive_before, n_before = t.alive.copy(), t.syn.n_synapses
    c = t.lattice.coords()
    new = sp.birth(t)
    assert len(new) > 50
    # m: the distinct pairs (newborn, living neighbour within the radius) of the local wiring
    young = np.zeros(t.n, bool)
    young[new] = True
    pairs = set()
    for v in new.tolist():
        near = np.flatnonzero((np.sqrt(((c - c[v]) ** 2).sum(1)) <= radius + 1e-9) & t.alive)
        pairs |= {(min(v, u), max(v, u)) for u in near.tolist() if u != v}
    m = len(pairs)
    assert t.syn.n_synapses - n_before == m
    i, j, _ = t.syn.edges()
    mine = young[i] | young[j]
    long = mine & (np.sqrt(((c[i] - c[j]) ** 2).sum(1)) > radius + 1e-9)
    assert 0.9 * round(f * m) <= long.sum() <= round(f * m)
    # far ends: the newborn's partner (for a pair of two newborns, either one)
    ends = np.where(young[i[long]], j[long], i[long])
    z = c[:, 2]
    obs = np.bincount(z[ends], minlength=t.lattice.shape[2])
    exp = np.bincount(z[t.alive], minlength=t.lattice.shape[2]) / t.alive.sum() * len(ends)
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    assert alive_before.sum() + len(new) == t.alive.sum()
    check_invariants(t)


def test_remap_slots_follows_pairs():
    t = _tissue()
    rng = np.random.default_rng(1)
    vals = np.where(t.syn.nbr >= 0, rng.random(t.syn.nbr.shape), 0.0)
    keyed = {(i, int(t.syn.nbr[i, k])): vals[i, k] for i in range(t.n) for k in range(t.syn.deg[i])}
    old = t.syn.nbr.copy()
    cut_synapses(t, 0.3, seed=0)
    t.syn.add(0, t.n - 1, 0.1)                     # a new (long) synapse
    new = remap_slots(vals, old, t.syn.nbr, fill=-1.0)
    for i in range(t.n):
        for k in range(t.syn.width):
            j = int(t.syn.nbr[i, k])
            if j < 0:
                assert new[i, k] == -1.0
            else:
                assert new[i, k] == keyed.get((i, j), -1.0)
    assert new[0, t.syn.slot(0, t.n - 1)] == -1.0


# ------------------------------------------------------------------ EqProp after edits
def _task(t, n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, len(t.region("input"))))
    y = rng.integers(0, 2, n)
    return x, y


def test_eqprop_follows_structural_edits():
    t = _tissue()
    x, y = _task(t)
    eng = Langevin(dt=0.5, tol=1e-3, max_steps=200)
    tr = EqProp(beta=0.1, lr=0.01, optimizer="adam", batch_size=8, depth_lr=1.5)
    tr.train_step(t, eng, x[:8], y[:8])
    m = tr._state["m"]
    keyed = {(i, int(t.syn.nbr[i, k])): m[i, k] for i in range(t.n) for k in range(t.syn.deg[i])}
    kill_fraction(t, 0.3, seed=0)
    cut_synapses(t, 0.2, seed=0)
    t.syn.add(1, 30, 0.05)
    tr._prepare(t)                                  # noticed without invalidate(): the layout changed
    st_ = tr._state
    assert st_["t"] == 1                            # the optimizer is kept ...
    for i in range(t.n):                            # ... and its moments follow their synapses
        for k in range(t.syn.deg[i]):
            j = int(t.syn.nbr[i, k])
            assert st_["m"][i, k] == keyed.get((i, j), 0.0)
    occ = t.syn.nbr >= 0
    assert np.all(st_["slot_scale"][~occ] == 0) and np.all(st_["slot_scale"][occ] > 0)
    assert np.all(st_["bias_scale"][~t.alive] == 0)
    tr.train_step(t, eng, x[8:], y[8:])
    check_invariants(t)
    assert np.all(t.bias[~t.alive] == 0)            # dead neurons do not learn
    # invalidate() forces a rebuild even when nothing is visible in the key
    tr.invalidate()
    assert tr._state["key"][1] is None
    tr._prepare(t)
    assert tr._state["key"][1] is not None and tr._state["t"] == 2


def test_copied_newborns_are_their_in_plane_neighbours_moved_by_one_voxel():
    """birth_init = "copy": a newborn's synapse at offset d has the weight of its template's synapse
    at offset d (template: the first living in-plane neighbour of +x, -x, +y, -y, read from the
    table before the birth), birth_weight noise where the template has none; its bias is the
    template's. The random init never copies."""
    t0 = _tissue((6, 6, 5))
    rec = kill_ball(t0, (2.5, 2.5, 2.0), 1.8)
    c = t0.lattice.coords()
    rng = np.random.default_rng(0)
    rp = rng.random((2, t0.n))
    rp[:, ~t0.alive] = 0
    t0.bias[:] = np.where(t0.alive, rng.uniform(0, 0.4, t0.n), 0).astype(t0.bias.dtype)
    born = {}
    for init in ("copy", "random"):
        t = t0.copy()
        sp = StructuralPlasticity(birth_quantile=0.0, birth_max=4, birth_weight=0.05, birth_init=init, seed=0)
        sp.observe_nudge(t, rp, np.where(t.alive, rp - 0.3, 0), beta=0.1)
        born[init] = (t, sp.birth(t))
    t, new = born["copy"]
    assert len(new) == 4 and np.array_equal(new, born["random"][1])
    before = {}
    for a, b, w in zip(*t0.syn.edges()):
        before[(int(a), int(b))] = before[(int(b), int(a))] = float(w)
    copied = 0
    for v in new.tolist():
        tmpl = None
        for off in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0)):
            u = c[v] + off
            if np.all((u >= 0) & (u < 6)) and u[2] < 5:
                k = int(t0.lattice.index(*u))
                if t0.alive[k] and t0.role[k] != INPUT:
                    tmpl = k
                    break
        if tmpl is None:                                   # no living in-plane neighbour: random
            assert np.all(np.abs(t.syn.w[v, :t.syn.deg[v]]) <= 0.05)
            continue
        assert t.bias[v] == t0.bias[tmpl]
        for j, w in zip(t.syn.nbr[v, :t.syn.deg[v]].tolist(), t.syn.w[v, :t.syn.deg[v]].tolist()):
            if j in new.tolist():
                continue                                   # newborn pairs: whichever was wired first
            target = c[tmpl] + (c[j] - c[v])
            inside = np.all(target >= 0) and np.all(target < np.array([6, 6, 5]))
            ref = before.get((tmpl, int(t0.lattice.index(*target)))) if inside else None
            if ref is not None:
                assert w == pytest.approx(ref, abs=1e-7)
                copied += 1
            else:
                assert abs(w) <= 0.05
    assert copied > 20
    tr, _ = born["random"]
    assert all(np.all(np.abs(tr.syn.w[v, :tr.syn.deg[v]]) <= 0.05) for v in new.tolist())
    check_invariants(t)
    with pytest.raises(ValueError, match="birth_init"):
        StructuralPlasticity(birth_init="clone")


def test_newborns_learn_faster_for_juvenile_steps():
    """birth_lr: right after birth a newborn's synapses and bias move birth_lr times as far per Adam
    step as an established neuron's, and the factor falls linearly to 1 over juvenile_steps
    structural steps."""
    t = _tissue((6, 6, 5))
    kill_ball(t, (2.5, 2.5, 2.0), 1.8)
    x, y = _task(t, n=8)
    eng = Langevin(dt=0.5, tol=1e-5, max_steps=2000)
    tr = EqProp(beta=0.1, lr=1e-3, optimizer="adam", batch_size=8)
    sp = StructuralPlasticity(prune=False, grow=False, birth_quantile=0.0, birth_max=3, birth_lr=5.0,
                              juvenile_steps=4, seed=0)
    assert sp.juvenile_factors() is None
    sp.step(t, tr, eng, x, y)                        # probe, then 3 births; the trainer is told
    born = np.flatnonzero(sp.born >= 0)
    assert len(born) == 3
    f = np.where(np.isin(np.arange(t.n), born), 5.0, 1.0)
    np.testing.assert_array_equal(sp.juvenile_factors(), f)
    np.testing.assert_array_equal(tr._neuron_lr, f)
    # the first Adam step is +/- factor * lr for every slot with a non-zero gradient
    w0, b0 = t.syn.w.astype(np.float64).copy(), t.bias.astype(np.float64).copy()
    g, gb = tr.gradient(t, *tr.phases(t, eng, x, y))
    tr.train_step(t, eng, x, y)
    j = np.where(t.syn.nbr >= 0, t.syn.nbr, 0)
    touch = (f[:, None] > 1) | (f[j] > 1)
    expect = 1e-3 * np.where(touch, 5.0, 1.0) * np.abs(g) / (np.abs(g) + 1e-8)
    step = np.abs(t.syn.w - w0)
    moved = step > 0
    assert (moved & touch & (t.syn.nbr >= 0)).sum() > 20 and (moved & ~touch).sum() > 100
    np.testing.assert_allclose(step[moved], expect[moved], rtol=1e-4)
    bmoved = np.abs(t.bias - b0) > 0
    assert bmoved[born].all()
    np.testing.assert_allclose(np.abs(t.bias - b0)[bmoved], (1e-3 * f * np.abs(gb) / (np.abs(gb) + 1e-8))[bmoved],
                               rtol=1e-3)
    # linear fall to 1: 4, 3, 2, 1, then 1
    seen = []
    for _ in range(5):
        sp.neurogenesis = False
        sp.step(t, tr)
        seen.append(tr._neuron_lr[born[0]])
    np.testing.assert_allclose(seen, [4.0, 3.0, 2.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="birth_lr"):
        StructuralPlasticity(birth_lr=0.5)


def test_scheduler_clocks():
    t = _tissue()
    x, y = _task(t, n=40)
    eng = Langevin(dt=0.5, tol=1e-3, max_steps=100)
    tr = EqProp(beta=0.1, lr=0.01, optimizer="adam", batch_size=4)
    sp = StructuralPlasticity(prune=False, grow=False, neurogenesis=False)
    calls = []

    class Brake:
        def stalled(self, converged):
            return True

        def check(self, tissue, when=None, reason="", states=None):
            calls.append((when, states.shape))

    sch = Scheduler(tr, eng, sp, every=3, brake=Brake(), homeostasis_every=4)
    seen = []
    sch.fit_epoch(t, x, y, callback=lambda d, n: seen.append((d, n)))
    assert seen == [(b, 10) for b in range(1, 11)]
    assert sp.steps == 3                                   # batches 3, 6, 9
    assert [c[0] for c in calls] == [4, 8] and calls[0][1] == (4, t.n)
    assert sp.nudge is not None and np.all(sp.nudge[~t.alive] == 0)
    assert sp.rate2 is None                                # rates are only kept for activity pruning
    # activity pruning: every batch's free rates feed the running mean square, r2 <- 0.5 r2 + 0.5 mean(rho^2)
    t2 = _tissue()
    tr2 = EqProp(beta=0.1, lr=0.0, optimizer="sgd", batch_size=4)   # lr 0: the rates stay those of t2
    sp2 = StructuralPlasticity(prune=True, prune_weight=0.0, prune_by="activity", rate_decay=0.5,
                               grow=False, neurogenesis=False)
    Scheduler(tr2, eng, sp2, every=100).fit_epoch(t2, x, y)
    order = np.random.default_rng([tr2.seed, 0]).permutation(len(x))
    r2 = None
    for lo in range(0, len(x), 4):
        m = (eng.settle(t2, inputs=x[order[lo:lo + 4]]).rates.astype(np.float64) ** 2).mean(axis=0)
        r2 = m if r2 is None else 0.5 * r2 + 0.5 * m
    np.testing.assert_allclose(sp2.rate2, r2, atol=1e-6)
    with pytest.raises(ValueError, match="every"):
        Scheduler(tr, eng, sp, every=0)
    with pytest.raises(ValueError, match="prune_max"):
        StructuralPlasticity(prune_max=2.0)


def test_scheduled_homeostasis_leaves_a_settling_tissue_alone():
    # the scheduled brake acts on evidence (free phases that stall), not on the contraction alone:
    # a tissue whose every settle converges keeps its weights even with a brake that would rescale
    # at any contraction above 0.01
    from plasticity.homeostasis import LipschitzBrake, contraction

    t = _tissue()
    x, y = _task(t, n=24)
    eng = Langevin(dt=0.5, tol=1e-3, max_steps=2000)
    tr = EqProp(beta=0.1, lr=0.0, optimizer="sgd", batch_size=4)   # lr 0: only the brake could move w
    brake = LipschitzBrake(target=0.005, trigger=0.01)
    free = eng.settle(t, inputs=x)
    assert free.converged.all() and contraction(t, free.rates[:4]) > brake.trigger
    w0 = t.syn.w.copy()
    sch = Scheduler(tr, eng, None, brake=brake, homeostasis_every=2)
    sch.fit_epoch(t, x, y)
    assert sch.batches == 6 and brake.actions == [] and np.array_equal(t.syn.w, w0)
    # ... and when the free phases stall (a step cap of 1), the same brake does rescale
    stalled = Scheduler(tr, Langevin(dt=0.5, tol=1e-3, max_steps=1), None, brake=brake, homeostasis_every=2)
    stalled.fit_epoch(t, x, y)
    assert any(a["reason"] == "scheduled" for a in brake.actions)
    assert np.abs(t.syn.w).max() < np.abs(w0).max()


def test_activity_pruning_takes_the_synapses_that_move_no_fixed_point():
    """A neuron held at rate 0 by a strongly negative bias passes nothing through its
    synapses, and no synapse can wake it: removing every synapse that touches it leaves
    each free fixed point exactly where it was. Ranked by the effective weight
    |w| r_i r_j those synapses go first, whatever their |w|; ranked by |w| others go
    and the fixed points move."""
    t = _tissue((5, 5, 4), seed=3)
    hidden = np.flatnonzero((t.role != INPUT) & (t.lattice.coords()[:, 2] < 3))
    quiet = hidden[:12]
    t.bias[:] = 1.0
    t.bias[quiet] = -10.0
    ii, jj, _ = t.syn.edges()
    touch = np.isin(ii, quiet) | np.isin(jj, quiet)
    for a, b in zip(ii[touch].tolist(), jj[touch].tolist()):   # large weights on the harmless synapses
        k = t.syn.slot(a, b)
        t.syn.w[a, k] = t.syn.w[b, t.syn.rev[a, k]] = np.float32(0.6)
    harmless = {(min(a, b), max(a, b)) for a, b in zip(ii[touch].tolist(), jj[touch].tolist())}
    x, _ = _task(t, n=24, seed=1)
    eng = Langevin(dt=0.5, tol=1e-5, max_steps=5000)
    free = eng.settle(t, inputs=x)
    assert free.converged.all()
    others = np.setdiff1d(np.flatnonzero(t.role != INPUT), quiet)
    assert np.all(free.rates[:, quiet] == 0) and np.all(free.rates[:, others].max(0) > 0)

    def pruned(by):
        t2 = t.copy()
        sp = StructuralPlasticity(prune_weight=1.0, prune_dw=1.0, prune_max=1.0, prune_by=by)
        sp.observe_update(t2, t2.syn.w.astype(np.float64))
        sp.observe_rates(t2, free.rates)
        before = {p for p in _table_dict(t2) if p[0] < p[1]}
        assert sp.prune_silent(t2, max_count=len(harmless)) == len(harmless)
        gone = before - {p for p in _table_dict(t2) if p[0] < p[1]}
        return t2, gone

    t_act, gone_act = pruned("activity")
    assert gone_act == harmless
    moved = np.abs(eng.settle(t_act, inputs=x).state - free.state).max()
    assert moved < 1e-4
    t_w, gone_w = pruned("weight")
    assert not gone_w & harmless                  # |w| = 0.6 is the largest weight: kept
    assert np.abs(eng.settle(t_w, inputs=x).state - free.state).max() > 1e-2
    # one-shot (prune_least): no |dw| observed, so nothing is silent yet, but the ranking alone cuts
    t3 = t.copy()
    sp = StructuralPlasticity(prune_by="activity", prune_budget=len(harmless) + 5)
    sp.observe_rates(t3, free.rates)
    assert sp.prune_silent(t3) == 0
    assert sp.prune_least(t3, len(harmless)) == len(harmless) and sp.prune_budget == 5
    assert {p for p in _table_dict(t) if p[0] < p[1]} - {p for p in _table_dict(t3) if p[0] < p[1]} == harmless
    assert np.abs(eng.settle(t3, inputs=x).state - free.state).max() < 1e-4
    with pytest.raises(ValueError, match="prune_by"):
        StructuralPlasticity(prune_by="size")


def test_effect_pruning_takes_the_synapses_between_clamped_inputs_first():
    """With the input clamped, a synapse between two input neurons has no free end: its
    weight enters no free neuron's drive, so removing all of them leaves every free fixed
    point where it was (to the settle's tolerance), however large the weights. The
    effective weight |w| r_i r_j does not see this (bright pixels have large rates), the
    "effect" ranking does: it cuts those synapses first, before any other synapse of
    saliency 0 (one touching a neuron at rate 0 is harmless to first order only)."""
    t = _tissue((5, 5, 4), seed=4)
    inp = t.role == INPUT
    ii, jj, _ = t.syn.edges()
    both = inp[ii] & inp[jj]
    assert both.sum() >= 40
    for a, b in zip(ii[both].tolist(), jj[both].tolist()):     # the largest weights of the table
        k = t.syn.slot(a, b)
        t.syn.w[a, k] = t.syn.w[b, t.syn.rev[a, k]] = np.float32(0.8)
    x, _ = _task(t, n=24, seed=2)
    x = 0.5 + 0.5 * x                                          # every pixel lit: r_i >= 0.5 on the input
    clamped = set(zip(ii[both].tolist(), jj[both].tolist()))
    eng = Langevin(dt=0.5, tol=1e-6, max_steps=5000)
    free = eng.settle(t, inputs=x)
    assert free.converged.all()

    def cut(by):
        t2 = t.copy()
        sp = StructuralPlasticity(prune_by=by)
        sp.observe_rates(t2, free.rates)
        assert sp.prune_least(t2, len(clamped)) == len(clamped)
        i2, j2, _ = t2.syn.edges()
        return t2, set(zip(ii.tolist(), jj.tolist())) - set(zip(i2.tolist(), j2.tolist()))

    t_eff, gone = cut("effect")
    assert gone == clamped
    assert np.abs(eng.settle(t_eff, inputs=x).state - free.state).max() < 1e-4
    t_act, gone_act = cut("activity")
    assert not gone_act & clamped                              # 0.8 r_i r_j >= 0.2: the largest, kept
    assert np.abs(eng.settle(t_act, inputs=x).state - free.state).max() > 1e-2
    # the ranking itself: the effect saliency is 0 on the clamped pairs and |w| r_i r_j elsewhere
    sp = StructuralPlasticity(prune_by="effect")
    sp.observe_rates(t, free.rates)
    i, k, j, s = sp._half_table(t)
    r = np.sqrt((free.rates.astype(np.float64) ** 2).mean(0))
    assert (inp[i] & inp[j])[:len(clamped)].all()              # listed first: the stable sorts cut them first
    np.testing.assert_allclose(s, np.where(inp[i] & inp[j], 0.0, np.abs(t.syn.w[i, k]) * r[i] * r[j]),
                               rtol=1e-12)


def test_gradmax_newborns_start_where_learning_grows_them_fastest():
    """birth_init = "gradmax": measured by settling the tissue after the birth (not by the
    operator the rule used), the EqProp contrast of the newborn's synapses moves with their
    weights as the contrast operator S predicts (c(w) - c(0) = S w to first order), and the
    rate at which learning grows them along their own direction, w.(c(w) - c(0)) / |w|^2, is the
    top eigenvalue of S: larger than along any of a dozen random directions of the same size
    (the random init's), whose rates scatter around 0."""
    t = _tissue((6, 6, 5))
    kill_ball(t, (2.5, 2.5, 2.0), 1.8)
    x, y = _task(t, n=16)
    eng = Langevin(dt=0.5, tol=1e-7, max_steps=20000)
    tr = EqProp(beta=0.05, batch_size=16)
    rms = 0.01
    sp = StructuralPlasticity(prune=False, grow=False, birth_quantile=0.0, birth_max=1,
                              birth_weight=rms * np.sqrt(3), birth_init="gradmax", seed=0)
    sp.probe(t, tr, eng, x, y)
    (n,) = sp.birth(t).tolist()
    deg = int(t.syn.deg[n])
    nbrs = t.syn.nbr[n, :deg].astype(np.int64)
    w = t.syn.w[n, :deg].astype(np.float64)
    assert deg > 10 and np.sqrt(np.mean(w ** 2)) == pytest.approx(rms, rel=1e-5)
    S, _ = sp.contrast_operator(nbrs)
    lam = np.linalg.eigvalsh(S)[-1]
    assert lam > 0
    np.testing.assert_allclose(w @ S @ w / (w @ w), lam, rtol=1e-5)     # w is the top eigenvector

    def contrast(v):
        tt = t.copy()
        for k in range(deg):
            tt.syn.w[n, k] = tt.syn.w[nbrs[k], tt.syn.rev[n, k]] = np.float32(v[k])
        free, plus, minus = tr.phases(tt, eng, x, y)
        assert free.converged.all()
        assert np.all((free.state[:, n] > 0) & (free.state[:, n] < 1))   # the newborn's linear range
        return ((plus.rates[:, [n]] * plus.rates[:, nbrs]) - (minus.rates[:, [n]] * minus.rates[:, nbrs])
                ).mean(0) / (2 * tr.beta)

    c0 = contrast(np.zeros(deg))
    d = contrast(w) - c0
    assert np.linalg.norm(d - S @ w) < 0.15 * np.linalg.norm(S @ w)
    grow = w @ d / (w @ w)
    assert grow == pytest.approx(lam, rel=0.15)
    rng = np.random.default_rng(1)
    rates = []
    for _ in range(12):
        u = rng.uniform(-1, 1, deg)
        u *= np.linalg.norm(w) / np.linalg.norm(u)
        rates.append(u @ (contrast(u) - c0) / (u @ u))
    assert max(rates) < 0.5 * grow and abs(np.mean(rates)) < 0.25 * grow
    with pytest.raises(ValueError, match="birth_init"):
        StructuralPlasticity(birth_init="oja")
