"""Hebbian storage: the weights of the rule, and stored patterns as attractors at T = 0."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from dynamics import Langevin
from plasticity.hebbian import store_patterns
from tissue import Tissue

SHAPE = (10, 10, 10)


def overlap(rates, xi):
    """Spin overlap ``mean((2 xi - 1)(2 r - 1))`` in [-1, 1] (1: the pattern itself)."""
    return np.mean((2 * xi - 1) * (2 * rates - 1), axis=-1)


def patterns(kind, p, rng):
    if kind == "random":
        return (rng.random((p, int(np.prod(SHAPE)))) < 0.5).astype(float)
    out = []
    for _ in range(p):  # smooth blobs: a thresholded Gaussian-filtered noise field
        f = gaussian_filter(rng.normal(size=SHAPE), 1.5, mode="wrap")
        out.append((f > np.median(f)).astype(float).ravel())
    return np.array(out)


def reference_couplings(t, xi, gain):
    """``J_ij = gain (1/K_i + 1/K_j) / 2 sum_mu sigma_i sigma_j`` on each synapse, by loops."""
    sig = 2 * xi - 1
    deg = np.maximum(t.syn.degree, 1)
    J = {}
    for i, j, _ in zip(*t.syn.edges()):
        J[(i, j)] = gain * 0.5 * (1 / deg[i] + 1 / deg[j]) * float(sig[:, i] @ sig[:, j])
    return J


@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_weights_follow_the_rule(kind):
    rng = np.random.default_rng(1)
    t = Tissue.cube((5, 4, 6), stencil=26, small_world=0.1, dtype="float64", seed=2)
    t.kill(t.lattice.box((0, 0, 0), (2, 2, 2)))
    xi = (rng.random((3, t.n)) < 0.5).astype(float) if kind == "random" else np.tile(
        (t.lattice.coords()[:, 0] >= 2).astype(float), (2, 1))
    store_patterns(t, xi, gain=3.0)
    t.syn.check()  # symmetric, no self-loops, no duplicates
    J = reference_couplings(t, xi, 3.0)
    i, j, w = t.syn.edges()
    assert len(w) == len(J)
    np.testing.assert_allclose(w, [4 * J[(a, b)] for a, b in zip(i.tolist(), j.tolist())], rtol=1e-12)
    rowsum = np.zeros(t.n)
    for (a, b), v in J.items():
        rowsum[a] += v
        rowsum[b] += v
    np.testing.assert_allclose(t.bias, np.where(t.alive, -2 * rowsum, 0), rtol=1e-12, atol=1e-12)
    # on binary states the interaction energy is the Hopfield energy -1/2 sigma^T J sigma + const
    Jm = np.zeros((t.n, t.n))
    for (a, b), v in J.items():
        Jm[a, b] = Jm[b, a] = v
    r = (rng.random((6, t.n)) < 0.5).astype(float)
    r[:, ~t.alive] = 0
    sig = 2 * r - 1
    sig[:, ~t.alive] = 0
    e = Langevin.energy(t, r) - 0.5 * (r**2).sum(1)
    hop = -0.5 * np.einsum("bi,ij,bj->b", sig, Jm, sig)
    assert np.ptp(e - hop) < 1e-9


@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_stored_patterns_are_attractors(kind):
    rng = np.random.default_rng(0)
    t = Tissue.cube(SHAPE, stencil=26, dtype="float32", seed=0)
    xi = patterns(kind, 3, rng)
    store_patterns(t, xi, gain=4.0)
    t.syn.check()
    eng = Langevin(dt=0.2, temperature=0.0, tol=1e-5, max_steps=3000)

    # a stored pattern stays put
    stay = eng.settle(t, init=xi)
    assert stay.converged.all()
    assert np.all(overlap(stay.rates, xi) >= 0.95), overlap(stay.rates, xi)

    # a cue with 20% of the voxels flipped is completed
    cue = xi.copy()
    flip = rng.random(cue.shape) < 0.2
    cue[flip] = 1 - cue[flip]
    assert np.all(overlap(cue, xi) < 0.7)
    got = eng.settle(t, init=cue)
    assert got.converged.all()
    m = overlap(got.rates, xi)
    assert np.all(m >= 0.9), m
    # ... to its own pattern, not another one
    cross = overlap(got.rates[:, None, :], xi[None, :, :])  # (cue, pattern)
    assert np.all(np.argmax(cross, axis=1) == np.arange(3))
    # settling descended the energy, and the attractor is below the cue
    assert np.all(got.energy < Langevin.energy(t, cue))

    # the same tissue before storage does not do this: the weights carry the memory
    blank = Tissue.cube(SHAPE, stencil=26, dtype="float32", seed=0)
    assert np.all(overlap(eng.settle(blank, init=cue).rates, xi) < 0.7)


def test_bad_patterns_raise():
    t = Tissue.cube((3, 3, 3), stencil=6)
    with pytest.raises(ValueError, match="0/1"):
        store_patterns(t, np.full((1, 27), 0.5))
    with pytest.raises(ValueError, match=r"\(P, 27\)"):
        store_patterns(t, np.zeros((2, 26)))
