"""Numba kernels of the limit-cycle tissue: Stuart-Landau and phase (Kuramoto / XY) oscillators.

States are ``(N, B)`` float64 arrays with the trial axis contiguous per neuron,
as in :mod:`dynamics.kernels`: the Stuart-Landau state is a pair of arrays
``(re z, im z)``, the phase state one array ``theta`` (not wrapped).

Both models share the *field* of neuron ``i`` in trial ``b``::

    Phi_i = K_b sum_j C_ij u_j + D_i exp(i Omega_b t)

with the complex coupling ``C_ij = W_ij exp(i alpha_ij)`` (``cw = W cos alpha``,
``sw = W sin alpha``; ``alpha = 0`` unless a lag table is given), ``u_j = z_j``
(Stuart-Landau) or ``exp(i theta_j)`` (phase model), and the complex drive
amplitude ``D_i = F_i exp(i psi_i)``. The drifts are::

    Stuart-Landau   dz/dt     = (mu_i + i omega_i - |z_i|^2) z_i + Phi_i
    phase           dtheta/dt = omega_i + Im(exp(-i theta_i) Phi_i)
                              = omega_i + K sum_j W_ij sin(theta_j - theta_i + alpha_ij)
                                + F_i sin(Omega t + psi_i - theta_i)

The phase model needs ``cos theta`` and ``sin theta`` of every neuron before a
gather; :func:`units` computes them once per stage (N B trig calls instead of
N K B).

Neuron modes: ``FREE`` (integrated), ``PACEMAKER`` (a clamped input: it turns
at its own frequency, ``dz/dt = i omega z`` or ``dtheta/dt = omega``, deaf to
coupling, drive and noise; ``omega = 0`` holds it still) and ``FROZEN`` (a
dead voxel: it never moves).

One fused *stage* kernel serves every explicit Runge-Kutta scheme used here::

    k   = f(t_stage, Y)                       (Y gathered from the stage state)
    first and last:  dst = base + dt wk k                 + sig dW   (Euler)
    first:           acc = wk k;  dst = base + a dt k     + sig dW
    middle:          acc += wk k; dst = base + a dt k
    last:            dst = base + dt (acc + wk k)          + sig dW

RK4 is four stages with ``sig = 0``; stochastic Heun (predictor-corrector,
additive noise, the same ``dW`` in both stages) is two. Only a neuron's own
row of ``base``, ``acc`` and ``dst`` is touched, so ``dst`` may alias ``base``
when the gathered array is another one.

Brownian increments (:func:`brownian`) are sums over a fine grid of ``m``
sub-steps of counter-based normals ``hash_normal(step_key(seed, n), i, c b')``
with the global fine-step index ``n``: the increment of a coarse step is
exactly the sum of those of the fine steps it covers (one Brownian path for
every ``dt`` on that grid), and a resumed run continues the stream.

Work is split into fixed chunks of ``CHUNK`` neurons; no kernel reduces across
neurons except :func:`xy_energy`, which adds chunk partials in chunk order, so
results are bit-identical for any thread count.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, uint32

from .kernels import CHUNK, FM, hash_normal, n_chunks, step_key  # noqa: F401  (n_chunks re-exported)

FREE, PACEMAKER, FROZEN = 0, 1, 2


@njit(cache=True)
def _brownian_chunk(lo, hi, keys, scale, out):
    nc, n, nb = out.shape
    m = keys.shape[0]
    for i in range(lo, hi):
        for b in range(nb):
            for c in range(nc):
                acc = 0.0
                for k in range(m):
                    acc += hash_normal(keys[k], i, nc * b + c)
                out[c, i, b] = scale * acc


@njit(parallel=True, cache=True)
def brownian(seed, fine0, m, scale, out):
    """Brownian increments ``out[c, i, b] = scale * sum_{n < m} xi(fine0 + n, i, C b + c)``.

    ``out`` is ``(C, N, B)`` (``C = 2`` for a complex noise, 1 for a real one)
    and ``xi(n, i, b') = hash_normal(step_key(seed, n), i, b')``. With
    ``scale = sqrt(dt / m)`` the increment covers ``m`` fine steps of
    ``dt / m`` starting at the global fine step ``fine0``.
    """
    n = out.shape[1]
    keys = np.empty(m, dtype=np.uint64)
    for k in range(m):
        keys[k] = step_key(seed, np.uint64(fine0) + np.uint64(k))
    nch = (n + CHUNK - 1) // CHUNK
    if nch == 1:  # one chunk: no thread-pool launch
        _brownian_chunk(0, n, keys, scale, out)
    else:
        for ch in prange(nch):
            _brownian_chunk(ch * CHUNK, min(n, (ch + 1) * CHUNK), keys, scale, out)


@njit(cache=True)
def _units_chunk(lo, hi, theta, c, s):
    nb = theta.shape[1]
    for i in range(lo, hi):
        for b in range(nb):
            x = theta[i, b]
            c[i, b] = math.cos(x)
            s[i, b] = math.sin(x)


@njit(parallel=True, cache=True)
def units(theta, c, s):
    """``c = cos(theta)``, ``s = sin(theta)`` for an ``(N, B)`` phase state."""
    n = theta.shape[0]
    nch = (n + CHUNK - 1) // CHUNK
    if nch == 1:
        _units_chunk(0, n, theta, c, s)
    else:
        for ch in prange(nch):
            _units_chunk(ch * CHUNK, min(n, (ch + 1) * CHUNK), theta, c, s)


@njit(inline="always", cache=True, fastmath=FM)
def _field(i, nbr, deg, cw, sw, lag, kc, kc_b, dr, di, d_b, drive, ec, es, e_b, ur, ui, hr, hi):
    """``(hr, hi) = K_b sum_j C_ij u_j + D_i exp(i Omega_b t)`` for every trial of row ``i``."""
    nb = hr.shape[0]
    for b in range(nb):
        hr[b] = 0.0
        hi[b] = 0.0
    dk = deg[i]
    if nb == 1:
        # one trial: scalar accumulators (reassoc lets LLVM vectorise the slot loop)
        sr = 0.0
        si = 0.0
        if lag:
            for k in range(dk):
                j = uint32(nbr[i, k])
                a = cw[i, k]
                q = sw[i, k]
                sr += a * ur[j, 0] - q * ui[j, 0]
                si += a * ui[j, 0] + q * ur[j, 0]
        else:
            for k in range(dk):
                j = uint32(nbr[i, k])
                a = cw[i, k]
                sr += a * ur[j, 0]
                si += a * ui[j, 0]
        hr[0] = sr
        hi[0] = si
    elif lag:
        for k in range(dk):
            j = uint32(nbr[i, k])
            a = cw[i, k]
            q = sw[i, k]
            for b in range(nb):
                xr = ur[j, b]
                xi = ui[j, b]
                hr[b] += a * xr - q * xi
                hi[b] += a * xi + q * xr
    else:
        k = 0
        while k + 4 <= dk:
            j0 = uint32(nbr[i, k])
            j1 = uint32(nbr[i, k + 1])
            j2 = uint32(nbr[i, k + 2])
            j3 = uint32(nbr[i, k + 3])
            a0 = cw[i, k]
            a1 = cw[i, k + 1]
            a2 = cw[i, k + 2]
            a3 = cw[i, k + 3]
            for b in range(nb):
                hr[b] += (a0 * ur[j0, b] + a1 * ur[j1, b]) + (a2 * ur[j2, b] + a3 * ur[j3, b])
                hi[b] += (a0 * ui[j0, b] + a1 * ui[j1, b]) + (a2 * ui[j2, b] + a3 * ui[j3, b])
            k += 4
        while k < dk:
            j = uint32(nbr[i, k])
            a = cw[i, k]
            for b in range(nb):
                hr[b] += a * ur[j, b]
                hi[b] += a * ui[j, b]
            k += 1
    for b in range(nb):
        kk = kc[b * kc_b]
        hr[b] *= kk
        hi[b] *= kk
    if drive:
        for b in range(nb):
            xr = dr[i, b * d_b]
            xi = di[i, b * d_b]
            cr = ec[b * e_b]
            ci = es[b * e_b]
            hr[b] += xr * cr - xi * ci
            hi[b] += xr * ci + xi * cr


@njit(cache=True, fastmath=FM)
def _sl_chunk(lo, hi_, nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es,
              e_b, ur, ui, br, bi, dstr, dsti, ar, ai, dt, a, wk, first, last, sig, nr, ni):
    nb = ur.shape[1]
    hr = np.empty(nb)
    hi = np.empty(nb)
    for i in range(lo, hi_):
        md = mode[i]
        if md == FREE:
            _field(i, nbr, deg, cw, sw, lag, kc, kc_b, dr, di, d_b, drive, ec, es, e_b, ur, ui, hr, hi)
            for b in range(nb):
                x = ur[i, b]
                y = ui[i, b]
                g = mu[i, b * mu_b] - (x * x + y * y)
                w = om[i, b * om_b]
                hr[b] += g * x - w * y
                hi[b] += g * y + w * x
        elif md == PACEMAKER:
            for b in range(nb):
                w = om[i, b * om_b]
                hr[b] = -w * ui[i, b]
                hi[b] = w * ur[i, b]
        else:
            for b in range(nb):
                hr[b] = 0.0
                hi[b] = 0.0
        noisy = sig > 0.0 and md == FREE
        for b in range(nb):
            kr = hr[b]
            ki = hi[b]
            if first and last:
                yr = br[i, b] + dt * wk * kr
                yi = bi[i, b] + dt * wk * ki
            elif first:
                ar[i, b] = wk * kr
                ai[i, b] = wk * ki
                yr = br[i, b] + a * dt * kr
                yi = bi[i, b] + a * dt * ki
            elif last:
                yr = br[i, b] + dt * (ar[i, b] + wk * kr)
                yi = bi[i, b] + dt * (ai[i, b] + wk * ki)
            else:
                ar[i, b] += wk * kr
                ai[i, b] += wk * ki
                yr = br[i, b] + a * dt * kr
                yi = bi[i, b] + a * dt * ki
            if noisy and (first or last):
                yr += sig * nr[i, b]
                yi += sig * ni[i, b]
            dstr[i, b] = yr
            dsti[i, b] = yi


@njit(parallel=True, cache=True, fastmath=FM)
def sl_stage(nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
             ur, ui, br, bi, dstr, dsti, ar, ai, dt, a, wk, first, last, sig, nr, ni):
    """One stage of a Runge-Kutta scheme for the Stuart-Landau network (see the module notes).

    ``(ur, ui)`` is the stage state (gathered), ``(br, bi)`` the step's base
    state, ``(dstr, dsti)`` receives the next stage state (or the new state on
    the last stage), ``(ar, ai)`` accumulates the weighted slopes. ``mu``,
    ``om`` are ``(N, 1 | B)``, ``kc`` ``(1 | B)``, the drive ``(dr, di)``
    ``(N, 1 | B)`` and ``(ec, es) = (cos, sin)(Omega_b t)`` ``(1 | B)``; each
    ``*_b`` flag is 1 when the array has a trial axis, else 0. ``sig > 0`` adds
    ``sig * (nr + i ni)`` (Brownian increments) to free neurons.
    """
    n = ur.shape[0]
    nch = (n + CHUNK - 1) // CHUNK
    if nch == 1:  # one chunk: no thread-pool launch (small networks, many steps)
        _sl_chunk(0, n, nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es,
                  e_b, ur, ui, br, bi, dstr, dsti, ar, ai, dt, a, wk, first, last, sig, nr, ni)
    else:
        for ch in prange(nch):
            _sl_chunk(ch * CHUNK, min(n, (ch + 1) * CHUNK), nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc,
                      kc_b, dr, di, d_b, drive, ec, es, e_b, ur, ui, br, bi, dstr, dsti, ar, ai, dt, a, wk, first,
                      last, sig, nr, ni)


@njit(cache=True, fastmath=FM)
def _phase_chunk(lo, hi_, nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                 c, s, base, dst, acc, dt, a, wk, first, last, sig, nz):
    nb = c.shape[1]
    hr = np.empty(nb)
    hi = np.empty(nb)
    for i in range(lo, hi_):
        md = mode[i]
        if md == FREE:
            _field(i, nbr, deg, cw, sw, lag, kc, kc_b, dr, di, d_b, drive, ec, es, e_b, c, s, hr, hi)
            for b in range(nb):
                # Im(exp(-i theta) Phi) = cos(theta) Im(Phi) - sin(theta) Re(Phi)
                hr[b] = om[i, b * om_b] + (c[i, b] * hi[b] - s[i, b] * hr[b])
        elif md == PACEMAKER:
            for b in range(nb):
                hr[b] = om[i, b * om_b]
        else:
            for b in range(nb):
                hr[b] = 0.0
        noisy = sig > 0.0 and md == FREE
        for b in range(nb):
            k = hr[b]
            if first and last:
                y = base[i, b] + dt * wk * k
            elif first:
                acc[i, b] = wk * k
                y = base[i, b] + a * dt * k
            elif last:
                y = base[i, b] + dt * (acc[i, b] + wk * k)
            else:
                acc[i, b] += wk * k
                y = base[i, b] + a * dt * k
            if noisy and (first or last):
                y += sig * nz[i, b]
            dst[i, b] = y


@njit(parallel=True, cache=True, fastmath=FM)
def phase_stage(nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                c, s, base, dst, acc, dt, a, wk, first, last, sig, nz):
    """One stage of a Runge-Kutta scheme for the phase network (see the module notes).

    ``(c, s)`` are ``cos``/``sin`` of the stage state (:func:`units`),
    ``base`` the step's base phases, ``dst`` receives the next stage state (or
    the new state), ``acc`` accumulates the weighted slopes. Other arguments as
    in :func:`sl_stage`; ``nz`` holds the Brownian increments.
    """
    n = c.shape[0]
    nch = (n + CHUNK - 1) // CHUNK
    if nch == 1:
        _phase_chunk(0, n, nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                     c, s, base, dst, acc, dt, a, wk, first, last, sig, nz)
    else:
        for ch in prange(nch):
            _phase_chunk(ch * CHUNK, min(n, (ch + 1) * CHUNK), nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b,
                         dr, di, d_b, drive, ec, es, e_b, c, s, base, dst, acc, dt, a, wk, first, last, sig, nz)


@njit(cache=True)
def _max_abs2_chunk(ch, ur, ui, part):
    n, nb = ur.shape
    cplx = ui.shape[0] == n and ui.shape[1] == nb   # a (1, 1) dummy is complex only for n = B = 1 (then it holds 0)
    lo = ch * CHUNK
    hi = min(n, lo + CHUNK)
    for b in range(nb):
        part[ch, b] = 0.0
    for i in range(lo, hi):
        for b in range(nb):
            x = ur[i, b]
            v = x * x
            if cplx:
                y = ui[i, b]
                v += y * y
            if v != v or v > part[ch, b]:  # a NaN, once in, sticks (NaN > v is false)
                part[ch, b] = v


@njit(parallel=True, cache=True)
def finite_max_abs2(ur, ui, part):
    """Per chunk ``c`` and trial ``b``: ``part[c, b] = max_i |u_i|^2`` (NaN if any entry is NaN).

    ``ui`` may be a ``(1, 1)`` dummy for a real state (then ``|u| = |ur|``).
    """
    nch = part.shape[0]
    if nch == 1:
        _max_abs2_chunk(0, ur, ui, part)
    else:
        for ch in prange(nch):
            _max_abs2_chunk(ch, ur, ui, part)


@njit(cache=True)
def _xy_chunk(ch, nbr, deg, cw, sw, lag, alive, theta, kc, kc_b, dr, di, d_b, epart):
    n, nb = theta.shape
    lo = ch * CHUNK
    hi = min(n, lo + CHUNK)
    acc = np.zeros(nb)
    for i in range(lo, hi):
        if not alive[i]:
            continue
        for b in range(nb):
            x = theta[i, b]
            h = 0.0
            for k in range(deg[i]):
                d = theta[nbr[i, k], b] - x
                if lag:
                    h += cw[i, k] * math.cos(d) - sw[i, k] * math.sin(d)
                else:
                    h += cw[i, k] * math.cos(d)
            acc[b] += -0.5 * kc[b * kc_b] * h - (dr[i, b * d_b] * math.cos(x) + di[i, b * d_b] * math.sin(x))
    for b in range(nb):
        epart[ch, b] = acc[b]


@njit(parallel=True, cache=True)
def xy_energy(nbr, deg, cw, sw, lag, alive, theta, kc, kc_b, dr, di, d_b, epart):
    """Energy per trial of the XY model (float64, chunk partials added in chunk order)::

        E = -1/2 K sum_i sum_j W_ij cos(theta_j - theta_i + alpha_ij)
            - sum_i Re(conj(D_i) exp(i theta_i))          (= F_i cos(theta_i - psi_i))

    over living neurons, with the field ``D = dr + i di`` ``(N, 1 | B)``. With a
    Hermitian coupling (``alpha_ji = -alpha_ij``) ``-dE/dtheta_i`` is the phase
    drift with ``omega = 0`` and a static drive (``Omega = 0``).
    """
    nb = theta.shape[1]
    nch = epart.shape[0]
    if nch == 1:
        _xy_chunk(0, nbr, deg, cw, sw, lag, alive, theta, kc, kc_b, dr, di, d_b, epart)
    else:
        for ch in prange(nch):
            _xy_chunk(ch, nbr, deg, cw, sw, lag, alive, theta, kc, kc_b, dr, di, d_b, epart)
    out = np.zeros(nb)
    for ch in range(nch):
        for b in range(nb):
            out[b] += epart[ch, b]
    return out


# ---------------------------------------------------------------- step drivers
EULER, HEUN, RK4 = 0, 1, 2


@njit(cache=True)
def _trig(om, t, ec, es):
    for b in range(om.shape[0]):
        x = om[b] * t
        ec[b] = math.cos(x)
        es[b] = math.sin(x)


@njit(cache=True)
def sl_run(nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, freq, e_b,
           yr, yi, ar, ai, br, bi, cr, ci, dt, scheme, sig, seed, m, dw, step0, n_steps):
    """Advance the Stuart-Landau state ``(yr, yi)`` by ``n_steps`` steps from global step ``step0``.

    ``scheme`` is ``EULER``, ``HEUN`` or ``RK4``; ``(ar, ai)``, ``(br, bi)``,
    ``(cr, ci)`` are scratch ``(N, B)`` arrays, ``dw`` a ``(2, N, B)`` scratch
    for Brownian increments over ``m`` fine sub-steps per step (used when
    ``sig > 0``), ``freq`` the drive frequencies ``(1 | B)``.
    """
    ec = np.empty(freq.shape[0])
    es = np.empty(freq.shape[0])
    # run-time booleans: literal True/False would compile one stage kernel per call site
    yes = n_steps >= 0
    no = n_steps < 0
    scale = math.sqrt(dt / m)
    nr = dw[0]
    ni = dw[1]
    for n in range(n_steps):
        step = step0 + n
        if sig > 0.0:
            brownian(seed, np.uint64(step) * np.uint64(m), m, scale, dw)
        if scheme == RK4:
            _trig(freq, step * dt, ec, es)
            sl_stage(nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                     yr, yi, yr, yi, br, bi, ar, ai, dt, 0.5, 1.0 / 6.0, yes, no, 0.0, nr, ni)
            _trig(freq, (step + 0.5) * dt, ec, es)
            sl_stage(nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                     br, bi, yr, yi, cr, ci, ar, ai, dt, 0.5, 1.0 / 3.0, no, no, 0.0, nr, ni)
            sl_stage(nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                     cr, ci, yr, yi, br, bi, ar, ai, dt, 1.0, 1.0 / 3.0, no, no, 0.0, nr, ni)
            _trig(freq, (step + 1.0) * dt, ec, es)
            sl_stage(nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                     br, bi, yr, yi, yr, yi, ar, ai, dt, 0.0, 1.0 / 6.0, no, yes, 0.0, nr, ni)
        elif scheme == HEUN:
            _trig(freq, step * dt, ec, es)
            sl_stage(nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                     yr, yi, yr, yi, br, bi, ar, ai, dt, 1.0, 0.5, yes, no, sig, nr, ni)
            _trig(freq, (step + 1.0) * dt, ec, es)
            sl_stage(nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                     br, bi, yr, yi, yr, yi, ar, ai, dt, 0.0, 0.5, no, yes, sig, nr, ni)
        else:
            _trig(freq, step * dt, ec, es)
            sl_stage(nbr, deg, cw, sw, lag, mode, mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                     yr, yi, yr, yi, br, bi, ar, ai, dt, 0.0, 1.0, yes, yes, sig, nr, ni)
            yr[:] = br
            yi[:] = bi


@njit(cache=True)
def phase_run(nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, freq, e_b,
              y, acc, ya, yb, c, s, dt, scheme, sig, seed, m, dw, step0, n_steps):
    """Advance the phases ``y`` by ``n_steps`` steps from global step ``step0``
    (scratch: ``acc``, ``ya``, ``yb``, ``c``, ``s`` ``(N, B)``; ``dw`` ``(1, N, B)``);
    see :func:`sl_run`."""
    ec = np.empty(freq.shape[0])
    es = np.empty(freq.shape[0])
    # run-time booleans: literal True/False would compile one stage kernel per call site
    yes = n_steps >= 0
    no = n_steps < 0
    scale = math.sqrt(dt / m)
    nz = dw[0]
    for n in range(n_steps):
        step = step0 + n
        if sig > 0.0:
            brownian(seed, np.uint64(step) * np.uint64(m), m, scale, dw)
        if scheme == RK4:
            _trig(freq, step * dt, ec, es)
            units(y, c, s)
            phase_stage(nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                        c, s, y, ya, acc, dt, 0.5, 1.0 / 6.0, yes, no, 0.0, nz)
            _trig(freq, (step + 0.5) * dt, ec, es)
            units(ya, c, s)
            phase_stage(nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                        c, s, y, yb, acc, dt, 0.5, 1.0 / 3.0, no, no, 0.0, nz)
            units(yb, c, s)
            phase_stage(nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                        c, s, y, ya, acc, dt, 1.0, 1.0 / 3.0, no, no, 0.0, nz)
            _trig(freq, (step + 1.0) * dt, ec, es)
            units(ya, c, s)
            phase_stage(nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                        c, s, y, y, acc, dt, 0.0, 1.0 / 6.0, no, yes, 0.0, nz)
        elif scheme == HEUN:
            _trig(freq, step * dt, ec, es)
            units(y, c, s)
            phase_stage(nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                        c, s, y, ya, acc, dt, 1.0, 0.5, yes, no, sig, nz)
            _trig(freq, (step + 1.0) * dt, ec, es)
            units(ya, c, s)
            phase_stage(nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                        c, s, y, y, acc, dt, 0.0, 0.5, no, yes, sig, nz)
        else:
            _trig(freq, step * dt, ec, es)
            units(y, c, s)
            # the phases are never gathered (only c and s are): in place is safe
            phase_stage(nbr, deg, cw, sw, lag, mode, om, om_b, kc, kc_b, dr, di, d_b, drive, ec, es, e_b,
                        c, s, y, y, acc, dt, 0.0, 1.0, yes, yes, sig, nz)
