"""Oscillatory associative memory: phase patterns stored by a complex outer-product rule.

A phase pattern is ``xi_i = exp(i phi_i)``. The complex Hebbian rule restricted
to the existing synapses of a tissue is::

    C_ij = gain * c_ij * sum_mu xi_i^mu conj(xi_j^mu),     c_ij = (1/K_i + 1/K_j) / 2

(``K_i`` the degree). ``C`` is Hermitian (``C_ji = conj(C_ij)``), so the phase
dynamics ``dtheta_i/dt = sum_j |C_ij| sin(theta_j - theta_i + arg C_ij)``
(:class:`dynamics.Kuramoto` on a complex :class:`dynamics.Network`) is the
gradient flow of the XY energy ``E = -1/2 sum_ij Re(conj(z_i) C_ij z_j)``, and
each stored pattern is a fixed point of it for one stored pattern (all
``theta_j - theta_i + arg C_ij = 0``); with several patterns the others add
crosstalk. The retrieval overlap is ``m = |1/N sum_i z_i conj(xi_i)|`` with
``z = exp(i theta)`` over the living neurons: 1 for perfect recall (up to a
global phase, which the energy cannot see), ~``N^-1/2`` for unrelated phases.

Functions: :func:`random_phase_patterns`, :func:`hebbian_phase_weights`,
:func:`phase_cues` (a fraction of phases re-drawn uniformly),
:func:`phase_overlap`, :func:`recall`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hebbian_phase_weights", "phase_cues", "phase_overlap", "random_phase_patterns", "recall"]


def random_phase_patterns(count: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` patterns of ``n`` independent phases uniform on ``[-pi, pi)``: ``(count, n)``."""
    if int(count) < 1 or int(n) < 1:
        raise ValueError(f"count and n must be >= 1, got {count!r}, {n!r}")
    return rng.uniform(-np.pi, np.pi, (int(count), int(n)))


def hebbian_phase_weights(syn, patterns, gain: float = 1.0) -> np.ndarray:
    """The complex outer-product coupling on the slots of a synapse table.

    Parameters
    ----------
    syn : tissue.wiring.Synapses
        The wiring (only its existing synapses get a weight).
    patterns : array (P, N)
        Phases ``phi`` of the stored patterns.
    gain : float
        Overall scale (> 0).

    Returns
    -------
    complex array (N, K): ``C_ij`` at slot ``(i, k)`` with ``j = nbr[i, k]``, 0 in
    empty slots; Hermitian (``C[j, rev[i, k]] == conj(C[i, k])``). Use it with
    ``dynamics.Network.from_tissue(tissue, weights=C)``.
    """
    phi = np.asarray(patterns, dtype=np.float64)
    if phi.ndim != 2 or phi.shape[1] != syn.n:
        raise ValueError(f"patterns must be (P, {syn.n}) phases, got shape {phi.shape}")
    if not np.all(np.isfinite(phi)):
        raise ValueError("patterns contain NaN or inf")
    if not (np.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be a finite number > 0, got {gain!r}")
    xi = np.exp(1j * phi)                       # (P, N)
    occ = syn.nbr >= 0
    j = np.where(occ, syn.nbr, 0)
    deg = np.maximum(occ.sum(1), 1).astype(np.float64)
    norm = 0.5 * (1.0 / deg[:, None] + 1.0 / deg[j])
    corr = np.einsum("pi,pik->ik", xi, np.conj(xi[:, j]))   # sum_mu xi_i conj(xi_j)
    return np.where(occ, gain * norm * corr, 0.0)


def phase_cues(patterns, fraction: float, trials_per_pattern: int, rng: np.random.Generator, alive=None):
    """Noisy cues: copies of the patterns with ``round(fraction * n_alive)`` living phases,
    drawn without replacement, replaced by uniform phases.

    Returns ``(cues (B, N), target (B,))``; trial ``b`` cues pattern ``b // trials_per_pattern``.
    """
    phi = np.asarray(patterns, dtype=np.float64)
    p, n = phi.shape
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    if int(trials_per_pattern) < 1:
        raise ValueError(f"trials_per_pattern must be >= 1, got {trials_per_pattern!r}")
    idx = np.arange(n) if alive is None else np.flatnonzero(alive)
    k = round(fraction * len(idx))
    target = np.repeat(np.arange(p), int(trials_per_pattern))
    cues = phi[target].copy()
    for b in range(len(target)):
        sel = rng.choice(idx, size=k, replace=False)
        cues[b, sel] = rng.uniform(-np.pi, np.pi, k)
    return cues, target


def phase_overlap(theta, patterns, mask=None) -> np.ndarray:
    """Retrieval overlaps ``m = |1/M sum_i exp(i theta_i) conj(xi_i)|`` over the neurons in
    ``mask`` (default all): phases ``(..., N)`` against patterns ``(P, N)`` -> ``(..., P)``."""
    th = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(patterns, dtype=np.float64)
    if th.shape[-1] != phi.shape[-1]:
        raise ValueError(f"theta has {th.shape[-1]} neurons, patterns {phi.shape[-1]}")
    sel = np.ones(phi.shape[-1], bool) if mask is None else np.asarray(mask, bool)
    z = np.exp(1j * th[..., sel])
    xi = np.exp(1j * phi[:, sel])
    return np.abs(z @ np.conj(xi).T) / sel.sum()


def recall(tissue, weights, cues, steps: int = 2000, dt: float = 0.05, noise: float = 0.0, seed: int = 0,
           record_every: int | None = None, progress: bool = False):
    """Retrieve from cues: the phase (Kuramoto, ``omega = 0``, coupling 1) gradient flow on the
    complex coupling ``weights`` of ``tissue``'s synapses, from the cue phases ``(B, N)``.

    Returns the :class:`dynamics.OscResult` (``res.theta``: final phases).
    """
    from dynamics.oscillators import Integrator, Kuramoto, Network

    net = Network.from_tissue(tissue, weights=weights)
    integ = Integrator(dt=dt, method="auto", noise=noise, seed=seed)
    return integ.run(Kuramoto(omega=0.0, coupling=1.0), net, steps, init=np.asarray(cues, np.float64),
                     record_every=record_every, progress=progress)
