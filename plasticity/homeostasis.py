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


def spectral_norm(tissue, iters: int = 100, rtol: float = 1e-4, seed: int = 0) -> float:
    """Largest ``|eigenvalue|`` of the symmetric couplings among free living units
    (power iteration on ``W_FF^2`` so that the sign of the top eigenvalue does not matter)."""
    free = np.flatnonzero(tissue.alive & (tissue.role != INPUT))
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


def contraction(tissue, **kw) -> float:
    """``L = max|rho'| * ||W_FF||_2`` (see the module doc)."""
    return MAX_GAIN[tissue.activation] * spectral_norm(tissue, **kw)


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

    ``actions`` lists every brake: ``{"when", "reason", "L_before", "L_after", "scale"}``.
    """

    target: float = 0.9
    trigger: float = 0.95
    enabled: bool = True
    actions: list = field(default_factory=list)

    def __post_init__(self):
        if not 0 < self.target <= self.trigger:
            raise ValueError(f"brake target must be in (0, trigger={self.trigger}], got {self.target!r}")

    def check(self, tissue, when=None, reason: str = "check") -> dict | None:
        """Measure ``L``; rescale the weights if it exceeds ``trigger``. Returns the action or None."""
        if not self.enabled:
            return None
        lb = contraction(tissue)
        if lb <= self.trigger:
            return None
        scale = self.target / lb
        tissue.syn.w *= tissue.dtype.type(scale)
        action = {"when": when, "reason": reason, "L_before": lb, "L_after": lb * scale, "scale": scale}
        self.actions.append(action)
        return action
