"""Continuous nudging: the output always carries a weak nudge; learning runs from a running contrast.

Two-phase EqProp (:class:`plasticity.EqProp`) switches the nudge off (free
phase) and on (nudged phases) and contrasts the two equilibria. Here the
output region is *never* free during training: it always carries a weak nudge
whose strength is modulated smoothly around ``beta``,

    beta_m = beta (1 + a sin phi_m),   phi_m = 2 pi m / K,   0 < a < 1,

one settle per sample ``m`` of the cycle (``K = cycle`` settles per mini-batch), each
starting from the previous equilibrium: a trajectory through weakly nudged
equilibria with no switch. Each synapse keeps a slow exponential average of
its co-activity ``cbar_ij`` (time constant ``tau`` settles) and learns from the
running contrast of the present co-activity against it, demodulated by the
nudge's own modulation (a lock-in detector):

    c_m    = mean over the batch of rho_i rho_j at the m-th equilibrium
    g_ij  += sin(phi_m) (c_m - cbar)        then  cbar += (c_m - cbar) / tau
    dW_ij  = lr * 2 / (K a beta) * g_ij     after the cycle (biases alike)

Why it is a gradient: ``c(beta_m) ~ c(beta) + a beta sin(phi_m) dc/dbeta``, and
over a whole cycle ``sum_m sin(phi_m) = 0`` and ``sum_m sin^2(phi_m) = K / 2``, so
``2 / (K a beta) sum_m sin(phi_m) (c_m - cbar) = dc/dbeta + O((a beta)^2)``, up
to a scale ``1 + O(1 / tau)`` (the average drifts towards the samples within a
cycle, along the same direction). By the EqProp identity ``dc/dbeta = -dL/dW``
at the equilibrium nudged by ``beta`` (Scellier and Bengio 2017 hold at any base
nudge), with ``L`` the cost there: it tends to the free cost's gradient as
``beta -> 0``, with an O(beta) bias (two-phase symmetric EqProp: O(beta^2)).

The average restarts at each presentation (``restart``, default): when a new
mini-batch arrives the input changes, and an average still holding the last
batch's co-activity would leak the input-driven difference into the contrast
(by ``sum_m sin(phi_m) (1 - 1/tau)^m``, ~ 2 / tau of it for K = 4: far larger
than the nudge's own ``a beta`` signal). The first settle of a cycle has
``sin(phi_0) = 0``: it sets the average and contributes nothing else.
``tests/test_continuous.py`` checks the update against
:func:`plasticity.alignment.exact_gradient`.

The trainer has the interface of :class:`plasticity.EqProp` (``train_step``,
``evaluate``, ``fit_epoch``, ``export_state``/``import_state``): inference
(``evaluate``) settles free, as there is no label to nudge towards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dynamics import SimulationDiverged
from tissue import INPUT

from .eqprop import EqProp, StepReport, contrast
from .readout import predict_groups


@dataclass
class ContinuousNudge(EqProp):
    """EqProp without a phase switch: a weak, smoothly modulated nudge and a running contrast.

    Parameters
    ----------
    beta : float
        The base nudge strength (> 0): the output always carries between
        ``beta (1 - a)`` and ``beta (1 + a)``.
    modulation : float
        ``a`` in (0, 1): the relative amplitude of the modulation.
    cycle : int
        ``K >= 3``: settles per cycle (per mini-batch).
    contrast_tau : float
        Time constant (in settles, >= 1) of the slow average of the co-activity.
    restart : bool
        Restart the average at the first settle of each presentation (see the
        module docstring; False keeps it running across mini-batches).
    **kwargs
        Every other :class:`plasticity.EqProp` parameter (lr, optimizer,
        batch_size, persistent, cost, schedule, brake, seed, ...);
        ``symmetric``, ``nudged_steps`` and ``jump_guard`` are not used.
    """

    modulation: float = 0.5
    cycle: int = 4
    contrast_tau: float = 8.0
    restart: bool = True

    def __post_init__(self):
        super().__post_init__()
        for key, val, ok, allowed in (
            ("modulation", self.modulation, lambda v: 0 < v < 1, "in (0, 1)"),
            ("contrast_tau", self.contrast_tau, lambda v: v >= 1, ">= 1"),
        ):
            if not (isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val) and ok(val)):
                raise ValueError(f"ContinuousNudge {key} must be a finite number {allowed}, got {val!r}")
        if isinstance(self.cycle, bool) or int(self.cycle) != self.cycle or self.cycle < 3:
            raise ValueError(f"ContinuousNudge cycle must be an integer >= 3, got {self.cycle!r}")

    # ----------------------------------------------------------- the cycle
    def nudges(self) -> tuple[np.ndarray, np.ndarray]:
        """``(betas, weights)``: the nudge of every settle of a cycle and its ``sin(phi_m)``."""
        phi = 2 * np.pi * np.arange(self.cycle) / self.cycle
        sin = np.sin(phi)
        sin[np.abs(sin) < 1e-12] = 0.0
        return self.beta * (1 + self.modulation * sin), sin

    def _cycle(self, tissue, engine, x, y, init):
        """Run one cycle; returns the settle results and the demodulated contrasts ``(g, gb)``."""
        st = self._state
        target, cost = self.cost_for(tissue, y)
        betas, sins = self.nudges()
        nbr, deg = tissue.syn.nbr, tissue.syn.deg
        if st.get("cbar") is not None and (st["cbar"].shape != nbr.shape or st.get("cbar_key") != st.get("key")):
            st["cbar"] = st["rbar"] = None          # the table was edited: start the averages again
        st["cbar_key"] = st.get("key")
        g = np.zeros(nbr.shape)
        gb = np.zeros(tissue.n)
        c = np.empty(nbr.shape)
        res = []
        s = init
        for m, (beta_m, w_m) in enumerate(zip(betas, sins)):
            r = engine.settle(tissue, inputs=x, init=s, target=target, beta=float(beta_m), cost=cost)
            res.append(r)
            s = r.state
            rates = np.ascontiguousarray(r.rates.T)
            contrast(nbr, deg, rates, np.zeros_like(rates), c)       # c_ij = mean_b r_i r_j
            rm = r.rates.astype(np.float64).mean(axis=0)
            if st.get("cbar") is None or (m == 0 and self.restart):
                # a new presentation (the input changed): the slow average starts from its first equilibrium
                st["cbar"], st["rbar"] = c.copy(), rm.copy()
            if w_m != 0.0:
                g += w_m * (c - st["cbar"])
                gb += w_m * (rm - st["rbar"])
            st["cbar"] += (c - st["cbar"]) / self.contrast_tau
            st["rbar"] += (rm - st["rbar"]) / self.contrast_tau
        scale = 2.0 / (self.cycle * self.modulation * self.beta)
        free_mask = (tissue.role != INPUT) & tissue.alive
        return res, g * scale, np.where(free_mask, gb * scale, 0.0)

    def estimate(self, tissue, engine, x, y, init=None):
        """The update direction ``(g, gb)`` (an estimate of ``-dL/dW`` per slot and
        ``-dL/db``) of one cycle on ``(x, y)``, and the cycle's settle results.
        Advances the slow averages; does not change the weights."""
        self._prepare(tissue)
        res, g, gb = self._cycle(tissue, engine, x, y, init)
        return g, gb, res

    def _braked_cycle(self, tissue, engine, x, y, init):
        brake = self.brake
        when = self._state["steps_done"]
        saved = {k: (None if self._state.get(k) is None else self._state[k].copy()) for k in ("cbar", "rbar")}
        for _ in range(3):
            try:
                out = self._cycle(tissue, engine, x, y, init)
            except SimulationDiverged:
                self._state.update(saved)
                if brake is None or brake.check(tissue, when=when, reason="diverged") is None:
                    raise
                continue
            first = out[0][0]
            if brake is not None and brake.stalled(first.converged):
                stuck = first.state[~first.converged][:4]
                if brake.check(tissue, when=when, reason="stalled", states=stuck) is not None:
                    self._state.update(saved)
                    continue
            return out
        return self._cycle(tissue, engine, x, y, init)

    def train_step(self, tissue, engine, x, y, index=None, target=None) -> StepReport:
        """One mini-batch: a cycle of weakly nudged settles, then the update.
        ``index`` (example ids) enables persistent states (each example continues
        from its last equilibrium). ``loss`` and ``correct`` are read at the first
        settle of the cycle (nudged by ``beta``: a weak nudge, not free). Explicit
        ``target`` rates are not supported here (the one-hot class targets only)."""
        if target is not None:
            raise ValueError("ContinuousNudge learns towards the one-hot class targets; explicit target rates "
                             "need the two-phase EqProp")
        self._prepare(tissue)
        init = None
        parts = self._state["particles"]
        if self.persistent and index is not None and all(int(k) in parts for k in index):
            init = np.stack([parts[int(k)] for k in index])
        self._state["steps_done"] = self._state.get("steps_done", 0) + 1
        res, g, gb = self._braked_cycle(tissue, engine, x, y, init)
        if self.persistent and index is not None:
            for k, s in zip(index, res[-1].state):
                parts[int(k)] = s.copy()
        norm = float(np.sqrt((g ** 2).sum()))
        self.apply(tissue, g, gb)
        first = res[0]
        pred = predict_groups(first.rates, tissue)
        return StepReport(loss=float(np.mean(first.cost)), correct=int((pred == np.asarray(y)).sum()),
                          free_steps=first.steps, free_converged=first.converged, nudged_steps=res[1].steps,
                          update_norm=norm, free_rates=first.rates)

    # ----------------------------------------------------------- state
    def export_state(self) -> dict:
        """The optimizer's arrays and the slow averages (``opt_cbar``, ``opt_rbar``)."""
        out = super().export_state()
        for k in ("cbar", "rbar"):
            if self._state.get(k) is not None:
                out[f"opt_{k}"] = self._state[k]
        return out

    def import_state(self, tissue, arrays: dict) -> None:
        super().import_state(tissue, arrays)
        for k in ("cbar", "rbar"):
            if f"opt_{k}" in arrays:
                self._state[k] = np.array(arrays[f"opt_{k}"], dtype=np.float64)
        self._state["cbar_key"] = self._state.get("key")   # the averages belong to this table
