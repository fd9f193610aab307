"""Costs on the output region for nudged settling, ``F = E + beta C``.

The settling kernel applies a nudge of the form ``-beta rho'(s_o) (rho_o - Y_o)``
to each output voxel ``o``, which is the force of the per-voxel squared error
``C = 1/2 sum_o (rho_o - y_o)^2`` when ``Y = y``. Any other cost ``C(rho_out)``
enters through the same door: before every step the engine sets
``Y_o = rho_o - dC/drho_o`` (:meth:`Cost.kernel_target`), so the kernel applies
exactly ``-beta rho'_o dC/drho_o``.

Group costs read the output region the way a prediction does, through the
mean rate of each class's group of voxels ``m_c = mean_{o in c} rho_o``:

- :class:`GroupSquared`: ``C = 1/2 sum_c (m_c - y_c)^2``;
- :class:`GroupCrossEntropy`: softmax cross-entropy of ``m / tau``,
  ``C = -log softmax(m / tau)_label``.

Arrays are ``(n_out, B)`` inside the engine (trial axis last) and ``(B, n_out)``
in :meth:`Cost.value`.
"""

from __future__ import annotations

import numpy as np

COSTS = ("squared", "group_squared", "cross_entropy")


class Cost:
    """A differentiable cost of the output rates, bound to a batch of targets."""

    def value(self, r_out) -> np.ndarray:
        """``C`` per trial from rates ``(B, n_out)``."""
        raise NotImplementedError

    def grad(self, r_out_nb) -> np.ndarray:
        """``dC/drho`` ``(n_out, B)`` from rates ``(n_out, B)``."""
        raise NotImplementedError

    def kernel_target(self, r_out_nb, out) -> None:
        """Write ``rho - dC/drho`` into ``out`` ``(n_out, B)`` (the kernel's ``Y``)."""
        out[...] = r_out_nb - self.grad(r_out_nb)


class _Groups(Cost):
    def __init__(self, group, labels, n_groups: int, on: float = 1.0, off: float = 0.0):
        self.group = np.asarray(group, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.n_groups = int(n_groups)
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= self.n_groups):
            raise ValueError(f"labels must lie in [0, {self.n_groups})")
        self.onehot = (self.group[:, None] == np.arange(self.n_groups)[None, :]).astype(np.float64)  # (n_out, G)
        self.count = self.onehot.sum(0).clip(min=1)
        self.y = np.where(np.arange(self.n_groups)[None, :] == self.labels[:, None], on, off)  # (B, G)

    def means(self, r_out) -> np.ndarray:
        """Group means ``(B, G)`` from rates ``(B, n_out)``."""
        return np.asarray(r_out, dtype=np.float64) @ self.onehot / self.count


class GroupSquared(_Groups):
    """``C = 1/2 sum_c (m_c - y_c)^2`` on the group means."""

    def value(self, r_out):
        return 0.5 * ((self.means(r_out) - self.y) ** 2).sum(axis=1)

    def grad(self, r_out_nb):
        m = self.means(np.asarray(r_out_nb).T)                    # (B, G)
        dm = (m - self.y) / self.count                            # dC/dm_c / n_c
        return (self.onehot @ dm.T).astype(r_out_nb.dtype)        # (n_out, B)


class GroupCrossEntropy(_Groups):
    """Softmax cross-entropy of the group means over a temperature ``tau``."""

    def __init__(self, group, labels, n_groups: int, tau: float = 0.1):
        super().__init__(group, labels, n_groups)
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau!r}")
        self.tau = float(tau)

    def _softmax(self, m):
        z = m / self.tau
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def value(self, r_out):
        m = self.means(r_out)
        z = m / self.tau
        zmax = z.max(axis=1, keepdims=True)
        lse = (zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)))[:, 0]
        return lse - z[np.arange(len(z)), self.labels]

    def grad(self, r_out_nb):
        m = self.means(np.asarray(r_out_nb).T)
        dm = (self._softmax(m) - self.y) / self.tau / self.count
        return (self.onehot @ dm.T).astype(r_out_nb.dtype)
