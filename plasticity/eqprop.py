"""Equilibrium Propagation in the tissue: free and nudged settling, a local contrastive update.

For a tissue with energy ``E`` (see ``dynamics``) and the squared-error cost on
its output region ``C = 1/2 sum_o (rho(s_o) - y_o)^2``, the loss of an example
is ``L = C(s*)`` at the free fixed point ``s*`` (``beta = 0``). Scellier and
Bengio (2017) showed that

    dL/dtheta = lim_{beta -> 0} (1 / beta) [dF/dtheta(s_beta) - dF/dtheta(s_0)],
    F = E + beta C,

and since ``dE/dW_ij = -rho_i rho_j`` and ``dE/db_i = -rho_i`` the update of a
synapse needs only the rates of its two neurons in two equilibria:

    symmetric nudging (+beta and -beta):
        dW_ij = lr / (2 beta) [rho_i rho_j |_{+beta} - rho_i rho_j |_{-beta}]
        db_i  = lr / (2 beta) [rho_i |_{+beta} - rho_i |_{-beta}]
    one-sided (free and +beta): the same with the free phase in place of -beta
    and 1 / beta in place of 1 / (2 beta).

Nothing is unrolled and nothing is back-propagated: a training step keeps three
``(N, B)`` state arrays whatever the number of settling steps.
:mod:`plasticity.alignment` checks the update against the exact gradient.

The update is applied by :func:`apply_contrast`, a Numba kernel over the padded
table: slot ``(i, k)`` and its reverse slot compute the same product in the
same order, so the table stays exactly symmetric.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from dynamics import Langevin, SimulationDiverged
from dynamics.costs import COSTS, GroupCrossEntropy, GroupSquared
from tissue import HIDDEN, INPUT

from .readout import one_hot_targets, predict_groups

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "cosine_batch")


# ------------------------------------------------------------------ kernels
@njit(parallel=True, cache=True)
def contrast(nbr, deg, rp, rm, out):
    """``out[i, k] = mean_b (rp_i rp_j - rm_i rm_j)`` for ``j = nbr[i, k]`` (float64).

    ``rp``, ``rm``: ``(N, B)`` rates of the two phases. Empty slots get 0.
    """
    n, nb = rp.shape
    inv = 1.0 / nb
    for i in prange(n):
        for k in range(out.shape[1]):
            out[i, k] = 0.0
        for k in range(deg[i]):
            j = nbr[i, k]
            acc = 0.0
            for b in range(nb):
                acc += np.float64(rp[i, b]) * np.float64(rp[j, b]) - np.float64(rm[i, b]) * np.float64(rm[j, b])
            out[i, k] = acc * inv


@njit(parallel=True, cache=True)
def _adam(g, m, v, t, b1, b2, eps):
    """In-place Adam moments; returns nothing, ``g`` becomes the step direction."""
    n, kk = g.shape
    c1 = 1.0 - b1 ** t
    c2 = 1.0 - b2 ** t
    for i in prange(n):
        for k in range(kk):
            m[i, k] = b1 * m[i, k] + (1.0 - b1) * g[i, k]
            v[i, k] = b2 * v[i, k] + (1.0 - b2) * g[i, k] * g[i, k]
            g[i, k] = (m[i, k] / c1) / (math.sqrt(v[i, k] / c2) + eps)


# ------------------------------------------------------------------ helpers
def depth_from_output(tissue) -> np.ndarray:
    """Per voxel, the lattice (Chebyshev) distance in voxels to the nearest output voxel (float)."""
    from scipy.ndimage import distance_transform_cdt

    out = np.zeros(tissue.n, bool)
    out[tissue.region("output")] = True
    if not out.any():
        return np.zeros(tissue.n)
    grid = tissue.lattice.grid(~out)
    return distance_transform_cdt(grid, metric="chessboard").reshape(-1).astype(np.float64)


# ------------------------------------------------------------------ trainer
@dataclass
class StepReport:
    """What one training step measured (means over the mini-batch)."""

    loss: float                 # cost C at the free fixed point
    correct: int                # correctly classified examples (free phase)
    free_steps: np.ndarray      # (B,) settling steps of the free phase
    free_converged: np.ndarray  # (B,)
    nudged_steps: np.ndarray    # (B,) settling steps of the (+beta) nudged phase
    update_norm: float          # |dW| (Frobenius, over slots) before the learning rate
    free_rates: np.ndarray = field(repr=False, default=None)   # (B, N)


@dataclass
class EqProp:
    """Equilibrium Propagation trainer for a :class:`tissue.Tissue`.

    Parameters
    ----------
    beta : float
        Nudge strength (> 0).
    symmetric : bool
        Nudge with ``+beta`` and ``-beta`` (an O(beta^2) estimate of the
        gradient); otherwise free and ``+beta`` (O(beta)).
    lr : float
        Learning rate of the weights.
    lr_bias : float, optional
        Learning rate of the biases (default: ``lr``).
    depth_lr : float
        Per-depth factor: a synapse whose neurons lie ``d`` voxels (mean of
        the two) from the output region learns with ``lr * depth_lr ** d``.
        1 gives one learning rate; > 1 boosts the layers the nudge reaches weakly.
    optimizer : {"sgd", "adam"}
        ``adam`` gives every synapse its own adaptive step size (still local:
        it uses only the history of that synapse's own update).
    batch_size : int
        Examples settled together (the trial axis of the engine).
    persistent : bool
        Warm-start each example's free phase from its last free fixed point.
    nudged_steps : int, optional
        Step cap of the nudged phases (default: the engine's ``max_steps``).
    target_on, target_off : float
        Target rates of the correct and the other output groups.
    cost : {"squared", "group_squared", "cross_entropy"}
        ``squared``: every output voxel towards its target; ``group_squared``:
        each class's *mean* rate towards its target; ``cross_entropy``: softmax
        cross-entropy of the group means over ``tau`` (see :mod:`dynamics.costs`).
    tau : float
        Temperature of the cross-entropy read-out.
    jump_guard : float, optional
        Leave out of the update every example whose nudged state moved a rate
        by more than this from its free state: it fell into another attractor,
        and the contrast then measures the jump, not the gradient (the energy
        of a trained tissue has many minima). ``None`` keeps every example.
    schedule : {"constant", "cosine", "cosine_batch"}
        Learning-rate schedule over the epochs of :meth:`fit_epoch`: half a
        cosine from ``lr`` down to ``lr_final * lr``, read once per epoch
        (``cosine``: over E epochs the last epoch runs at the value of
        ``(E - 1) / E``, half the rate for E = 2) or at every mini-batch
        (``cosine_batch``: the first batch at ``lr``, the last exactly at
        ``lr_final * lr``).
    weight_clip : float, optional
        Clip weights to ``[-weight_clip, weight_clip]`` after each update.
    weight_decay : float
        Decoupled weight decay (AdamW style): before each update every weight
        shrinks by ``lr_t * weight_decay * w``, with ``lr_t`` the scheduled
        learning rate of the step. Local (each synapse sees only its own weight);
        it keeps weights small and units off the clip bounds. 0 switches it off.
    average : float in [0, 1)
        Polyak averaging: each synapse and bias also keeps a running average of
        its own value, ``a <- average * a + (1 - average) * w`` after every
        update (a slow, consolidated copy of a fast weight; local to the synapse).
        :meth:`averaged` gives the tissue with the averages in place of the
        weights. 0 switches it off.
    dropout : float in [0, 1)
        Damage-tolerance training: in every mini-batch a fresh random share
        ``dropout`` of the living hidden neurons is silenced, held at rest
        (rate 0) in the free and both nudged phases alike, as if killed for
        that batch (their synapses stay). A silenced neuron's synapses and
        bias get no update (its rate is 0 in both phases), so the step is the
        EqProp gradient of the thinned tissue. No rescaling: evaluation runs
        the whole tissue. Needs an activation with ``rho(0) = 0`` (not
        ``sigmoid``). The draw depends only on ``seed`` and the step count.
        0 switches it off.
    brake : LipschitzBrake, optional
        Homeostasis (:mod:`plasticity.homeostasis`): when a free phase stalls
        (a share ``brake.stall_fraction`` of its trials hits the step cap) or
        diverges, measure the contraction (at the stalled states) and rescale
        the weights if it is above the brake's trigger, then settle the
        mini-batch again.
    seed : int
        Seeds the shuffling of examples.
    """

    beta: float = 0.5
    symmetric: bool = True
    lr: float = 0.05
    lr_bias: float | None = None
    depth_lr: float = 1.0
    optimizer: str = "sgd"
    batch_size: int = 32
    persistent: bool = False
    nudged_steps: int | None = None
    target_on: float = 1.0
    target_off: float = 0.0
    cost: str = "squared"
    tau: float = 0.1
    schedule: str = "constant"
    lr_final: float = 0.05
    jump_guard: float | None = None
    weight_clip: float | None = None
    weight_decay: float = 0.0
    average: float = 0.0
    dropout: float = 0.0
    brake: object = None
    seed: int = 0

    def __post_init__(self):
        for key, val, ok, allowed in (
            ("beta", self.beta, lambda v: v > 0, "> 0"),
            ("lr", self.lr, lambda v: v >= 0, ">= 0"),
            ("depth_lr", self.depth_lr, lambda v: v > 0, "> 0"),
            ("weight_decay", self.weight_decay, lambda v: v >= 0, ">= 0"),
            ("average", self.average, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("dropout", self.dropout, lambda v: 0 <= v < 1, "in [0, 1)"),
        ):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and ok(val)):
                raise ValueError(f"EqProp {key} must be a finite number {allowed}, got {val!r}")
        if self.cost not in COSTS:
            raise ValueError(f"EqProp cost must be one of {COSTS}, got {self.cost!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"EqProp schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"EqProp optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"EqProp batch_size must be >= 1, got {self.batch_size!r}")
        self._state = {}
        self._neuron_lr = None      # per-neuron learning-rate factors (set_neuron_lr)

    # ----------------------------------------------------------- set-up
    def set_neuron_lr(self, factors) -> None:
        """Per-neuron learning-rate factors ``(N,)`` (None: all 1): neuron i's bias learns
        with ``factors[i]`` times the rate, and synapse ``i - j`` with ``max(factors[i],
        factors[j])`` times it (after Adam's normalisation, like ``depth_lr``). Used for the
        heightened plasticity of newborn neurons (:class:`plasticity.structural.StructuralPlasticity`
        ``birth_lr``)."""
        if factors is not None:
            factors = np.asarray(factors, dtype=np.float64)
            if factors.ndim != 1 or not np.all(np.isfinite(factors)) or np.any(factors < 0):
                raise ValueError("EqProp.set_neuron_lr: factors must be a 1-D array of finite numbers >= 0")
        self._neuron_lr = factors      # the cache key holds its checksum: a change rebuilds the scales

    def _prepare(self, tissue):
        """Per-slot and per-neuron learning-rate scales, cached per table *layout*.

        The key holds checksums of ``nbr`` and ``alive``, so a structural edit
        (a lesion, pruning, growth, a birth) is noticed even without
        :meth:`invalidate`. For the same tissue after such an edit the optimizer
        is kept: the per-slot Adam moments follow their synapses
        (:func:`plasticity.structural.remap_slots`; new synapses start at 0) and
        the per-neuron ones are reset where a neuron died or was born.
        """
        nbr = tissue.syn.nbr
        f = self._neuron_lr
        if f is not None and len(f) != tissue.n:
            raise ValueError(f"EqProp: {len(f)} per-neuron learning-rate factors for a tissue of {tissue.n} voxels")
        key = (id(tissue), tissue.syn.width, tissue.n, zlib.crc32(np.ascontiguousarray(nbr)),
               zlib.crc32(np.ascontiguousarray(tissue.alive)),
               None if f is None else zlib.crc32(np.ascontiguousarray(f)))
        st = self._state
        if st.get("key") == key:
            return
        depth = depth_from_output(tissue)
        j = np.where(nbr >= 0, nbr, 0)
        dsyn = 0.5 * (depth[:, None] + depth[j])
        slot_scale = np.where(nbr >= 0, self.depth_lr ** dsyn, 0.0)
        bias_scale = np.where(tissue.role == INPUT, 0.0, self.depth_lr ** depth) * tissue.alive
        if f is not None:
            slot_scale = slot_scale * np.maximum(f[:, None], f[j])
            bias_scale = bias_scale * f
        scales = {
            "key": key,
            "slot_scale": slot_scale,
            "bias_scale": bias_scale,
            "nbr": nbr.copy(), "alive": tissue.alive.copy(),
        }
        if st.get("key") is not None and st["key"][0] == id(tissue) and st["nbr"].shape[0] == tissue.n:
            from .structural import remap_slots

            for k in ("m", "v"):
                if st.get(k) is not None:
                    st[k] = remap_slots(st[k], st["nbr"], nbr)
            same = st["alive"] == tissue.alive
            for k in ("mb", "vb"):
                if st.get(k) is not None:
                    st[k] = np.where(same, st[k], 0.0)
            if st.get("ema_w") is not None:      # a new synapse's or neuron's average starts at its value
                e = remap_slots(st["ema_w"], st["nbr"], nbr, fill=np.nan)
                st["ema_w"] = np.where(np.isnan(e), tissue.syn.w, e)
                st["ema_b"] = np.where(same, st["ema_b"], tissue.bias)
            st.update(scales)
            return
        self._state = {**scales, "m": None, "v": None, "mb": None, "vb": None, "t": 0, "particles": {}}

    def invalidate(self) -> None:
        """Forget the cached scales: the next step rebuilds them from the tissue (call it after
        editing the synapse table or ``alive``; the optimizer state is kept, see :meth:`_prepare`)."""
        if self._state.get("key") is not None:
            self._state["key"] = self._state["key"][:1] + (None,)

    # ----------------------------------------------------------- state
    def export_state(self) -> dict:
        """The optimizer's arrays (``opt_*``), for a checkpoint."""
        st = self._state
        out = {"opt_t": np.array([st.get("t", 0), st.get("steps_done", 0)], dtype=np.int64)}
        for k in ("m", "v", "mb", "vb", "ema_w", "ema_b"):
            if st.get(k) is not None:
                out[f"opt_{k}"] = st[k]
        parts = st.get("particles") or {}
        if parts:
            keys = np.array(sorted(parts), dtype=np.int64)
            out["opt_particle_index"] = keys
            out["opt_particles"] = np.stack([parts[int(k)] for k in keys])
        return out

    def import_state(self, tissue, arrays: dict) -> None:
        """Restore what :meth:`export_state` gave (for the same tissue layout)."""
        self._prepare(tissue)
        st = self._state
        if "opt_t" in arrays:
            st["t"], st["steps_done"] = (int(v) for v in arrays["opt_t"])
        for k in ("m", "v", "mb", "vb", "ema_w", "ema_b"):
            if f"opt_{k}" in arrays:
                st[k] = np.array(arrays[f"opt_{k}"])
        if "opt_particles" in arrays:
            st["particles"] = {int(k): np.array(p) for k, p in zip(arrays["opt_particle_index"],
                                                                    arrays["opt_particles"])}

    # ----------------------------------------------------------- one step
    def cost_for(self, tissue, y, target=None):
        """``(target, cost)`` for :meth:`dynamics.Langevin.settle` for labels ``y``; ``target``
        (``(B, n_outputs)``, squared cost only) replaces the one-hot class targets."""
        if target is not None:
            if self.cost != "squared":
                raise ValueError(f"explicit targets need cost='squared', not {self.cost!r}")
            target = np.atleast_2d(np.asarray(target, dtype=np.float64))
            n_out = len(tissue.region("output"))
            if target.shape != (len(np.atleast_1d(y)), n_out):
                raise ValueError(f"target must have shape ({len(np.atleast_1d(y))}, {n_out}), got {target.shape}")
            return target, None
        target = one_hot_targets(y, tissue, self.target_on, self.target_off)
        if self.cost == "squared":
            return target, None
        out = tissue.region("output")
        g = tissue.group[out]
        n = int(tissue.group.max()) + 1
        if self.cost == "group_squared":
            return None, GroupSquared(g, y, n, self.target_on, self.target_off)
        return None, GroupCrossEntropy(g, y, n, self.tau)

    def phases(self, tissue, engine: Langevin, x, y, init=None, target=None):
        """Settle free and nudged: returns ``(free, plus, minus)`` SettleResults
        (``minus`` is the free result again when one-sided); ``target`` as :meth:`cost_for`."""
        target, cost = self.cost_for(tissue, y, target)
        free = engine.settle(tissue, inputs=x, init=init, target=target, beta=0.0, cost=cost)
        steps = self.nudged_steps
        plus = engine.settle(tissue, inputs=x, init=free.state, target=target, beta=self.beta, steps=steps,
                             cost=cost)
        if self.symmetric:
            minus = engine.settle(tissue, inputs=x, init=free.state, target=target, beta=-self.beta, steps=steps,
                                  cost=cost)
        else:
            minus = free
        return free, plus, minus

    def _braked_phases(self, tissue, engine, x, y, init, target=None):
        brake = self.brake
        when = self._state["steps_done"]
        for attempt in range(3):
            try:
                free, plus, minus = self.phases(tissue, engine, x, y, init=init, target=target)
            except SimulationDiverged:
                if brake is None or brake.check(tissue, when=when, reason="diverged") is None:
                    raise
                continue
            if brake is not None and brake.stalled(free.converged):
                stuck = free.state[~free.converged][:4]
                if brake.check(tissue, when=when, reason="stalled", states=stuck) is not None:
                    continue
            return free, plus, minus
        return self.phases(tissue, engine, x, y, init=init, target=target)

    def silenced(self, tissue, step: int) -> np.ndarray:
        """Indices of the hidden neurons silenced in training step ``step`` (see ``dropout``):
        ``round(dropout * n)`` of the ``n`` living hidden neurons, drawn from ``(seed, step)``."""
        if not self.dropout:
            return np.zeros(0, np.int64)
        if tissue.activation == "sigmoid":
            raise ValueError("EqProp dropout silences neurons at rest, which needs rho(0) = 0; the "
                             "activation 'sigmoid' has rho(0) = 0.5 (use hard_sigmoid, tanh or linear)")
        hidden = np.flatnonzero((tissue.role == HIDDEN) & tissue.alive)
        k = int(round(self.dropout * len(hidden)))
        rng = np.random.default_rng([self.seed, 0xD50, step])
        return np.sort(rng.choice(hidden, size=k, replace=False))

    def kept(self, free, plus, minus) -> np.ndarray:
        """Examples whose nudged states stayed near their free state (see ``jump_guard``)."""
        if self.jump_guard is None:
            return np.ones(len(free.rates), bool)
        jump = np.maximum(np.abs(plus.rates - free.rates).max(axis=1), np.abs(minus.rates - free.rates).max(axis=1))
        return jump <= self.jump_guard

    def gradient(self, tissue, free, plus, minus):
        """EqProp estimate of ``-dL/dW`` per slot ``(N, K)`` and ``-dL/db`` ``(N,)``
        (means over the kept examples of the batch) from the phases' rates."""
        keep = self.kept(free, plus, minus)
        if not keep.any():
            return np.zeros(tissue.syn.w.shape), np.zeros(tissue.n)
        rp = np.ascontiguousarray(plus.rates[keep].T)
        rm = np.ascontiguousarray(minus.rates[keep].T)
        scale = 1.0 / (2.0 * self.beta) if self.symmetric else 1.0 / self.beta
        g = np.empty(tissue.syn.w.shape, dtype=np.float64)
        contrast(tissue.syn.nbr, tissue.syn.deg, rp, rm, g)
        g *= scale
        gb = (plus.rates[keep].astype(np.float64) - minus.rates[keep].astype(np.float64)).mean(axis=0) * scale
        free_mask = (tissue.role != INPUT) & tissue.alive
        return g, np.where(free_mask, gb, 0.0)

    def apply(self, tissue, g, gb) -> None:
        """Move the weights and biases along ``g`` / ``gb`` (ascent on ``-L``)."""
        st = self._state
        if self.optimizer == "adam":
            if st["m"] is None or st["m"].shape != g.shape:
                st["m"], st["v"] = np.zeros_like(g), np.zeros_like(g)
                st["mb"], st["vb"] = np.zeros_like(gb), np.zeros_like(gb)
            st["t"] += 1
            _adam(g, st["m"], st["v"], st["t"], 0.9, 0.999, 1e-8)
            gb2 = gb[:, None].copy()
            mb, vb = st["mb"][:, None].copy(), st["vb"][:, None].copy()
            _adam(gb2, mb, vb, st["t"], 0.9, 0.999, 1e-8)
            st["mb"], st["vb"], gb = mb[:, 0], vb[:, 0], gb2[:, 0]
        # per-depth factors scale the step (after Adam, whose normalisation would cancel them)
        g = g * st["slot_scale"]
        gb = gb * st["bias_scale"]
        scale = st.get("lr_scale", 1.0)
        lr_b = scale * (self.lr if self.lr_bias is None else self.lr_bias)
        w = tissue.syn.w
        if self.weight_decay:
            w *= w.dtype.type(1.0 - scale * self.lr * self.weight_decay)   # symmetric: w_ij and w_ji alike
        w += (scale * self.lr * g).astype(w.dtype)   # empty slots: g = 0 and slot_scale = 0
        if self.weight_clip is not None:
            np.clip(w, -self.weight_clip, self.weight_clip, out=w)
        tissue.bias += (lr_b * gb).astype(tissue.bias.dtype)
        if self.average:
            a = self.average
            if st.get("ema_w") is None or st["ema_w"].shape != w.shape:
                st["ema_w"], st["ema_b"] = w.astype(np.float64), tissue.bias.astype(np.float64)
            else:
                st["ema_w"] = a * st["ema_w"] + (1 - a) * w
                st["ema_b"] = a * st["ema_b"] + (1 - a) * tissue.bias

    def averaged(self, tissue):
        """A copy of ``tissue`` with the running averages of :attr:`average` in place of its
        weights and biases (``tissue`` itself when nothing is averaged yet)."""
        st = self._state
        if not self.average or st.get("ema_w") is None:
            return tissue
        self._prepare(tissue)           # the averages follow any edit of the table
        t = tissue.copy()
        t.syn.w[...] = st["ema_w"].astype(t.syn.w.dtype)
        t.bias[...] = np.where(t.alive, st["ema_b"], t.bias).astype(t.bias.dtype)
        return t

    def train_step(self, tissue, engine: Langevin, x, y, index=None, target=None) -> StepReport:
        """One mini-batch: settle free, settle nudged, update. ``index`` (example ids)
        enables persistent particles; ``target`` (``(B, n_outputs)``, optional) nudges the
        output towards these rates instead of the one-hot class targets (e.g. a teacher's
        output, or class-and-style codes); ``correct`` still counts the class of ``y``."""
        self._prepare(tissue)
        init = None
        parts = self._state["particles"]
        if self.persistent and index is not None and all(int(k) in parts for k in index):
            init = np.stack([parts[int(k)] for k in index])
        self._state["steps_done"] = self._state.get("steps_done", 0) + 1
        off = self.silenced(tissue, self._state["steps_done"])
        tissue.alive[off] = False      # held at rest (clamped at 0) for this batch's phases only
        try:
            free, plus, minus = self._braked_phases(tissue, engine, x, y, init, target)
        finally:
            tissue.alive[off] = True
        if self.persistent and index is not None:
            for k, s in zip(index, free.state):
                parts[int(k)] = s.copy()
        g, gb = self.gradient(tissue, free, plus, minus)
        self.apply(tissue, g, gb)
        pred = predict_groups(free.rates, tissue)
        return StepReport(loss=float(np.mean(free.cost)), correct=int((pred == np.asarray(y)).sum()),
                          free_steps=free.steps, free_converged=free.converged, nudged_steps=plus.steps,
                          update_norm=float(np.sqrt((g ** 2).sum())), free_rates=free.rates)

    # ----------------------------------------------------------- epochs
    def evaluate(self, tissue, engine: Langevin, x, y, batch_size: int | None = None):
        """Free-phase predictions: ``dict(accuracy, loss, pred, steps, converged)``."""
        bs = batch_size or max(self.batch_size, 64)
        preds, steps, conv, costs = [], [], [], []
        for lo in range(0, len(x), bs):
            xb, yb = x[lo:lo + bs], y[lo:lo + bs]
            target, cost = self.cost_for(tissue, yb)
            res = engine.settle(tissue, inputs=xb, target=target, cost=cost)
            preds.append(predict_groups(res.rates, tissue))
            steps.append(res.steps)
            conv.append(res.converged)
            costs.append(res.cost)
        pred = np.concatenate(preds)
        return {"accuracy": float(np.mean(pred == y)), "loss": float(np.mean(np.concatenate(costs))),
                "pred": pred, "steps": np.concatenate(steps), "converged": np.concatenate(conv)}

    def lr_scale(self, epoch: int, epochs: int | None, batch: int = 0, n_batches: int = 1) -> float:
        """The schedule's factor on the learning rates at mini-batch ``batch`` (of
        ``n_batches``) of ``epoch`` (of ``epochs``): 1 for ``constant``; half a cosine from
        1 down to ``lr_final``, at ``epoch / epochs`` for ``cosine`` (the same for every batch
        of an epoch) and at ``(epoch * n_batches + batch) / (epochs * n_batches - 1)`` for
        ``cosine_batch`` (1 at the first batch, ``lr_final`` at the last)."""
        if self.schedule == "constant" or not epochs:
            return 1.0
        if self.schedule == "cosine":
            p = epoch / epochs
        else:
            p = min(1.0, (epoch * n_batches + batch) / max(epochs * n_batches - 1, 1))
        return self.lr_final + (1 - self.lr_final) * 0.5 * (1 + math.cos(math.pi * p))

    def fit_epoch(self, tissue, engine: Langevin, x, y, epoch: int = 0, progress: bool = False,
                  epochs: int | None = None, targets=None) -> dict:
        """One pass over ``(x, y)`` in a seeded random order (``epochs``: the length of
        the schedule, see :meth:`lr_scale`); ``targets`` (``(n, n_outputs)``, optional): each
        example's output target instead of its one-hot class (see :meth:`train_step`)."""
        self._prepare(tissue)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(x))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(x), desc=f"epoch {epoch}", unit="ex", leave=False)
        loss = correct = 0.0
        t0 = time.perf_counter()
        n_batches = -(-len(x) // self.batch_size)
        for b, lo in enumerate(range(0, len(x), self.batch_size)):
            idx = order[lo:lo + self.batch_size]
            self._state["lr_scale"] = self.lr_scale(epoch, epochs, b, n_batches)
            rep = self.train_step(tissue, engine, x[idx], y[idx], index=idx,
                                  target=None if targets is None else targets[idx])
            loss += rep.loss * len(idx)
            correct += rep.correct
            if bar is not None:
                bar.update(len(idx))
                bar.set_postfix(loss=f"{loss / (lo + len(idx)):.3f}", acc=f"{correct / (lo + len(idx)):.3f}")
        if bar is not None:
            bar.close()
        return {"loss": loss / len(x), "accuracy": correct / len(x), "seconds": time.perf_counter() - t0}
