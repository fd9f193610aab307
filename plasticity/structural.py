"""Structural plasticity: pruning, synaptogenesis and neurogenesis, on a slower clock than learning.

Three edits of the synapse table, each local in space and driven by what
learning measured:

- **pruning** removes *silent* synapses: small weight (``|w| <= prune_weight``)
  and small running update (an exponential moving average of ``|dw|`` per
  synapse, taken over the learning steps, ``<= prune_dw``); at most
  ``prune_max`` (a share of the synapses) per structural step, the smallest
  ``|w|`` first. With ``prune_by="activity"`` the weight is replaced by the
  *effective* weight ``|w_ij| r_i r_j``, where ``r_i`` is the running RMS of
  neuron i's free-phase rate (fed by :meth:`StructuralPlasticity.observe_rates`
  every batch): a synapse between two neurons that never fire moves no fixed
  point, whatever its weight, and a small weight between two busy neurons may
  matter. ``prune_by="effect"`` is the effective weight with one exact zero
  more: a synapse between two clamped input neurons moves no fixed point of a
  tissue whose inputs are clamped (neither end is free to answer it), so its
  saliency is 0 (it still shapes a dream, where the input is free);
- **synaptogenesis** adds synapses between unconnected living neurons within
  ``grow_radius`` voxels of each other where learning is "loud": the running
  nudge magnitude ``a_i`` (a moving average of ``mean_b |rho_i(+beta) -
  rho_i(-beta)|`` over the structural steps' probes) of one of the two is in the
  top ``1 - grow_quantile`` of the living free neurons. Among those pairs the
  ones whose EqProp contrast (the update the synapse would get if it existed,
  ``c_ij = mean_b [rho_i rho_j]^{+beta}_{-beta} / (2 beta)``) is largest in
  magnitude are grown, at most ``grow_max`` per step, with weight
  ``grow_weight * sign(c_ij)``;
- **neurogenesis** places new neurons in dead (or empty) voxels that are not
  input voxels, next to loud regions: a voxel's score is the mean running nudge
  of the living free (non-input: clamped inputs are never nudged) neurons within
  ``birth_radius``; voxels scoring at least the
  ``birth_quantile`` quantile of the living free neurons' nudge are born, the
  loudest first, at most ``birth_max`` per step. A new neuron keeps its voxel's
  role (hidden, or output with its group), starts at rest with the mean bias of
  its living free neighbours (a rate clipped at 0 would never learn), and is
  wired to every living neighbour within ``birth_radius`` with weights uniform in
  ``[-birth_weight, birth_weight]``; with ``birth_small_world`` > 0 that share of
  its synapses goes instead to living neurons anywhere in the tissue, drawn
  uniformly, as the tissue's own small-world synapses were
  (:func:`tissue.wiring.small_world_rewire`).

After every edit the per-synapse running statistics follow their synapses
(:func:`remap_slots`), and a trainer with an ``invalidate`` method
(:class:`plasticity.EqProp`) is told, so its per-slot caches and Adam moments
follow the edit too.

:class:`Scheduler` runs the clocks: settle every step (inside a training
step), learn every batch, grow and prune every ``every`` batches, homeostasis
(the Lipschitz brake's check) every ``homeostasis_every`` batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tissue import INPUT

__all__ = ["PRUNE_BY", "RATE_RANKED", "Scheduler", "StructuralPlasticity", "remap_slots"]

PRUNE_BY = ("weight", "activity", "effect")
RATE_RANKED = ("activity", "effect")   # the rankings that need observed rates
BIRTH_INIT = ("random", "copy", "gradmax")


# ------------------------------------------------------------------ helpers
def remap_slots(values: np.ndarray, old_nbr: np.ndarray, new_nbr: np.ndarray, fill=0) -> np.ndarray:
    """Move a per-slot array from one layout of a synapse table to another.

    ``values`` ``(N, K0)`` belongs to the table ``old_nbr`` ``(N, K0)``; the result
    ``(N, K1)`` belongs to ``new_nbr``: the value of synapse ``i -> j`` goes to the
    slot that holds ``i -> j`` now; synapses new in ``new_nbr`` and empty slots get
    ``fill``.
    """
    n = old_nbr.shape[0]
    if new_nbr.shape[0] != n or values.shape != old_nbr.shape:
        raise ValueError("remap_slots: values and both tables must have the same number of rows, "
                         "and values the shape of old_nbr")
    out = np.full(new_nbr.shape, fill, dtype=values.dtype)
    oi, ok = np.nonzero(old_nbr >= 0)
    if len(oi) == 0:
        return out
    okey = oi.astype(np.int64) * n + old_nbr[oi, ok]
    order = np.argsort(okey)
    okey = okey[order]
    ni, nk = np.nonzero(new_nbr >= 0)
    nkey = ni.astype(np.int64) * n + new_nbr[ni, nk]
    pos = np.searchsorted(okey, nkey).clip(max=len(okey) - 1)
    hit = okey[pos] == nkey
    src = order[pos[hit]]
    out[ni[hit], nk[hit]] = values[oi[src], ok[src]]
    return out


def _neighbour_offsets(radius: float) -> np.ndarray:
    from tissue import radius_offsets

    return radius_offsets(radius)


def _neighbours(lattice, index: np.ndarray, offsets: np.ndarray):
    """``(src, dst)``: every voxel ``dst`` at one of ``offsets`` from ``src`` in ``index``."""
    c = lattice.coords(index)
    shape = np.asarray(lattice.shape)
    cc = c[:, None, :] + offsets[None, :, :]
    ok = np.all((cc >= 0) & (cc < shape), axis=2)
    src = np.broadcast_to(np.asarray(index)[:, None], ok.shape)[ok]
    cc = cc[ok]
    dst = lattice.index(cc[:, 0], cc[:, 1], cc[:, 2])
    return src.astype(np.int64), dst.astype(np.int64)


# ------------------------------------------------------------------ the rules
@dataclass
class StructuralPlasticity:
    """Pruning, synaptogenesis and neurogenesis (see the module doc).

    Parameters
    ----------
    prune, grow, neurogenesis : bool
        Which edits run in :meth:`step`.
    prune_weight, prune_dw : float
        A synapse is silent when ``|w| <= prune_weight`` and its running ``|dw|``
        ``<= prune_dw``.
    prune_max : float
        At most this share of the current synapses is pruned per step.
    prune_by : {"weight", "activity", "effect"}
        Rank (and gate) silent synapses by ``|w|``, or by the effective weight
        ``|w_ij| r_i r_j`` with ``r`` the running RMS free-phase rates (until rates
        have been observed, ``r = 1``), or (``"effect"``) by the effective weight
        with the synapses between two clamped input neurons at 0.
    rate_decay : float in [0, 1)
        Decay per batch of the running mean squared rate.
    grow_radius : float
        New synapses join neurons at most this far apart (voxel units).
    grow_quantile : float in [0, 1]
        A neuron is loud when its running nudge is at least this quantile of the
        living free neurons' nudges (and > 0).
    grow_max : int
        Synapses grown per step at most.
    grow_weight : float
        Magnitude of a new synapse's weight.
    neurogenesis : bool
    birth_radius : float
        New neurons are wired to living neighbours within this distance (1.75:
        the 26-neighbourhood).
    birth_quantile : float in [0, 1]
        Loudness threshold of a birth site (quantile of the living free nudges).
    birth_max : int
        Neurons born per step at most.
    birth_weight : float
        New neurons' weights are uniform in ``[-birth_weight, birth_weight]`` (``gradmax``:
        the same root mean square, ``birth_weight / sqrt(3)``).
    birth_init : {"random", "copy", "gradmax"}
        ``copy``: a newborn starts as a shifted copy of a living neighbour in its own
        z plane (the first of +x, -x, +y, -y; its *template*): each synapse to the
        voxel at offset ``d`` takes the weight of the template's synapse at the same
        offset (``birth_weight`` noise where the template has none), and the
        template's bias. In a tissue wired by a stencil, a neighbour's receptive field
        moved by one voxel is the natural first guess for a lost neuron's. ``random``:
        small random weights and the neighbours' mean bias. ``gradmax`` (after GradMax,
        Evci et al. 2022, which starts a new unit where the gradient norm is largest):
        the synapses to older neighbours start along the direction that learning
        amplifies fastest, the top eigenvector of the neighbours' contrast operator
        (:meth:`contrast_operator`, measured by the last probe), at the random init's
        root mean square; it needs only the neighbours' nudged rates, which the site
        sees (a neuron running Oja's rule on them would find the same vector).
    birth_small_world : float in [0, 1]
        Share of a newborn's synapses whose far end is moved from a neighbour within
        ``birth_radius`` to a living neuron drawn uniformly from the whole tissue (the
        long-range synapses of ``Tissue.cube(small_world=...)``; 0: newborns are wired
        locally only). A neuron lost to a lesion had its share of long-range synapses;
        a newborn wired only locally cannot replace them.
    birth_lr : float >= 1
        Heightened plasticity of newborn neurons (as adult-born neurons in the
        hippocampus, whose synapses potentiate more readily for weeks): a newborn's
        synapses and bias learn with ``birth_lr`` times the rate at birth, falling
        linearly to 1 over ``juvenile_steps`` structural steps (given to a trainer
        with ``set_neuron_lr``, :meth:`plasticity.EqProp.set_neuron_lr`). 1: off.
    juvenile_steps : int >= 1
        Structural steps over which a newborn's factor falls back to 1.
    dw_decay, nudge_decay : float in [0, 1)
        Decay of the running averages (``a <- decay * a + (1 - decay) * x``).
    seed : int
        Seeds the weights of new synapses and neurons.
    prune_budget : int, optional
        Synapses that pruning may still remove in all (None: no limit); it
        counts down as :meth:`prune_silent` removes them.

    Attributes
    ----------
    log : list of dict
        One entry per edit: ``when``, ``what`` (prune / grow / birth), ``count``.
    born : ndarray (N,) int
        Structural step at which each voxel's neuron was born (-1: not born here).
    """

    prune: bool = True
    prune_weight: float = 0.02
    prune_dw: float = 1e-4
    prune_max: float = 0.05
    prune_by: str = "weight"
    rate_decay: float = 0.9
    grow: bool = True
    grow_radius: float = 2.0
    grow_quantile: float = 0.9
    grow_max: int = 20
    grow_weight: float = 0.01
    neurogenesis: bool = True
    birth_radius: float = 1.75
    birth_quantile: float = 0.5
    birth_max: int = 8
    birth_weight: float = 0.05
    birth_init: str = "random"
    birth_small_world: float = 0.0
    birth_lr: float = 1.0
    juvenile_steps: int = 10
    dw_decay: float = 0.9
    nudge_decay: float = 0.5
    seed: int = 0
    prune_budget: int | None = None
    log: list = field(default_factory=list)

    def __post_init__(self):
        for key, lo, hi in (("prune_weight", 0, None), ("prune_dw", 0, None), ("prune_max", 0, 1),
                            ("grow_radius", 1, None), ("grow_quantile", 0, 1), ("grow_weight", 0, None),
                            ("birth_radius", 1, None), ("birth_quantile", 0, 1), ("birth_weight", 0, None),
                            ("birth_small_world", 0, 1),
                            ("dw_decay", 0, 1), ("nudge_decay", 0, 1), ("rate_decay", 0, 1)):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= lo and (hi is None or v <= hi)):
                rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
                raise ValueError(f"StructuralPlasticity {key} must be a finite number {rng}, got {v!r}")
        for key in ("grow_max", "birth_max"):
            v = getattr(self, key)
            if not (isinstance(v, (int, np.integer)) and v >= 0):
                raise ValueError(f"StructuralPlasticity {key} must be an integer >= 0, got {v!r}")
        if not (isinstance(self.birth_lr, (int, float)) and np.isfinite(self.birth_lr) and self.birth_lr >= 1):
            raise ValueError(f"StructuralPlasticity birth_lr must be a finite number >= 1, got {self.birth_lr!r}")
        if not (isinstance(self.juvenile_steps, (int, np.integer)) and self.juvenile_steps >= 1):
            raise ValueError(f"StructuralPlasticity juvenile_steps must be an integer >= 1, got {self.juvenile_steps!r}")
        if self.birth_init not in BIRTH_INIT:
            raise ValueError(f"StructuralPlasticity birth_init must be one of {BIRTH_INIT}, got {self.birth_init!r}")
        if self.prune_by not in PRUNE_BY:
            raise ValueError(f"StructuralPlasticity prune_by must be one of {PRUNE_BY}, got {self.prune_by!r}")
        self._rng = np.random.default_rng(self.seed)
        self.rate2 = None       # (N,) running mean squared free-phase rate
        self.dw = None          # (N, K) running |dw|, in the table's current layout
        self._nbr = None        # the layout self.dw belongs to
        self.nudge = None       # (N,) running nudge magnitude
        self.contrast_rates = None   # (rp, rm, scale) of the last probe
        self.born = None
        self.steps = 0

    # ----------------------------------------------------------- statistics
    def _follow(self, tissue) -> None:
        """Bring the per-slot statistics to the table's current layout."""
        nbr = tissue.syn.nbr
        if self.dw is None:
            self.dw = np.full(nbr.shape, np.inf)   # unmeasured: not silent
            self._nbr = nbr.copy()
            return
        if self._nbr.shape != nbr.shape or not np.array_equal(self._nbr, nbr):
            self.dw = remap_slots(self.dw, self._nbr, nbr, fill=np.inf)   # new synapses are not silent
            self._nbr = nbr.copy()

    def observe_update(self, tissue, w_before: np.ndarray) -> None:
        """Fold one learning step's ``|dw|`` (``tissue.syn.w - w_before``, same layout) into the running average."""
        self._follow(tissue)
        dw = np.abs(tissue.syn.w.astype(np.float64) - w_before)
        fresh = ~np.isfinite(self.dw)
        self.dw = np.where(fresh, dw, self.dw_decay * self.dw + (1 - self.dw_decay) * dw)

    def observe_rates(self, tissue, rates) -> None:
        """Fold a batch of free-phase rates ``(B, N)`` into the running mean squared rate."""
        r2 = (np.asarray(rates, dtype=np.float64) ** 2).mean(axis=0)
        if self.rate2 is None or self.rate2.shape != r2.shape:
            self.rate2 = r2
        else:
            self.rate2 = self.rate_decay * self.rate2 + (1 - self.rate_decay) * r2

    def effective_weights(self, tissue, i, k, j) -> np.ndarray:
        """The pruning saliency of synapses ``(i, slot k) -> j``: ``|w|``, or for
        ``prune_by="activity"`` ``|w| r_i r_j`` (running RMS rates), or for ``"effect"``
        ``|w| r_i r_j`` and 0 where both ends are clamped inputs."""
        aw = np.abs(tissue.syn.w[i, k]).astype(np.float64)
        if self.prune_by in RATE_RANKED and self.rate2 is not None:
            r = np.sqrt(self.rate2)
            aw = aw * r[i] * r[j]
        if self.prune_by == "effect":
            inp = tissue.role == INPUT
            aw = np.where(inp[i] & inp[j], 0.0, aw)
        return aw

    def observe_nudge(self, tissue, plus_rates, minus_rates, beta: float, symmetric: bool = True) -> None:
        """Fold a probe's nudge ``mean_b |rho(+beta) - rho(-beta)|`` ``(B, N)`` rates into the running nudge."""
        rp = np.asarray(plus_rates, dtype=np.float64)
        rm = np.asarray(minus_rates, dtype=np.float64)
        a = np.abs(rp - rm).mean(axis=0)
        a[~tissue.alive] = 0.0
        if self.nudge is None or self.nudge.shape != a.shape:
            self.nudge = a
        else:
            self.nudge = self.nudge_decay * self.nudge + (1 - self.nudge_decay) * a
        self.contrast_rates = (rp, rm, 1.0 / (2 * beta) if symmetric else 1.0 / beta)

    def probe(self, tissue, trainer, engine, x, y) -> None:
        """Settle ``x`` free and nudged with ``trainer`` (an :class:`plasticity.EqProp`) and
        fold the nudge into the running average (nothing is learnt)."""
        _free, plus, minus = trainer.phases(tissue, engine, x, y)
        self.observe_nudge(tissue, plus.rates, minus.rates, trainer.beta, trainer.symmetric)

    def _loud_threshold(self, tissue, q: float) -> float:
        free = tissue.alive & (tissue.role != INPUT)
        if self.nudge is None or not free.any():
            return np.inf
        return float(np.quantile(self.nudge[free], q))

    # ----------------------------------------------------------- edits
    def _half_table(self, tissue):
        """Every synapse once (``i < j``): ``(i, k, j)`` and its saliency (:meth:`effective_weights`).
        For ``prune_by="effect"`` the synapses between two clamped inputs are listed first, so that
        the stable sorts of the pruning rules take them before any other synapse of saliency 0 (a
        synapse of a neuron at rate 0 moves no fixed point to first order only: cutting its inputs
        may wake it)."""
        self._follow(tissue)
        syn = tissue.syn
        i, k = np.nonzero(syn.nbr >= 0)
        j = syn.nbr[i, k].astype(np.int64)
        half = i < j
        i, k, j = i[half], k[half], j[half]
        if self.prune_by == "effect":
            inp = tissue.role == INPUT
            first = np.argsort(~(inp[i] & inp[j]), kind="stable")
            i, k, j = i[first], k[first], j[first]
        return i, k, j, self.effective_weights(tissue, i, k, j)

    def _remove(self, tissue, i, j, chosen) -> int:
        for a, b in zip(i[chosen].tolist(), j[chosen].tolist()):
            tissue.syn.remove(a, b)
        if self.prune_budget is not None:
            self.prune_budget -= len(chosen)
        self._follow(tissue)
        return len(chosen)

    def prune_silent(self, tissue, max_count: int | None = None) -> int:
        """Remove silent synapses (see the class doc); returns how many."""
        i, k, j, aw = self._half_table(tissue)
        syn = tissue.syn
        dw = np.maximum(self.dw[i, k], self.dw[j, syn.rev[i, k]])
        silent = np.flatnonzero((aw <= self.prune_weight) & (dw <= self.prune_dw))
        cap = int(np.floor(self.prune_max * len(i))) if max_count is None else int(max_count)
        if self.prune_budget is not None:
            cap = min(cap, max(0, int(self.prune_budget)))
        if len(silent) > cap:
            silent = silent[np.argsort(aw[silent], kind="stable")[:cap]]
        return self._remove(tissue, i, j, silent)

    def prune_least(self, tissue, count: int) -> int:
        """Remove the ``count`` synapses of smallest saliency (:meth:`effective_weights`) at
        once, whatever their running ``|dw|`` and with no
        ``prune_weight`` or ``prune_max`` bound: one-shot pruning, to be followed by
        fine-tuning. Returns how many were removed."""
        i, _, j, aw = self._half_table(tissue)
        count = max(0, min(int(count), len(i)))
        return self._remove(tissue, i, j, np.argsort(aw, kind="stable")[:count])

    def grow_synapses(self, tissue) -> int:
        """Add synapses between unconnected living neurons near loud ones; returns how many."""
        if self.nudge is None or self.grow_max == 0:
            return 0
        thr = self._loud_threshold(tissue, self.grow_quantile)
        loud = np.flatnonzero(tissue.alive & (tissue.role != INPUT) & (self.nudge >= thr) & (self.nudge > 0))
        if len(loud) == 0:
            return 0
        src, dst = _neighbours(tissue.lattice, loud, _neighbour_offsets(self.grow_radius))
        ok = tissue.alive[dst] & ~((tissue.role[src] == INPUT) & (tissue.role[dst] == INPUT))
        src, dst = src[ok], dst[ok]
        lo, hi = np.minimum(src, dst), np.maximum(src, dst)
        n = tissue.n
        key = np.unique(lo * n + hi)
        i, j, _ = tissue.syn.edges()
        key = np.setdiff1d(key, i * n + j)
        if len(key) == 0:
            return 0
        a, b = key // n, key % n
        rp, rm, scale = self.contrast_rates
        c = ((rp[:, a] * rp[:, b]) - (rm[:, a] * rm[:, b])).mean(axis=0) * scale
        order = np.argsort(-np.abs(c), kind="stable")[: self.grow_max]
        order = order[np.abs(c[order]) > 0]
        for e in order.tolist():
            tissue.syn.add(int(a[e]), int(b[e]), self.grow_weight * float(np.sign(c[e])))
        self._follow(tissue)
        return len(order)

    def birth(self, tissue) -> np.ndarray:
        """Place new neurons in dead voxels next to loud regions; returns their voxels."""
        if self.nudge is None or self.birth_max == 0:
            return np.zeros(0, np.int64)
        sites = np.flatnonzero(~tissue.alive & (tissue.role != INPUT))
        if len(sites) == 0:
            return np.zeros(0, np.int64)
        thr = self._loud_threshold(tissue, self.birth_quantile)
        src, dst = _neighbours(tissue.lattice, sites, _neighbour_offsets(self.birth_radius))
        live = tissue.alive[dst] & (tissue.role[dst] != INPUT)   # clamped inputs are never nudged
        src, dst = src[live], dst[live]
        total = np.bincount(src, weights=self.nudge[dst], minlength=tissue.n)
        count = np.bincount(src, minlength=tissue.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        ok = sites[(score[sites] >= thr) & (score[sites] > 0)]
        if len(ok) == 0:
            return np.zeros(0, np.int64)
        new = np.sort(ok[np.argsort(-score[ok], kind="stable")[: self.birth_max]])
        # a newborn takes the mean bias of its living free neighbours (so it starts in the range
        # where its rate responds and its synapses can learn; a rate clipped at 0 gets no update)
        nb_src, nb_dst = _neighbours(tissue.lattice, new, _neighbour_offsets(self.birth_radius))
        free = tissue.alive[nb_dst] & (tissue.role[nb_dst] != INPUT)
        tot = np.bincount(nb_src[free], weights=tissue.bias[nb_dst[free]].astype(np.float64), minlength=tissue.n)
        cnt = np.bincount(nb_src[free], minlength=tissue.n)
        tissue.bias[new] = np.where(cnt[new] > 0, tot[new] / np.maximum(cnt[new], 1), 0.0)
        tmpl = self._templates(tissue, new) if self.birth_init == "copy" else None
        tissue.alive[new] = True
        src, dst = _neighbours(tissue.lattice, new, _neighbour_offsets(self.birth_radius))
        live = tissue.alive[dst]
        src, dst = src[live], dst[live]
        if self.birth_small_world > 0 and len(src):
            src, dst = self._long_range(tissue, src, dst)
        w = self._rng.uniform(-self.birth_weight, self.birth_weight, size=len(src))
        if self.birth_init == "gradmax":
            w = self._gradmax_weights(tissue, new, src, dst, w)
        if tmpl is not None:
            w = self._copied_weights(tissue, tmpl, src, dst, w)
            has = tmpl[new] >= 0
            tissue.bias[new[has]] = tissue.bias[tmpl[new[has]]]
        for a, b, ww in zip(src.tolist(), dst.tolist(), w.tolist()):
            tissue.syn.add(a, b, ww)   # a pair of two new neurons is added once (add returns False after)
        if self.born is None or len(self.born) != tissue.n:
            self.born = np.full(tissue.n, -1, np.int64)
        self.born[new] = self.steps
        if self.nudge is not None:
            self.nudge[new] = 0.0
        self._follow(tissue)
        return new

    def _long_range(self, tissue, src, dst):
        """Move the far end of ``birth_small_world`` of the newborns' synapses ``src -> dst`` to
        living neurons drawn uniformly (no self-loop, no pair twice; a pair of two newborns is listed
        from both ends, so it is kept once first)."""
        from tissue.wiring import small_world_rewire

        key = np.minimum(src, dst) * tissue.n + np.maximum(src, dst)
        _, first = np.unique(key, return_index=True)
        first = np.sort(first)
        return small_world_rewire(src[first], dst[first], tissue.n, self.birth_small_world, self._rng,
                                  exclude=~tissue.alive)

    def contrast_operator(self, neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(S, m)`` of the last probe over the neurons ``neighbours`` (the living neighbours
        of a site): ``S = M + M^T`` with ``M_jk = mean_b e_j rho_k``, where ``e_j = (rho_j(+beta)
        - rho_j(-beta)) / (2 beta)`` is neuron j's nudge signal in sample b and ``rho_k`` its rate
        (the mean of the two nudged rates, the free rate to O(beta^2); O(beta) with one-sided
        nudging, whose second phase is the free one); ``m_j = mean_b e_j``.

        For a neuron at the site with small synapses ``w`` to these neighbours and a rate in its
        linear range, the EqProp contrast of those synapses (the update they would get) is, to
        first order in ``w``, ``rho_0 m + S w`` (``rho_0`` the neuron's rate at ``w = 0``): the
        directions with a positive eigenvalue of ``S`` are the ones learning amplifies."""
        rp, rm, scale = self.contrast_rates
        e = (rp[:, neighbours] - rm[:, neighbours]) * scale
        rho = 0.5 * (rp[:, neighbours] + rm[:, neighbours])
        corr = e.T @ rho / len(e)          # M
        return corr + corr.T, e.mean(axis=0)

    def _gradmax_weights(self, tissue, new, src, dst, w) -> np.ndarray:
        """``birth_init="gradmax"``: each newborn's synapses to its older living neighbours start
        along the top eigenvector of their :meth:`contrast_operator` (sign: along the mean nudge
        ``m``), with the root mean square ``birth_weight / sqrt(3)`` of the random init; synapses
        between two newborns (whose neighbours' probe saw them dead) and sites whose operator has
        no positive eigenvalue keep the random weights ``w``."""
        if self.contrast_rates is None:
            return w
        w = np.array(w, dtype=np.float64)
        young = np.zeros(tissue.n, bool)
        young[new] = True
        rms = self.birth_weight / np.sqrt(3.0)
        for n in new.tolist():
            rows = np.flatnonzero((src == n) & ~young[dst])
            if len(rows) == 0:
                continue
            S, m = self.contrast_operator(dst[rows])
            lam, vec = np.linalg.eigh(S)
            if not lam[-1] > 0:
                continue
            v = vec[:, -1]
            if v @ m < 0:
                v = -v
            w[rows] = v * rms * np.sqrt(len(rows))   # ||v|| = 1: rms of the entries is rms
        return w

    @staticmethod
    def _templates(tissue, new) -> np.ndarray:
        """``(N,)``: each newborn's template (a living, free, not newborn in-plane neighbour:
        the first of +x, -x, +y, -y), -1 where it has none."""
        lat = tissue.lattice
        tmpl = np.full(tissue.n, -1, np.int64)
        c = lat.coords(new)
        shape = np.asarray(lat.shape)
        for off in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0)):
            cc = c + np.asarray(off)
            ok = np.all((cc >= 0) & (cc < shape), axis=1)
            idx = np.full(len(new), -1, np.int64)
            idx[ok] = lat.index(cc[ok, 0], cc[ok, 1], cc[ok, 2])
            good = ok & (tmpl[new] < 0)
            good[good] &= tissue.alive[idx[good]] & (tissue.role[idx[good]] != INPUT)
            tmpl[new[good]] = idx[good]
        return tmpl

    @staticmethod
    def _copied_weights(tissue, tmpl, src, dst, w) -> np.ndarray:
        """Weights of the newborns' synapses ``src -> dst``: the template's synapse at the same
        offset where it has one (``w`` elsewhere)."""
        lat = tissue.lattice
        shape = np.asarray(lat.shape)
        w = np.array(w, dtype=np.float64)
        t = tmpl[src]
        d = lat.coords(dst) - lat.coords(src)
        for k in np.flatnonzero(t >= 0):
            u = lat.coords(t[k:k + 1])[0] + d[k]
            if np.all((u >= 0) & (u < shape)):
                slot = tissue.syn.slot(int(t[k]), int(lat.index(u[0], u[1], u[2])))
                if slot >= 0:
                    w[k] = float(tissue.syn.w[t[k], slot])
        return w

    def step(self, tissue, trainer=None, engine=None, x=None, y=None, when=None) -> dict:
        """One structural step: probe (when ``trainer``, ``engine`` and a batch are given), then
        prune, grow and give birth as configured; tell ``trainer`` about the edit.
        Returns ``{"pruned", "grown", "born"}``."""
        if trainer is not None and x is not None:
            self.probe(tissue, trainer, engine, x, y)
        self._follow(tissue)
        out = {"pruned": 0, "grown": 0, "born": 0}
        if self.prune:
            out["pruned"] = self.prune_silent(tissue)
        if self.grow:
            out["grown"] = self.grow_synapses(tissue)
        if self.neurogenesis:
            out["born"] = len(self.birth(tissue))
        for what in ("pruned", "grown", "born"):
            if out[what]:
                self.log.append({"when": when if when is not None else self.steps, "what": what,
                                 "count": out[what]})
        if any(out.values()) and trainer is not None and hasattr(trainer, "invalidate"):
            trainer.invalidate()
        self.steps += 1
        if self.birth_lr != 1 and trainer is not None and hasattr(trainer, "set_neuron_lr") and self.born is not None:
            trainer.set_neuron_lr(self.juvenile_factors())
        return out

    def juvenile_factors(self) -> np.ndarray | None:
        """Per-neuron learning-rate factors of the newborns' heightened plasticity, for the
        steps taken so far: ``1 + (birth_lr - 1) * clip(1 - (age - 1) / juvenile_steps, 0, 1)``
        with ``age`` the structural steps since birth (1 for a neuron born in the last step, so
        it starts at ``birth_lr`` and is back at 1 after ``juvenile_steps`` more steps); 1 for
        every other neuron. None before any birth."""
        if self.born is None:
            return None
        age = self.steps - self.born
        young = np.clip(1.0 - (age - 1) / self.juvenile_steps, 0.0, 1.0)
        return np.where(self.born >= 0, 1.0 + (self.birth_lr - 1.0) * young, 1.0)


# ------------------------------------------------------------------ the clocks
@dataclass
class Scheduler:
    """Multi-timescale training: settle every step, learn every batch, restructure every
    ``every`` batches, homeostasis every ``homeostasis_every`` batches.

    Parameters
    ----------
    trainer : plasticity.EqProp
    engine : dynamics.Langevin
    structural : StructuralPlasticity, optional
        None: learning (and homeostasis) only.
    every : int
        Batches between structural steps.
    brake : plasticity.LipschitzBrake, optional
        Homeostasis, every ``homeostasis_every`` batches (besides the trainer's own
        use of it when a free phase stalls): if at least ``brake.stall_fraction``
        of the free-phase trials since the last tick hit the step cap, the
        contraction is measured at the last batch's stalled states and the weights
        rescaled when it is above the trigger. A tissue that still settles is left
        alone: a trained hard-sigmoid tissue is multistable, its contraction at
        its own fixed points is often above 1, and rescaling it then only
        destroys what it learnt (measured: a digits tissue pruned at lr 2e-4 fell
        from 0.924 to 0.371 under the old, unconditional tick).
    homeostasis_every : int
    """

    trainer: object
    engine: object
    structural: StructuralPlasticity | None = None
    every: int = 10
    brake: object = None
    homeostasis_every: int = 50
    batches: int = 0
    events: list = field(default_factory=list)
    _since_tick: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        for key in ("every", "homeostasis_every"):
            v = getattr(self, key)
            if not (isinstance(v, (int, np.integer)) and v >= 1):
                raise ValueError(f"Scheduler {key} must be an integer >= 1, got {v!r}")

    def fit_epoch(self, tissue, x, y, epoch: int = 0, progress: bool = False, callback=None,
                  epochs: int | None = None, targets=None) -> dict:
        """One pass over ``(x, y)`` in the trainer's seeded order (as :meth:`EqProp.fit_epoch`; the
        trainer's learning-rate schedule runs over ``epochs``, constant when None), with the
        structural and homeostatic clocks. ``callback(batches_done, n_batches)`` is called after
        every batch; ``targets`` (``(n, n_outputs)``, optional) replace the one-hot class targets
        (e.g. a teacher's output rates)."""
        tr = self.trainer
        tr._prepare(tissue)
        rng = np.random.default_rng([tr.seed, epoch])
        order = rng.permutation(len(x))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(x), desc=f"epoch {epoch}", unit="ex", leave=False)
        loss = correct = 0.0
        t0 = time.perf_counter()
        n_batches = -(-len(x) // tr.batch_size)
        for b, lo in enumerate(range(0, len(x), tr.batch_size)):
            idx = order[lo:lo + tr.batch_size]
            w_before = tissue.syn.w.astype(np.float64) if self.structural is not None else None
            tr._state["lr_scale"] = tr.lr_scale(epoch, epochs, b, n_batches)
            rep = tr.train_step(tissue, self.engine, x[idx], y[idx], index=idx,
                                target=None if targets is None else targets[idx])
            self.batches += 1
            if self.structural is not None:
                self.structural.observe_update(tissue, w_before)
                if self.structural.prune and self.structural.prune_by in RATE_RANKED:
                    self.structural.observe_rates(tissue, rep.free_rates)
                if self.batches % self.every == 0:
                    ev = self.structural.step(tissue, tr, self.engine, x[idx], y[idx], when=self.batches)
                    if any(ev.values()):
                        self.events.append({"batch": self.batches, **ev})
            if self.brake is not None:
                self._since_tick.append(np.asarray(rep.free_converged, bool))
                if self.batches % self.homeostasis_every == 0:
                    conv = np.concatenate(self._since_tick)
                    self._since_tick = []
                    if self.brake.stalled(conv):
                        # the contraction at stalled free states (as the trainer's own stall check):
                        # the global norm of W overstates it for the hard sigmoid, whose clipped units
                        # pass nothing
                        stuck = rep.free_rates[~np.asarray(rep.free_converged, bool)][:4]
                        act = self.brake.check(tissue, when=self.batches, reason="scheduled",
                                               states=stuck if len(stuck) else rep.free_rates[:4])
                        if act is not None:
                            self.events.append({"batch": self.batches, "brake": act["scale"]})
            loss += rep.loss * len(idx)
            correct += rep.correct
            if bar is not None:
                bar.update(len(idx))
            if callback is not None:
                callback(b + 1, n_batches)
        if bar is not None:
            bar.close()
        return {"loss": loss / len(x), "accuracy": correct / len(x), "seconds": time.perf_counter() - t0}
