"""Homeostasis: "Lipschitz braking" keeps the free dynamics contracting.

The free dynamics ``ds/dt = -s + rho'(s) (W rho(s) + b)`` over the free units
is a contraction (one fixed point, reached geometrically) when the gain of the
recurrent map ``s -> rho(W rho(s) + b)`` stays below one:

    L = max|rho'| * ||W_FF||_2 < 1,

with ``W_FF`` the couplings among free units. ``W`` is symmetric, so its
spectral norm is its largest absolute eigenvalue, estimated here by power
iteration on the sparse table (a few dozen matrix-vector products, no matrix
is formed). Learning can push ``L`` past one: settling then slows, stalls or
(for unbounded activations) diverges. The brake rescales ``W`` by
``target / L`` when that happens, which keeps the direction of every weight
and the sign of every synapse, and records what it did.

Euler steps of size ``dt`` are stable when ``dt < 2 / (1 + L)``; the brake
keeps that too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tissue import INPUT

MAX_GAIN = {"hard_sigmoid": 1.0, "sigmoid": 0.25, "tanh": 1.0, "linear": 1.0}


def spectral_norm(tissue, iters: int = 100, rtol: float = 1e-4, seed: int = 0, units=None) -> float:
    """Largest ``|eigenvalue|`` of the symmetric couplings among free living units
    (or among ``units``), by power iteration on ``W_FF^2`` so that the sign of the
    top eigenvalue does not matter."""
    free = np.flatnonzero(tissue.alive & (tissue.role != INPUT)) if units is None else np.asarray(units)
    if len(free) == 0:
        return 0.0
    W = tissue.to_scipy().astype(np.float64).tocsr()[free][:, free]
    if W.nnz == 0:
        return 0.0
    v = np.random.default_rng(seed).standard_normal(len(free))
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(iters):
        u = W @ (W @ v)
        nu = np.linalg.norm(u)
        if nu == 0:
            return 0.0
        new = np.sqrt(nu)
        v = u / nu
        if abs(new - lam) <= rtol * new:
            lam = new
            break
        lam = new
    return float(lam)


def contraction(tissue, states=None, **kw) -> float:
    """``L = max|rho'| * ||W_FF||_2`` (see the module doc).

    With ``states`` ``(B, N)`` and the hard sigmoid, the local contraction at
    those states instead: the couplings among the units strictly inside (0, 1)
    (clipped units pass no signal), the largest over the states.
    """
    if states is None or tissue.activation != "hard_sigmoid":
        return MAX_GAIN[tissue.activation] * spectral_norm(tissue, **kw)
    free = tissue.alive & (tissue.role != INPUT)
    return max(spectral_norm(tissue, units=np.flatnonzero(free & (s > 0) & (s < 1)), **kw)
               for s in np.atleast_2d(states))


@dataclass
class LipschitzBrake:
    """Rescale the weights when the free dynamics stop contracting.

    Parameters
    ----------
    target : float
        The contraction ``L`` to brake down to (< 1 guarantees one fixed point).
    trigger : float
        Brake only if the measured ``L`` exceeds this (>= target).
    enabled : bool
        Switch: a disabled brake measures nothing and never acts.
    stall_fraction : float
        A free phase counts as stalled when at least this fraction of its
        trials hit the step cap (a few slow trials are not a stall).

    ``actions`` lists every brake: ``{"when", "reason", "L_before", "L_after", "scale"}``.
    """

    target: float = 0.9
    trigger: float = 0.95
    enabled: bool = True
    stall_fraction: float = 0.25
    actions: list = field(default_factory=list)

    def __post_init__(self):
        if not 0 < self.target <= self.trigger:
            raise ValueError(f"brake target must be in (0, trigger={self.trigger}], got {self.target!r}")

    def stalled(self, converged) -> bool:
        """Did the velocity stop falling in too many trials?"""
        return self.enabled and float(np.mean(~np.asarray(converged, bool))) >= self.stall_fraction

    def check(self, tissue, when=None, reason: str = "check", states=None) -> dict | None:
        """Measure ``L`` (at ``states`` when given: see :func:`contraction`); rescale the
        weights if it exceeds ``trigger``. Returns the action or None."""
        if not self.enabled:
            return None
        lb = contraction(tissue, states)
        if lb <= self.trigger:
            return None
        scale = self.target / lb
        tissue.syn.w *= tissue.dtype.type(scale)
        action = {"when": when, "reason": reason, "L_before": lb, "L_after": lb * scale, "scale": scale}
        self.actions.append(action)
        return action
