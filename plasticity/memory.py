"""Associative memory in the lattice: store patterns, recall them from damaged cues, measure capacity.

Two ways to write ``P`` binary patterns into the existing synapses:

- ``"hebbian"``: the outer-product (Hopfield) rule restricted to the synapses the
  tissue has, :func:`plasticity.hebbian.store_patterns`;
- ``"eqprop"``: learned, :func:`learn_patterns`: Equilibrium Propagation on the
  auto-associative task "settle from a corrupted cue, end at the pattern" (every
  living voxel is an output; the free phase starts from the cue, the nudged
  phases pull every voxel towards the pattern).

Recall (:func:`recall`) settles at ``T = 0`` from a cue (:func:`corrupt`: a fraction
of the living voxels flipped, or erased to 0.5) and scores the end state by its
overlap ``m = mean_i (2 xi_i - 1)(2 rho_i - 1)`` with the pattern
(:func:`overlaps`; 1 is perfect recall, 0 chance).

:func:`capacity_curve` sweeps the load ``P`` (a Dataset over ``load`` and
``trial``). References for the figure (random unbiased patterns, retrieval
from a nearby state):

- fully connected Hopfield network: ``P_c = 0.138 N`` (Amit, Gutfreund and
  Sompolinsky 1985, Phys. Rev. Lett. 55, 1530);
- extremely (asymmetrically) diluted network, ``K`` inputs per neuron with
  ``K << log N``: ``P_c = (2 / pi) K`` (Derrida, Gardner and Zippelius 1987,
  Europhys. Lett. 4, 167). It is a theory for random, tree-like, asymmetric
  dilution; a 26-neighbour lattice is symmetric and highly clustered (loops of
  length 3 everywhere), so it is a reference scale, not a prediction;
- the one-step signal-to-noise estimate for a neuron with ``K`` synapses
  (:func:`snr_load`): the field of a stored pattern is ``K`` (signal) plus
  cross-talk of variance ``(P - 1) K``; a share ``eps`` of wrong units (overlap
  ``1 - 2 eps``) is reached at ``P - 1 = K / z^2`` with ``z`` the normal
  quantile ``Phi^-1(1 - eps)``.
"""

from __future__ import annotations

import math

import numpy as np

from dynamics import Langevin
from tissue import Tissue

from .eqprop import EqProp
from .hebbian import store_patterns

MODES = ("flip", "erase")
RULES = ("hebbian", "eqprop")
HOPFIELD_ALPHA = 0.138          # Amit, Gutfreund, Sompolinsky (1985)
DILUTED_ALPHA = 2.0 / math.pi   # Derrida, Gardner, Zippelius (1987), per connection

__all__ = ["DILUTED_ALPHA", "HOPFIELD_ALPHA", "MODES", "RULES", "capacity_curve", "corrupt", "learn_patterns",
           "overlaps", "random_patterns", "recall", "retrieval_capacity", "snr_load", "store_patterns"]


def random_patterns(count: int, n: int, rng, alive=None) -> np.ndarray:
    """``count`` unbiased random 0/1 patterns ``(count, n)`` (dead voxels 0)."""
    xi = (rng.random((int(count), int(n))) < 0.5).astype(np.float64)
    if alive is not None:
        xi[:, ~np.asarray(alive, bool)] = 0
    return xi


def overlaps(rates, patterns, alive=None) -> np.ndarray:
    """Overlaps ``mean_i (2 xi_i - 1)(2 rho_i - 1)`` over living voxels: rates ``(..., N)``
    against patterns ``(P, N)`` give ``(..., P)``, in [-1, 1]."""
    r = np.asarray(rates, dtype=np.float64)
    xi = np.asarray(patterns, dtype=np.float64)
    if alive is not None:
        keep = np.asarray(alive, bool)
        r, xi = r[..., keep], xi[:, keep]
    sig = 2 * xi - 1
    return (2 * r - 1) @ sig.T / sig.shape[1]


def corrupt(patterns, fraction: float, mode: str = "flip", rng=None, alive=None) -> np.ndarray:
    """Cues: copies of 0/1 ``patterns`` with exactly ``round(fraction * n_alive)`` living voxels,
    drawn without replacement per cue, flipped (``mode="flip"``) or set to 0.5 (``"erase"``,
    no information)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not (isinstance(fraction, (int, float)) and 0 <= fraction <= 1):
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    rng = np.random.default_rng(rng)
    xi = np.atleast_2d(np.asarray(patterns, dtype=np.float64))
    idx = np.arange(xi.shape[1]) if alive is None else np.flatnonzero(alive)
    k = int(round(fraction * len(idx)))
    cues = xi.copy()
    for b in range(len(cues)):
        hit = rng.choice(idx, size=k, replace=False)
        cues[b, hit] = 1 - cues[b, hit] if mode == "flip" else 0.5
    return cues


def recall(tissue, cues, engine: Langevin | None = None):
    """Settle at ``T = 0`` from each cue (``(B, N)``, nothing clamped); a :class:`SettleResult`."""
    eng = engine or Langevin(dt=0.2, temperature=0.0, tol=1e-4, max_steps=3000)
    return eng.settle(tissue, init=np.atleast_2d(cues))


def snr_load(k: float, overlap: float = 0.95) -> float:
    """Load ``P`` at which the one-step signal-to-noise estimate reaches ``overlap`` for
    neurons with ``k`` synapses: ``P = 1 + k / z^2``, ``z = Phi^-1(1 - eps)``, ``eps = (1 - overlap) / 2``."""
    from scipy.stats import norm

    eps = (1 - float(overlap)) / 2
    if not 0 < eps < 0.5:
        raise ValueError(f"overlap must lie in (0, 1), got {overlap!r}")
    z = norm.ppf(1 - eps)
    return 1 + float(k) / z**2


def _output_view(tissue) -> Tissue:
    """A tissue sharing ``tissue``'s weights and biases with every living voxel an output (one group)."""
    v = Tissue(tissue.lattice, tissue.syn, tissue.bias, tissue.activation, tissue.alive, tissue.seed, tissue.meta)
    v.set_output(np.flatnonzero(tissue.alive), groups=1)
    return v


def learn_patterns(tissue, patterns, epochs: int = 30, cue_fraction: float = 0.2, mode: str = "flip",
                   cues_per_pattern: int = 4, trainer: EqProp | None = None, engine: Langevin | None = None,
                   init: str = "hebbian", gain: float = 0.75, seed: int = 0, progress: bool = False) -> dict:
    """Store ``patterns`` by Equilibrium Propagation on the auto-associative task.

    Every epoch draws ``cues_per_pattern`` fresh cues per pattern (:func:`corrupt`);
    per mini-batch the free phase settles from the cue, the nudged phases add
    ``beta C`` with ``C = 1/2 sum_i (rho_i - xi_i)^2`` over all living voxels, and
    every synapse and bias moves by the EqProp contrast (:class:`EqProp`, local).
    The tissue's weights and biases are changed in place; its roles are not.

    ``init="hebbian"`` first writes the patterns with the outer-product rule
    (:func:`store_patterns`, ``gain``), so that the energy has several minima
    and the free phase depends on the cue (from a convex energy every cue
    settles to the same state and the contrast cannot tell them apart). The
    default gain is low on purpose: with a high gain the units saturate at
    the box walls, where the nudge cannot move them and EqProp sees no error;
    ``"keep"`` starts from the tissue's present weights.

    Returns
    -------
    dict
        ``loss`` and ``overlap`` (mean over the epoch's cues, free phase) per epoch.
    """
    xi = np.atleast_2d(np.asarray(patterns, dtype=np.float64))
    if xi.shape[1] != tissue.n or not np.all((xi == 0) | (xi == 1)):
        raise ValueError(f"patterns must be 0/1 arrays of shape (P, {tissue.n})")
    if init not in ("hebbian", "keep"):
        raise ValueError(f"init must be 'hebbian' or 'keep', got {init!r}")
    if init == "hebbian":
        store_patterns(tissue, xi, gain=gain)
    tr = trainer or EqProp(beta=1.0, symmetric=True, lr=0.02, optimizer="adam", batch_size=16)
    eng = engine or Langevin(dt=0.2, temperature=0.0, tol=1e-3, max_steps=500)
    view = _output_view(tissue)
    out = view.region("output")
    tr._prepare(view)
    rng = np.random.default_rng(seed)
    hist = {"loss": [], "overlap": []}
    bar = range(int(epochs))
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="eqprop memory", unit="epoch", leave=False)
    for _ in bar:
        target = np.repeat(np.arange(len(xi)), int(cues_per_pattern))
        cues = corrupt(xi[target], cue_fraction, mode, rng, tissue.alive)
        order = rng.permutation(len(target))
        loss, ov = [], []
        for lo in range(0, len(order), tr.batch_size):
            idx = order[lo:lo + tr.batch_size]
            y = xi[target[idx]][:, out]
            free = eng.settle(view, init=cues[idx], target=y, beta=0.0)
            plus = eng.settle(view, init=free.state, target=y, beta=tr.beta)
            minus = eng.settle(view, init=free.state, target=y, beta=-tr.beta) if tr.symmetric else free
            g, gb = tr.gradient(view, free, plus, minus)
            tr.apply(view, g, gb)
            loss.append(float(np.mean(free.cost)) * len(idx))
            ov.append(np.diagonal(overlaps(free.rates, xi[target[idx]], tissue.alive)).sum())
        hist["loss"].append(sum(loss) / len(order))
        hist["overlap"].append(float(sum(ov) / len(order)))
    return hist


def capacity_curve(shape, loads, cue_fraction: float = 0.2, mode: str = "flip", rule: str = "hebbian",
                   trials: int = 16, gain: float = 4.0, stencil: int = 26, epochs: int = 30,
                   engine: Langevin | None = None, seed: int = 0, progress: bool = False):
    """Retrieval overlap against load on a ``shape`` lattice with ``stencil`` neighbours.

    For every load ``P`` a fresh tissue (``Tissue.cube(shape, stencil, init="zero")``)
    stores ``P`` random unbiased patterns by ``rule``; ``trials`` cues (patterns
    taken in turn, ``cue_fraction`` of voxels corrupted by ``mode``) are settled
    at ``T = 0``. Patterns and cues depend only on ``(seed, P)``.

    Returns
    -------
    xarray.Dataset
        ``overlap`` ``(load, trial)`` with the cued pattern, ``cue_overlap``
        ``(load, trial)``, ``best`` ``(load, trial)`` (the largest overlap with
        any stored pattern), ``stable`` ``(load, trial)`` (overlap after settling
        from the uncorrupted pattern), ``steps`` and ``converged``; coords
        ``load`` and ``alpha = load / N``; attrs with ``N``, ``K`` and the
        reference loads (``0.138 N``, ``(2/pi) K``, the signal-to-noise load).
    """
    import xarray as xr

    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    loads = [int(p) for p in loads]
    if not loads or min(loads) < 1:
        raise ValueError(f"loads must be integers >= 1, got {loads!r}")
    eng = engine or Langevin(dt=0.2, temperature=0.0, tol=1e-4, max_steps=3000)
    probe = Tissue.cube(shape, stencil=stencil, init="zero")
    n = probe.n
    k_mean = float(probe.syn.degree.mean())
    keys = ("overlap", "cue_overlap", "best", "stable", "steps", "converged")
    res = {k: np.zeros((len(loads), int(trials))) for k in keys}
    it = list(enumerate(loads))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"capacity ({rule})", unit="load", leave=False)
    for a, p in it:
        rng = np.random.default_rng([int(seed), p])
        t = Tissue.cube(shape, stencil=stencil, init="zero", seed=seed)
        xi = random_patterns(p, n, rng)
        if rule == "hebbian":
            store_patterns(t, xi, gain=gain)
        else:
            learn_patterns(t, xi, epochs=epochs, cue_fraction=cue_fraction, mode=mode,
                           seed=int(rng.integers(2**31)))
        which = np.arange(int(trials)) % p
        cues = corrupt(xi[which], cue_fraction, mode, rng)
        got = recall(t, cues, eng)
        stay = recall(t, xi[which], eng)
        ov = overlaps(got.rates, xi)
        res["overlap"][a] = ov[np.arange(len(which)), which]
        res["best"][a] = ov.max(axis=1)
        res["cue_overlap"][a] = overlaps(cues, xi)[np.arange(len(which)), which]
        res["stable"][a] = overlaps(stay.rates, xi)[np.arange(len(which)), which]
        res["steps"][a] = got.steps
        res["converged"][a] = got.converged
    doc = {
        "overlap": "overlap of the recalled state with the cued pattern",
        "cue_overlap": "overlap of the cue with its pattern",
        "best": "largest overlap of the recalled state with any stored pattern",
        "stable": "overlap after settling from the uncorrupted pattern",
        "steps": "settling steps from the cue",
        "converged": "the settle from the cue converged",
    }
    ds = xr.Dataset(
        {k: (("load", "trial"), v.astype(bool) if k == "converged" else v, {"long_name": doc[k]})
         for k, v in res.items()},
        coords={"load": np.array(loads), "trial": np.arange(int(trials)),
                "alpha": ("load", np.array(loads) / n, {"long_name": "load per neuron P / N"})},
        attrs={"N": int(n), "K_mean": k_mean, "stencil": int(stencil), "shape": list(shape), "rule": rule,
               "mode": mode, "cue_fraction": float(cue_fraction), "gain": float(gain),
               "hopfield_load": HOPFIELD_ALPHA * n, "diluted_load": DILUTED_ALPHA * k_mean,
               "snr_load_0.95": snr_load(k_mean, 0.95),
               "references": "0.138 N: Amit, Gutfreund, Sompolinsky, PRL 55, 1530 (1985); "
                             "(2/pi) K: Derrida, Gardner, Zippelius, Europhys. Lett. 4, 167 (1987), "
                             "asymmetric extreme dilution; SNR: one-step signal-to-noise estimate"},
    )
    return ds


def retrieval_capacity(ds, threshold: float = 0.95) -> int:
    """The largest load of ``capacity_curve`` below which (that load included) the mean
    overlap is >= ``threshold`` at every load; 0 if the first load already fails."""
    m = ds["overlap"].mean("trial").values
    ok = m >= threshold
    if not ok[0]:
        return 0
    first_bad = np.flatnonzero(~ok)
    last = len(ok) - 1 if first_bad.size == 0 else first_bad[0] - 1
    return int(ds["load"].values[last])
