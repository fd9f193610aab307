"""Numba kernels of the point-attractor tissue: activations, energy, one Langevin step.

All kernels take plain arrays. States are ``(N, B)``: the trial axis is
contiguous per neuron, so one load of a neuron's synapse row serves every
trial. Work is split into a *fixed* number of neuron chunks (independent of the
thread count), and reductions add the chunk partials in chunk order, so results
are bit-identical with 1 or many threads.

Activation codes (``act``): 0 hard sigmoid, 1 sigmoid, 2 tanh, 3 linear.

The hard sigmoid is integrated in its *projected* form: the state is kept in the
box [0, 1] (``s <- clip(s + dt * f, 0, 1)``), inside which ``rho(s) = s``. The
fixed points are those of ``s = clip(h, 0, 1)``; projected gradient descent
on the box never increases the energy for ``dt <= 2 / L``.

Noise is a counter-based hash of ``(seed, step, neuron, trial)`` (SplitMix64 and
Box-Muller), so a stream does not depend on the thread count and a resumed run
continues it exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import carray, njit, prange, uint32

from ._llvm import TB, bitsf, fbits, izeros, stack_buffer

HARD_SIGMOID, SIGMOID, TANH, LINEAR = 0, 1, 2, 3
ACT_CODES = {"hard_sigmoid": HARD_SIGMOID, "sigmoid": SIGMOID, "tanh": TANH, "linear": LINEAR}
CHUNK = 1024  # neurons per work chunk (fixed: makes reductions thread-count independent)

# the fastmath subset that keeps NaN/inf semantics (no 'nnan', no 'ninf')
FM = {"reassoc", "contract", "arcp"}

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0


@njit(inline="always", cache=True)
def splitmix64(x):
    z = x + _M1
    z = (z ^ (z >> _S30)) * _M2
    z = (z ^ (z >> _S27)) * _M3
    return z ^ (z >> _S31)


@njit(cache=True)
def step_key(seed, step):
    """The per-step key of the noise stream."""
    return splitmix64(splitmix64(np.uint64(seed)) ^ np.uint64(step))


@njit(inline="always", cache=True)
def hash_normal(key, i, b):
    """A standard normal deviate from ``(key, neuron i, trial b)``."""
    h = splitmix64(splitmix64(key ^ np.uint64(i)) ^ np.uint64(b))
    h2 = splitmix64(h)
    u1 = (np.float64(h >> _S11) + 0.5) * _TWO_M53
    u2 = np.float64(h2 >> _S11) * _TWO_M53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(inline="always", cache=True)
def rho(x, act):
    if act == HARD_SIGMOID:
        return min(max(x, 0.0), 1.0)
    elif act == SIGMOID:
        return 1.0 / (1.0 + math.exp(-x))
    elif act == TANH:
        return math.tanh(x)
    return x


@njit(inline="always", cache=True)
def drho(x, act):
    """Derivative of ``rho``; 1 for the (projected) hard sigmoid."""
    if act == SIGMOID:
        r = 1.0 / (1.0 + math.exp(-x))
        return r * (1.0 - r)
    elif act == TANH:
        t = math.tanh(x)
        return 1.0 - t * t
    return 1.0


def n_chunks(n: int) -> int:
    return (n + CHUNK - 1) // CHUNK


@njit(parallel=True, cache=True, fastmath=FM)
def rates(s, act, out):
    """``out = rho(s)`` for an (N, B) state."""
    n, nb = s.shape
    for i in prange(n):
        for b in range(nb):
            out[i, b] = rho(s[i, b], act)


@njit(inline="always", cache=True, fastmath=FM)
def _frozen_row(i, nb, s, r, s_out, r_out, v_out, write_v, separate_r, sloc):
    """A frozen neuron (input, dead) keeps its state."""
    for b in range(nb):
        x = s[i, b]
        s_out[i, b] = x
        sloc[b] = max(sloc[b], fbits(abs(x)))
    if separate_r:
        for b in range(nb):
            r_out[i, b] = r[i, b]
    if write_v:
        for b in range(nb):
            v_out[i, b] = 0.0


@njit(inline="always", cache=True, fastmath=FM)
def _general_row(i, nb, h, y, v, s, r, s_out, r_out, v_out, mask, dt, noise, key, act, write_v, vloc, sloc):
    """The update of a non-frozen neuron from its field ``h[b]``: drift ``v``, the
    noiseless step ``y``, noise, the trial mask, and the per-chunk maxima (shared by
    the table kernel and ``dynamics.stencil``)."""
    separate_r = act == SIGMOID or act == TANH
    zero = s.dtype.type(0.0)
    one = s.dtype.type(1.0)
    idt = one / dt
    if act == HARD_SIGMOID:
        for b in range(nb):
            x = s[i, b]
            y[b] = min(max(x + dt * (h[b] - x), zero), one)
            v[b] = (y[b] - x) * idt
    elif act == LINEAR:
        for b in range(nb):
            v[b] = h[b] - s[i, b]
            y[b] = s[i, b] + dt * v[b]
    elif act == SIGMOID:
        for b in range(nb):
            ri = r[i, b]
            v[b] = ri * (one - ri) * h[b] - s[i, b]
            y[b] = s[i, b] + dt * v[b]
    else:  # TANH
        for b in range(nb):
            ri = r[i, b]
            v[b] = (one - ri * ri) * h[b] - s[i, b]
            y[b] = s[i, b] + dt * v[b]
    if noise > 0.0:
        for b in range(nb):
            x = s[i, b]
            f = h[b] - x if act == HARD_SIGMOID else v[b]
            yy = x + dt * f + noise * hash_normal(key, i, b)
            if act == HARD_SIGMOID:
                yy = min(max(yy, 0.0), 1.0)
            y[b] = yy
    for b in range(nb):
        x = s[i, b]
        yb = x + mask[b] * (y[b] - x)
        s_out[i, b] = yb
        vloc[b] = max(vloc[b], fbits(abs(v[b])))
        sloc[b] = max(sloc[b], fbits(abs(yb)))
    if write_v:
        for b in range(nb):
            v_out[i, b] = v[b]
    if separate_r:
        for b in range(nb):
            r_out[i, b] = rho(s_out[i, b], act)


@njit(inline="always", cache=True, fastmath=FM)
def _chunk(c, lo, hi, nbr, deg, w, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key, act,
           write_v, vpart, spart, ypos, Y, beta, h, y, v, vloc, sloc):
    """The work of one chunk with the given scratch rows (inlined at both call sites)."""
    nb = s.shape[1]
    separate_r = act == SIGMOID or act == TANH
    zero = s.dtype.type(0.0)
    one = s.dtype.type(1.0)
    idt = one / dt
    fast = act == HARD_SIGMOID and not noise > 0.0 and not write_v
    nudge = beta != 0.0
    bt = s.dtype.type(beta)
    for b in range(nb):
        vloc[b] = 0
        sloc[b] = 0
    for i in range(lo, hi):
        if frozen[i]:
            _frozen_row(i, nb, s, r, s_out, r_out, v_out, write_v, separate_r, sloc)
            continue
        dk = deg[i]
        bi = bias[i]
        if nb == 1:
            # one trial: a scalar accumulator (reassoc lets LLVM vectorise the
            # slot loop with emulated gathers) and, on the hot path, a scalar update
            acc = bi
            for k in range(dk):
                acc += w[i, k] * r[uint32(nbr[i, k]), 0]
            if nudge and ypos[i] >= 0:
                acc -= bt * (r[i, 0] - Y[ypos[i], 0])
            if fast:
                x = s[i, 0]
                yy = min(max(x + dt * (acc - x), zero), one)
                vv = (yy - x) * idt
                yb = x + mask[0] * (yy - x)
                s_out[i, 0] = yb
                vloc[0] = max(vloc[0], fbits(abs(vv)))
                sloc[0] = max(sloc[0], fbits(abs(yb)))
                continue
            h[0] = acc
        else:
            # 8 slots per pass over the trials, in two partial sums of 4
            for b in range(nb):
                h[b] = bi
            for kb in range(dk // 8):
                k = 8 * kb
                j0 = uint32(nbr[i, k])
                j1 = uint32(nbr[i, k + 1])
                j2 = uint32(nbr[i, k + 2])
                j3 = uint32(nbr[i, k + 3])
                j4 = uint32(nbr[i, k + 4])
                j5 = uint32(nbr[i, k + 5])
                j6 = uint32(nbr[i, k + 6])
                j7 = uint32(nbr[i, k + 7])
                w0 = w[i, k]
                w1 = w[i, k + 1]
                w2 = w[i, k + 2]
                w3 = w[i, k + 3]
                w4 = w[i, k + 4]
                w5 = w[i, k + 5]
                w6 = w[i, k + 6]
                w7 = w[i, k + 7]
                for b in range(nb):
                    h[b] += ((w0 * r[j0, b] + w1 * r[j1, b] + w2 * r[j2, b] + w3 * r[j3, b])
                             + (w4 * r[j4, b] + w5 * r[j5, b] + w6 * r[j6, b] + w7 * r[j7, b]))
            for k in range(dk // 8 * 8, dk):
                j = uint32(nbr[i, k])
                wk = w[i, k]
                for b in range(nb):
                    h[b] += wk * r[j, b]
            if nudge and ypos[i] >= 0:
                p = ypos[i]
                for b in range(nb):
                    h[b] -= bt * (r[i, b] - Y[p, b])
            if fast:  # hard sigmoid, deterministic: one fused trial loop
                for b in range(nb):
                    x = s[i, b]
                    yy = min(max(x + dt * (h[b] - x), zero), one)
                    vv = (yy - x) * idt
                    yb = x + mask[b] * (yy - x)
                    s_out[i, b] = yb
                    vloc[b] = max(vloc[b], fbits(abs(vv)))
                    sloc[b] = max(sloc[b], fbits(abs(yb)))
                continue
        _general_row(i, nb, h, y, v, s, r, s_out, r_out, v_out, mask, dt, noise, key, act, write_v, vloc, sloc)
    for b in range(nb):
        vpart[c, b] = bitsf(vloc[b])
        spart[c, b] = bitsf(sloc[b])


@njit(parallel=True, cache=True, fastmath=FM)
def langevin_step(nbr, deg, w, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key, act,
                  write_v, vpart, spart, ypos, Y, beta):
    """One Euler-Maruyama step ``s_out = s + dt * f(s) + noise * xi``.

    ``f = -s + rho'(s) * (W rho(s) + b)`` is the force ``-dE/ds``. ``frozen``
    neurons (inputs, dead voxels) keep their state. ``mask[b]`` (0 or 1) freezes
    whole trials. ``r`` holds ``rho(s)``; for the hard sigmoid and linear
    activations pass ``r is s`` and ``r_out is s_out``. Per chunk ``c`` and
    trial ``b``, ``vpart[c, b]`` receives the largest drift speed ``|ds/dt|``
    (projected for the hard sigmoid; noise excluded) and ``spart[c, b]`` the
    largest ``|s_out|``. ``v_out`` receives the drift velocity of ``s`` when
    ``write_v`` (also for frozen trials, whose state does not move).

    Nudging: neuron ``i`` with ``ypos[i] >= 0`` carries the cost
    ``C = 1/2 (rho(s_i) - Y[ypos[i], b])^2`` with weight ``beta``; its force gains
    ``-beta rho'(s_i) (rho(s_i) - Y[ypos[i], b])``, i.e. the field ``h`` gains
    ``-beta (r - y)`` (``beta = 0`` skips it).

    Rows are compact (``deg``), and indices are read as unsigned so that no
    negative-index wrap-around check sits in the gather loop. For B > 1 eight
    slots are summed per pass over the trials (two partial sums of four), and
    the common case (hard sigmoid, T = 0, no velocity output) is one fused
    trial loop; per-chunk maxima are integer maxima of IEEE bit patterns
    (``dynamics._llvm``), which propagate NaN and inf. Measured in
    ``bench/bench_settle.py``; see docs/benchmarks.md.
    """
    n, nb = s.shape
    nch = vpart.shape[0]
    zero = s.dtype.type(0.0)
    izero = fbits(zero)
    for c in prange(nch):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        if nb <= TB:  # scratch rows on the stack: no run-time alias checks
            _chunk(c, lo, hi, nbr, deg, w, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key,
                   act, write_v, vpart, spart, ypos, Y, beta, carray(stack_buffer(zero), nb), carray(stack_buffer(zero), nb),
                   carray(stack_buffer(zero), nb), carray(stack_buffer(izero), nb),
                   carray(stack_buffer(izero), nb))
        else:
            _chunk(c, lo, hi, nbr, deg, w, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key,
                   act, write_v, vpart, spart, ypos, Y, beta, np.empty(nb, dtype=s.dtype), np.empty(nb, dtype=s.dtype),
                   np.empty(nb, dtype=s.dtype), izeros(nb, s), izeros(nb, s))


@njit(parallel=True, cache=True)
def energy(nbr, deg, w, bias, alive, s, act, epart):
    """Energy per trial: ``E = 1/2 sum s^2 - 1/2 sum_ij W_ij r_i r_j - sum b r``
    over living neurons (float64 accumulation in fixed chunk order)."""
    n, nb = s.shape
    nch = epart.shape[0]
    for c in prange(nch):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        acc = np.zeros(nb, dtype=np.float64)
        for i in range(lo, hi):
            if not alive[i]:
                continue
            for b in range(nb):
                x = np.float64(s[i, b])
                ri = rho(x, act)
                hh = 0.0
                for k in range(deg[i]):
                    hh += np.float64(w[i, k]) * rho(np.float64(s[nbr[i, k], b]), act)
                acc[b] += 0.5 * x * x - 0.5 * ri * hh - np.float64(bias[i]) * ri
        for b in range(nb):
            epart[c, b] = acc[b]
    out = np.zeros(nb, dtype=np.float64)
    for c in range(nch):
        for b in range(nb):
            out[b] += epart[c, b]
    return out


@njit(parallel=True, cache=True)
def force(nbr, deg, w, bias, frozen, s, act, out, ypos, Y, beta):
    """The force ``-dF/ds`` with ``F = E + beta C`` (0 on frozen neurons), in float64."""
    n, nb = s.shape
    for i in prange(n):
        for b in range(nb):
            if frozen[i]:
                out[i, b] = 0.0
                continue
            hh = np.float64(bias[i])
            for k in range(deg[i]):
                hh += np.float64(w[i, k]) * rho(np.float64(s[nbr[i, k], b]), act)
            x = np.float64(s[i, b])
            if beta != 0.0 and ypos[i] >= 0:
                hh -= beta * (rho(x, act) - np.float64(Y[ypos[i], b]))
            out[i, b] = -x + drho(x, act) * hh
