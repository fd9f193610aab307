"""Hebbian (outer-product) storage of binary patterns on the existing synapses."""

from __future__ import annotations

import numpy as np


def store_patterns(tissue, patterns, gain: float = 1.0) -> None:
    """Set the weights and biases so that 0/1 ``patterns`` are attractors.

    With spins ``sigma = 2 * rho - 1`` the Hopfield couplings restricted to the
    tissue's synapses are ``J_ij = gain / K_i * sum_mu sigma_i^mu sigma_j^mu``
    (``K_i`` the degree, symmetrised by the mean of both ends). Rewriting
    ``-1/2 sum J sigma sigma`` in rates gives ``W = 4 J`` and
    ``b_i = -2 sum_j J_ij`` (see docs/architecture.md).

    Parameters
    ----------
    tissue : Tissue
    patterns : array (P, N) of 0/1
    gain : float
        Overall coupling strength.
    """
    xi = np.asarray(patterns, dtype=np.float64)
    if xi.ndim != 2 or xi.shape[1] != tissue.n:
        raise ValueError(f"patterns must be (P, {tissue.n}), got {xi.shape}")
    if not np.all((xi == 0) | (xi == 1)):
        raise ValueError("patterns must hold 0/1 values")
    sig = 2 * xi - 1                       # (P, N)
    nbr = tissue.syn.nbr
    occ = nbr >= 0
    j = np.where(occ, nbr, 0)
    deg = np.maximum(occ.sum(1), 1).astype(np.float64)
    norm = 0.5 * (1 / deg[:, None] + 1 / deg[j])  # symmetric normalisation
    corr = np.einsum("pi,pik->ik", sig, sig[:, j])  # sum_mu sigma_i sigma_j
    J = np.where(occ, gain * norm * corr, 0.0)
    tissue.syn.w[...] = (4 * J).astype(tissue.dtype)
    tissue.bias[...] = np.where(tissue.alive, -2 * J.sum(1), 0).astype(tissue.dtype)
