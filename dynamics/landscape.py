"""The attractor landscape: fixed points from many random starts, their energies and basins.

:func:`find_fixed_points` settles ``starts`` random initial states by gradient
flow (``T = 0``, :class:`dynamics.Langevin`) with any clamped inputs held, then
groups the end states into distinct fixed points: two end states belong to the
same point when they differ by less than ``tol`` on every voxel (greedy, in
order of increasing energy, so the representative of a point is its
lowest-energy member). A point's *basin fraction* is the share of starts that
ended in it, an estimate of the volume of its basin of attraction under the
start distribution (binomial standard error ``sqrt(f (1 - f) / starts)``).

Each point is classified by the curvature of the energy there. For the hard
sigmoid the energy is quadratic inside the box, with Hessian ``I - W`` over the
free units strictly inside ``(0, 1)``; a point is a local minimum when that
block is positive definite (units at a bound are held there by the box).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .langevin import Langevin

__all__ = ["Landscape", "cluster_states", "find_fixed_points", "interior_min_eigenvalue"]


def cluster_states(states, energies, tol: float):
    """Greedy clustering of ``(B, N)`` states in order of increasing energy (ties: index).

    Returns ``(labels (B,), representatives (list of indices))``: state ``b`` joins the first
    representative within ``tol`` in max-norm, or becomes a new one.
    """
    s = np.asarray(states, dtype=np.float64)
    order = np.lexsort((np.arange(len(s)), np.asarray(energies, dtype=np.float64)))
    labels = np.full(len(s), -1, dtype=np.int64)
    reps: list[int] = []
    for b in order:
        for k, r in enumerate(reps):
            if np.max(np.abs(s[b] - s[r])) < tol:
                labels[b] = k
                break
        else:
            labels[b] = len(reps)
            reps.append(int(b))
    return labels, reps


def interior_min_eigenvalue(tissue, state, edge: float = 1e-6) -> float:
    """Smallest eigenvalue of the energy's Hessian ``I - W`` over the free living units strictly
    inside ``(edge, 1 - edge)`` at ``state`` (hard sigmoid); ``inf`` when no unit is inside."""
    if tissue.activation != "hard_sigmoid":
        raise ValueError("interior_min_eigenvalue is for the hard sigmoid (the energy is quadratic in the box)")
    s = np.asarray(state, dtype=np.float64)
    free = ~tissue.clamped
    inside = np.flatnonzero(free & (s > edge) & (s < 1 - edge))
    if inside.size == 0:
        return float("inf")
    W = tissue.to_scipy().tocsr()[inside][:, inside].astype(np.float64)
    if inside.size <= 2000:
        H = np.eye(inside.size) - W.toarray()
        return float(np.linalg.eigvalsh(H)[0])
    from scipy.sparse.linalg import eigsh

    return float(1.0 - eigsh(W, k=1, which="LA", return_eigenvectors=False)[0])


@dataclass
class Landscape:
    """Distinct fixed points found from random starts.

    Attributes
    ----------
    points : ndarray (M, N)   representative state of each point (lowest energy first)
    energy : ndarray (M,)
    basin : ndarray (M,)      share of starts that ended there
    count : ndarray (M,)
    min_curvature : ndarray (M,)  smallest Hessian eigenvalue over interior units (> 0: minimum)
    label : ndarray (S,)      point reached from each start (-1: did not converge)
    steps, converged : ndarray (S,)
    """

    points: np.ndarray
    energy: np.ndarray
    basin: np.ndarray
    count: np.ndarray
    min_curvature: np.ndarray
    label: np.ndarray
    steps: np.ndarray
    converged: np.ndarray
    lattice: object = field(repr=False, default=None)
    alive: np.ndarray | None = field(repr=False, default=None)
    attrs: dict = field(default_factory=dict)

    def to_dataset(self):
        """An ``xarray.Dataset``: ``state`` ``(point, x, y, z)``, ``energy``/``basin``/``count``/
        ``min_curvature`` ``(point)``, ``label``/``steps``/``converged`` ``(start)``."""
        import xarray as xr

        nx, ny, nz = self.lattice.shape
        m = len(self.energy)
        return xr.Dataset(
            {
                "state": (("point", "x", "y", "z"), self.points.reshape(m, nx, ny, nz),
                          {"long_name": "fixed-point state s", "units": "1"}),
                "energy": ("point", self.energy, {"long_name": "energy E at the fixed point", "units": "1"}),
                "basin": ("point", self.basin, {"long_name": "share of random starts ending there"}),
                "count": ("point", self.count, {"long_name": "starts ending there"}),
                "min_curvature": ("point", self.min_curvature,
                                  {"long_name": "smallest Hessian eigenvalue over interior free units"}),
                "label": ("start", self.label, {"long_name": "fixed point reached (-1: not converged)"}),
                "steps": ("start", self.steps, {"long_name": "settling steps"}),
                "converged": ("start", self.converged, {"long_name": "max |ds/dt| < tol reached"}),
                "alive": (("x", "y", "z"), self.alive.reshape(nx, ny, nz), {"long_name": "living neuron"}),
            },
            coords={"point": np.arange(m), "start": np.arange(len(self.label)), "x": np.arange(nx),
                    "y": np.arange(ny), "z": np.arange(nz)},
            attrs=dict(self.attrs),
        )


def find_fixed_points(tissue, starts: int = 64, inputs=None, tol: float = 1e-2, engine: Langevin | None = None,
                      batch: int = 64, seed: int = 0, curvature: bool = True, progress: bool = False) -> Landscape:
    """Settle ``starts`` uniform random states in ``[0, 1)^N`` at ``T = 0`` and group the ends.

    Parameters
    ----------
    tissue : Tissue
    starts : int
        Random initial states (``numpy.random.default_rng(seed)``).
    inputs : array (n_inputs,) or (starts, n_inputs), optional
        Values clamped on the input region for every start.
    tol : float
        Two end states closer than this in max-norm are one fixed point; it must
        be well above the engine's convergence tolerance.
    engine : Langevin, optional
        A ``T = 0`` engine (default ``dt = 0.2``, ``tol = 1e-6``, 20 000 steps).
    batch : int
        Starts settled together.
    curvature : bool
        Compute ``min_curvature`` (hard sigmoid only; NaN otherwise or when False).
    progress : bool
        A tqdm bar over batches.
    """
    eng = engine or Langevin(dt=0.2, temperature=0.0, tol=1e-6, max_steps=20_000)
    if eng.temperature != 0:
        raise ValueError(f"fixed points need a T = 0 engine, got temperature {eng.temperature}")
    if int(starts) < 1 or int(batch) < 1:
        raise ValueError(f"starts and batch must be integers >= 1, got {starts!r}, {batch!r}")
    if not tol > eng.tol * 10:
        raise ValueError(f"tol ({tol}) must be well above the engine's convergence tol ({eng.tol})")
    rng = np.random.default_rng(seed)
    s0 = rng.random((int(starts), tissue.n))
    n_in = len(tissue.region("input"))
    if inputs is not None:
        inputs = np.broadcast_to(np.atleast_2d(np.asarray(inputs, dtype=np.float64)), (int(starts), n_in))
    ends, steps, conv, energy = [], [], [], []
    rngs = range(0, int(starts), int(batch))
    if progress:
        from tqdm.auto import tqdm

        rngs = tqdm(rngs, desc="fixed points", unit="batch", leave=False)
    for lo in rngs:
        hi = min(lo + int(batch), int(starts))
        res = eng.settle(tissue, init=s0[lo:hi], inputs=None if inputs is None else inputs[lo:hi])
        ends.append(res.state.astype(np.float64))
        steps.append(res.steps)
        conv.append(res.converged)
        energy.append(res.energy)
    ends, steps, conv, energy = (np.concatenate(a) for a in (ends, steps, conv, energy))
    label = np.full(len(ends), -1, dtype=np.int64)
    ok = np.flatnonzero(conv)
    lab, reps = cluster_states(ends[ok], energy[ok], tol)
    label[ok] = lab
    reps = [ok[r] for r in reps]
    count = np.bincount(lab, minlength=len(reps)).astype(np.int64)
    points = ends[reps] if reps else np.zeros((0, tissue.n))
    curv = np.full(len(reps), np.nan)
    if curvature and tissue.activation == "hard_sigmoid":
        curv = np.array([interior_min_eigenvalue(tissue, p) for p in points])
    return Landscape(points=points, energy=energy[reps] if reps else np.zeros(0), basin=count / len(ends),
                     count=count, min_curvature=curv, label=label, steps=steps, converged=conv,
                     lattice=tissue.lattice, alive=tissue.alive.copy(),
                     attrs={"starts": int(starts), "tol": float(tol), "seed": int(seed),
                            "engine_dt": eng.dt, "engine_tol": eng.tol, "not_converged": int((~conv).sum())})
