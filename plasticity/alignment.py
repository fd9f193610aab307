"""The exact gradient of the loss at the free fixed point, and how well EqProp follows it.

At a free fixed point ``s*`` the free units satisfy ``g(s*, theta) = dE/ds = 0``.
Implicit differentiation gives ``ds*/dtheta = -H^{-1} dg/dtheta`` with ``H`` the
Hessian of ``E`` over the free units, so for ``L = C(s*)``

    H lambda = dC/ds                               (one sparse solve per example)
    dL/dW_ij = lambda_i rho'_i rho_j + lambda_j rho'_j rho_i
    dL/db_i  = lambda_i rho'_i

with ``H_kl = delta_kl (1 - rho''_k h_k) - rho'_k W_kl rho'_l`` and ``h = W rho + b``.
For the (projected) hard sigmoid, a unit pinned at 0 or 1 is locally constant
(its derivative is 0 almost everywhere): it leaves the system, and ``H`` is
``I - W`` over the units strictly inside ``(0, 1)``.

This module is the independent reference for :mod:`plasticity.eqprop`: it uses
scipy.sparse (no Numba, no settling beyond the free fixed point it is given).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from tissue import INPUT

from .eqprop import EqProp, contrast


def _derivs(s, activation):
    """``rho, rho', rho''`` of a float64 state."""
    if activation == "hard_sigmoid":
        r = np.clip(s, 0.0, 1.0)
        d1 = ((s > 0.0) & (s < 1.0)).astype(np.float64)
        return r, d1, np.zeros_like(s)
    if activation == "sigmoid":
        r = 1.0 / (1.0 + np.exp(-s))
        d1 = r * (1 - r)
        return r, d1, d1 * (1 - 2 * r)
    if activation == "tanh":
        r = np.tanh(s)
        d1 = 1 - r * r
        return r, d1, -2 * r * d1
    return s.copy(), np.ones_like(s), np.zeros_like(s)


def exact_gradient(tissue, free_state, target=None, return_lambda: bool = False, cost=None):
    """``dL/dW`` per slot ``(N, K)`` and ``dL/db`` ``(N,)`` (means over the batch),
    with ``L = 1/2 sum_o (rho(s*_o) - y_o)^2`` at the given free fixed points.

    Parameters
    ----------
    tissue : Tissue
    free_state : array (B, N)
        Free fixed points (``Langevin.settle(...).state`` with ``beta = 0``),
        settled tightly: the gradient is exact only at a fixed point.
    target : array (B, n_outputs)
        Targets of the output region (``tissue.region("output")`` order) of
        the squared error; or
    cost : dynamics.costs.Cost
        Another cost of the output rates, bound to the batch's labels.
    """
    S = np.atleast_2d(np.asarray(free_state, dtype=np.float64))
    out = tissue.region("output")
    if cost is None:
        Y = np.atleast_2d(np.asarray(target, dtype=np.float64))
        G = (_derivs(S[:, out], tissue.activation)[0] - Y).T          # dC/drho (n_out, B)
    else:
        G = cost.grad(_derivs(S[:, out], tissue.activation)[0].T)
    W = tissue.to_scipy().astype(np.float64).tocsr()
    free = tissue.alive & (tissue.role != INPUT)
    nbr = tissue.syn.nbr
    occ = nbr >= 0
    i_idx, k_idx = np.nonzero(occ)
    j_idx = nbr[i_idx, k_idx].astype(np.int64)
    gW = np.zeros(nbr.shape)
    gb = np.zeros(tissue.n)
    lams = []
    for s, gc in zip(S, G.T):
        r, d1, d2 = _derivs(s, tissue.activation)
        h = W @ r + tissue.bias.astype(np.float64)
        act = free & (d1 > 0)
        A = np.flatnonzero(act)
        dC = np.zeros(tissue.n)
        dC[out] = d1[out] * gc
        lam = np.zeros(tissue.n)
        if len(A):
            DA = sp.diags(d1[A])
            H = sp.diags(1.0 - d2[A] * h[A]) - DA @ W[A][:, A] @ DA
            lam[A] = spla.spsolve(H.tocsc(), dC[A])
        lams.append(lam)
        li = lam * d1
        gW[i_idx, k_idx] += li[i_idx] * r[j_idx] + li[j_idx] * r[i_idx]
        gb += li
    gW /= len(S)
    gb /= len(S)
    if return_lambda:
        return gW, gb, np.array(lams)
    return gW, gb


def cosine(a, b) -> float:
    """Cosine similarity of two arrays (0 when either is zero)."""
    a = np.ravel(a).astype(np.float64)
    b = np.ravel(b).astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def slab_cosines(tissue, update, neg_grad, axis: str = "z") -> dict:
    """Cosine between an update and ``-dL/dW`` over the synapse slots of each slab
    (rows whose neuron lies at that coordinate along ``axis``); key ``"all"`` for the whole table.

    Slabs without any non-zero gradient (e.g. the clamped input face) are left out.
    """
    ax = "xyz".index(axis)
    c = tissue.lattice.coords()[:, ax]
    res = {"all": cosine(update, neg_grad)}
    for z in np.unique(c):
        rows = c == z
        if np.any(neg_grad[rows] != 0):
            res[int(z)] = cosine(update[rows], neg_grad[rows])
    return res


def finite_difference_gradient(tissue, engine, inputs, target, eps: float = 1e-5, slots=None):
    """Central finite differences of the loss with respect to the weights of ``slots``
    (a list of ``(i, k)``; default all occupied slots), re-settling the free phase.
    For small tissues only (two settles per synapse). Returns ``{(i, k): dL/dW}``."""
    syn = tissue.syn
    if slots is None:
        ii, kk = np.nonzero(syn.nbr >= 0)
        slots = [(int(i), int(k)) for i, k in zip(ii, kk) if i < syn.nbr[i, k]]
    res = {}
    for i, k in slots:
        j, rk = int(syn.nbr[i, k]), int(syn.rev[i, k])
        w0 = syn.w[i, k].copy()
        losses = []
        for sgn in (1, -1):
            syn.w[i, k] = syn.w[j, rk] = w0 + sgn * eps
            st = engine.settle(tissue, inputs=inputs, target=target, beta=0.0)
            losses.append(st.cost.mean())
        syn.w[i, k] = syn.w[j, rk] = w0
        res[(i, k)] = (losses[0] - losses[1]) / (2 * eps)
    return res


def as_float64(tissue):
    """A float64 copy of a tissue (for tight settling in gradient checks)."""
    from tissue import Synapses, Tissue

    syn = Synapses(tissue.syn.nbr.copy(), tissue.syn.w.astype(np.float64), tissue.syn.rev.copy())
    t = Tissue(tissue.lattice, syn, tissue.bias.astype(np.float64), tissue.activation, tissue.alive,
               tissue.seed, tissue.meta)
    t.role, t.group = tissue.role.copy(), tissue.group.copy()
    return t


def alignment_curve(tissue, engine, inputs, labels, betas, trainer=None):
    """Cosine between the EqProp update and ``-dL/dW`` against ``beta``, for symmetric
    and one-sided nudging, per depth slab along z (with ``trainer``'s cost and targets).

    Returns ``{("symmetric" | "one-sided", beta): {slab or "all": cosine}}``. Settle
    with a tight ``engine`` (float64 tissue, small ``tol``): the exact gradient
    holds at the fixed point only.
    """
    y, cost = (trainer or EqProp()).cost_for(tissue, labels)
    free = engine.settle(tissue, inputs=inputs)
    gW, _ = exact_gradient(tissue, free.state, y, cost=cost)
    rf = np.ascontiguousarray(free.rates.T)
    out = {}
    for beta in betas:
        plus = engine.settle(tissue, inputs=inputs, init=free.state, target=y, beta=beta, cost=cost)
        minus = engine.settle(tissue, inputs=inputs, init=free.state, target=y, beta=-beta, cost=cost)
        rp, rm = np.ascontiguousarray(plus.rates.T), np.ascontiguousarray(minus.rates.T)
        for kind, a, b, scale in (("symmetric", rp, rm, 0.5 / beta), ("one-sided", rp, rf, 1.0 / beta)):
            g = np.empty(tissue.syn.w.shape)
            contrast(tissue.syn.nbr, tissue.syn.deg, a, b, g)
            out[(kind, float(beta))] = slab_cosines(tissue, g * scale, -gW)
    return out
