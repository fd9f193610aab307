"""Measures of oscillating tissue: amplitude, frequency, synchrony, locking and travelling waves.

Plain NumPy functions on arrays laid out like the records of
:class:`dynamics.oscillators.OscResult`: ``(time, trial, neuron)`` (any
leading axes work; the neuron axis is last, time is ``axis=0`` by default).

- :func:`amplitude_phase`, :func:`unwrap`, :func:`instantaneous_frequency`,
  :func:`mean_frequency`: per-neuron amplitude and frequency (phases are
  unwrapped over time, so frames must be closer than half a period).
- :func:`order_parameter`, :func:`region_order_parameter`: the Kuramoto order
  parameter ``r exp(i psi) = <exp(i theta)>`` over neurons (global or per region).
- :func:`phase_locking_value`: ``|<exp(i (theta - phi))>_t|`` against a reference
  phase (a drive ``Omega t + psi``, see :func:`drive_phase`) and the mean lag.
- :func:`phase_gradient`, :func:`travelling_wave`: plane-wave fit
  ``theta(x) ~ theta_0 + k . x`` on the lattice: wave vector, strength,
  wavelength.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# ------------------------------------------------------------ amplitude, frequency
def amplitude_phase(z):
    """``(|z|, arg z)`` of complex states."""
    z = np.asarray(z)
    return np.abs(z), np.angle(z)


def wrap(phase):
    """Phases wrapped to ``(-pi, pi]``."""
    p = np.asarray(phase, dtype=float)
    w = np.mod(p + np.pi, 2 * np.pi) - np.pi
    return np.where(w == -np.pi, np.pi, w)


def unwrap(phase, axis: int = 0):
    """Phases unwrapped along ``axis`` (time): jumps larger than ``pi`` are taken as wraps."""
    return np.unwrap(np.asarray(phase, dtype=float), axis=axis)


def instantaneous_frequency(phase, dt: float, axis: int = 0):
    """``dtheta/dt`` per frame (unwrapped phase, second-order central differences,
    one-sided at the ends); ``dt`` is the time between frames."""
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt!r}")
    return np.gradient(unwrap(phase, axis), dt, axis=axis)


def mean_frequency(phase, time, axis: int = 0):
    """Mean angular frequency over the record: least-squares slope of the unwrapped phase
    against ``time`` (``(T,)``)."""
    th = np.moveaxis(unwrap(phase, axis), axis, 0)
    t = np.asarray(time, dtype=float)
    if t.shape != (th.shape[0],) or len(t) < 2:
        raise ValueError(f"time must have shape ({th.shape[0]},) with at least two frames")
    tc = t - t.mean()
    slope = np.tensordot(tc, th - th.mean(axis=0), axes=(0, 0)) / (tc @ tc)
    return slope


# ------------------------------------------------------------------- synchrony
def order_parameter(phase, mask=None, weights=None, axis: int = -1):
    """Kuramoto order parameter ``R = r exp(i psi) = sum_i w_i exp(i theta_i) / sum_i w_i``.

    Parameters
    ----------
    phase : array (..., N)
    mask : bool (N,) or int indices, optional
        Neurons included (e.g. the living ones, or a region).
    weights : array (N,), optional
        Per-neuron weights (e.g. amplitudes); default 1.
    axis : int
        The neuron axis.

    Returns
    -------
    complex array: ``abs`` is ``r`` (1 for a synchronised state, ~``N^-1/2`` for
    incoherent phases), ``angle`` the mean phase ``psi``.
    """
    p = np.moveaxis(np.asarray(phase, dtype=float), axis, -1)
    n = p.shape[-1]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {w.shape}")
    if mask is not None:
        m = np.asarray(mask)
        sel = np.zeros(n, bool)
        if m.dtype == bool:
            if m.shape != (n,):
                raise ValueError(f"mask must have shape ({n},), got {m.shape}")
            sel = m
        else:
            sel[m.astype(np.int64)] = True
        w = np.where(sel, w, 0.0)
    tot = w.sum()
    if tot == 0:
        raise ValueError("no neuron (or zero total weight) in the order parameter")
    return (np.exp(1j * p) @ w) / tot


def region_order_parameter(phase, regions, axis: int = -1):
    """Order parameters of several regions: ``regions`` is a dict ``name -> indices``
    (returns a dict) or a sequence of index arrays (returns ``(..., R)``)."""
    if isinstance(regions, dict):
        return {k: order_parameter(phase, v, axis=axis) for k, v in regions.items()}
    return np.stack([order_parameter(phase, v, axis=axis) for v in regions], axis=-1)


def drive_phase(time, frequency: float, phase=0.0):
    """The phase ``Omega t + psi`` of a drive at the given times, shaped ``(T, 1, ...)`` so
    it broadcasts against ``(time, trial, neuron)`` records when ``phase`` is per neuron."""
    t = np.asarray(time, dtype=float)
    psi = np.asarray(phase, dtype=float)
    return frequency * t.reshape((-1,) + (1,) * max(psi.ndim, 0)) + psi


def phase_locking_value(phase, reference, axis: int = 0, ratio: tuple[int, int] = (1, 1)):
    """Phase-locking value and mean lag against a reference phase.

    ``PLV = |<exp(i (q theta - p phi))>|`` over ``axis`` (time), with
    ``ratio = (p, q)`` for ``p:q`` locking (default 1:1). ``reference`` must
    broadcast against ``phase`` (e.g. :func:`drive_phase`). Returns
    ``(plv, lag)`` with ``lag = arg <exp(i (q theta - p phi))>`` in ``(-pi, pi]``:
    ``PLV = 1`` for a constant phase difference, ~``T^-1/2`` for unrelated phases.
    """
    p, q = ratio
    d = q * np.asarray(phase, dtype=float) - p * np.asarray(reference, dtype=float)
    m = np.exp(1j * d).mean(axis=axis)
    return np.abs(m), np.angle(m)


# ------------------------------------------------------------- travelling waves
def _grid(phase, lattice):
    p = np.asarray(phase, dtype=float)
    if p.shape[-1] != lattice.size:
        raise ValueError(f"the last axis must hold the {lattice.size} voxels of the lattice, got {p.shape[-1]}")
    return p.reshape(p.shape[:-1] + tuple(lattice.shape))


def phase_gradient(phase, lattice, mask=None):
    """Mean phase gradient along x, y, z from nearest-neighbour differences.

    For each axis ``a``, ``S_a = sum exp(i (theta(x + e_a) - theta(x)))`` over
    pairs of included voxels; ``k_a = arg S_a / spacing`` (rad per unit length,
    the circular mean of the local differences) and ``c_a = |S_a| / pairs``
    (1 when every local difference is the same). Axes of one voxel give
    ``k = 0`` and ``c = nan``.

    Returns
    -------
    (k, coherence) : arrays ``(..., 3)``.
    """
    g = np.exp(1j * _grid(phase, lattice))
    lead = g.shape[:-3]
    m = np.ones(lattice.shape, bool) if mask is None else lattice.grid(_as_mask(mask, lattice.size))
    k = np.zeros(lead + (3,))
    coh = np.full(lead + (3,), np.nan)
    for a in range(3):
        if lattice.shape[a] < 2:
            continue
        hi = [slice(None)] * 3
        lo = [slice(None)] * 3
        hi[a], lo[a] = slice(1, None), slice(None, -1)
        pm = m[tuple(hi)] & m[tuple(lo)]
        npairs = pm.sum()
        if npairs == 0:
            continue
        prod = g[(...,) + tuple(hi)] * np.conj(g[(...,) + tuple(lo)])
        s = (prod * pm).sum(axis=(-3, -2, -1))
        k[..., a] = np.angle(s) / lattice.spacing
        coh[..., a] = np.abs(s) / npairs
    return k, coh


def _as_mask(mask, n):
    m = np.asarray(mask)
    if m.dtype == bool:
        if m.shape != (n,):
            raise ValueError(f"mask must have shape ({n},), got {m.shape}")
        return m
    out = np.zeros(n, bool)
    out[m.astype(np.int64)] = True
    return out


@dataclass
class TravellingWave:
    """A plane-wave fit ``theta(x) ~ theta_0 + k . x`` (arrays over the leading axes).

    ``k`` (..., 3) wave vector in rad per unit length (phase grows along ``k``:
    for ``theta = Omega t + k . x`` with ``Omega > 0`` the wave travels towards
    ``-k``); ``strength`` in [0, 1]: ``|<exp(i (theta - k . x))>|``, 1 for a perfect
    plane wave (also for ``k = 0``, a synchronised state: check ``|k|``),
    ~``N^-1/2`` for random phases; ``offset`` ``theta_0``; ``wavelength``
    ``2 pi / |k|`` (inf when ``k = 0``); ``coherence`` (..., 3) per-axis
    agreement of the local phase differences.
    """

    k: np.ndarray
    strength: np.ndarray
    offset: np.ndarray
    wavelength: np.ndarray
    coherence: np.ndarray

    @property
    def direction(self) -> np.ndarray:
        """Unit vector of ``k`` (zeros when ``k = 0``)."""
        n = np.linalg.norm(self.k, axis=-1, keepdims=True)
        return np.divide(self.k, n, out=np.zeros_like(self.k), where=n > 0)


def travelling_wave(phase, lattice, mask=None, refine: int = 3) -> TravellingWave:
    """Detect a travelling plane wave in phases ``(..., N)`` on ``lattice``.

    The wave vector starts from :func:`phase_gradient` and is refined by
    ``refine`` Gauss-Newton steps on the wrapped residuals
    ``wrap(theta_i - theta_0 - k . x_i)`` of the included voxels (``mask``),
    which removes the bias of the nearest-neighbour estimate under noise. The
    strength is the plane-wave order parameter ``|<exp(i (theta - k . x))>|``.
    """
    p = np.asarray(phase, dtype=float)
    n = lattice.size
    k, coh = phase_gradient(p, lattice, mask)
    sel = np.ones(n, bool) if mask is None else _as_mask(mask, n)
    x = lattice.positions[sel]  # (M, 3)
    th = p[..., sel]  # (..., M)
    active = np.array([lattice.shape[a] > 1 for a in range(3)])
    xa = x[:, active]

    def fit(kv):
        rot = np.exp(1j * (th - kv @ x.T))
        r = rot.mean(axis=-1)
        return r

    r = fit(k)
    for _ in range(int(refine)):
        if not active.any():
            break
        res = wrap(th - (k @ x.T) - np.angle(r)[..., None])  # (..., M)
        # least squares of res ~ d0 + dk . x (over the active axes)
        xc = xa - xa.mean(axis=0)
        gram = xc.T @ xc
        if np.linalg.matrix_rank(gram) < gram.shape[0]:
            break
        dk = np.linalg.solve(gram, (res @ xc)[..., None])[..., 0]
        k_new = k.copy()
        k_new[..., active] += dk
        r_new = fit(k_new)
        better = np.abs(r_new) >= np.abs(r)
        k = np.where(better[..., None], k_new, k)
        r = np.where(better, r_new, r)
    kn = np.linalg.norm(k, axis=-1)
    with np.errstate(divide="ignore"):
        wl = np.where(kn > 0, 2 * np.pi / np.where(kn > 0, kn, 1), np.inf)
    return TravellingWave(k=k, strength=np.abs(r), offset=np.angle(r), wavelength=wl, coherence=coh)
