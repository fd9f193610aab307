"""Per-sample measures of a settling trajectory, computed from what a run store holds.

- :func:`settling_time`: steps until the largest speed ``max_i |ds_i/dt|`` first falls below ``tol``
  (and stays there);
- :func:`distance_from_output`: per voxel, the lattice (Chebyshev) distance to the output region;
- :func:`nudge_profile` / :func:`nudge_depth`: how far from the output region the nudge
  (nudged minus free rates) reaches, from the mean ``|nudge|`` at each distance;
- :func:`at_rest_fraction`: the share of living free units whose speed is below ``tol``.

All take plain arrays (or xarray objects, through ``.values``) so they apply to a stored
trajectory as well as to states in memory.
"""

from __future__ import annotations

import numpy as np

__all__ = ["at_rest_fraction", "distance_from_output", "nudge_depth", "nudge_profile", "settling_time"]

OUTPUT_ROLE = 2   # tissue.core.OUTPUT
INPUT_ROLE = 1


def _values(a) -> np.ndarray:
    return np.asarray(getattr(a, "values", a))


def distance_from_output(role) -> np.ndarray:
    """Chebyshev distance in voxels of every voxel to the nearest output voxel.

    Parameters
    ----------
    role : int array (nx, ny, nz)
        Voxel roles (0 hidden, 1 input, 2 output), e.g. ``ds.role``.

    Returns
    -------
    int array (nx, ny, nz)
        0 on the output region; all zeros when there is no output voxel.
    """
    from scipy.ndimage import distance_transform_cdt

    role = _values(role)
    if role.ndim != 3:
        raise ValueError(f"role must be a 3D (x, y, z) grid, got shape {role.shape}")
    out = role == OUTPUT_ROLE
    if not out.any():
        return np.zeros(role.shape, dtype=np.int64)
    return distance_transform_cdt(~out, metric="chessboard").astype(np.int64)


def settling_time(speed, tol: float) -> np.ndarray:
    """Steps (frames) until the largest speed falls below ``tol`` for good.

    Parameters
    ----------
    speed : array (time, ...)
        ``max_i |ds_i/dt|`` per recorded frame (any trailing dims, e.g. trial).
    tol : float
        The convergence threshold.

    Returns
    -------
    int array (...)
        The first frame index from which every later frame is below ``tol``;
        ``len(speed)`` when the last frame is still above it.
    """
    sp = _values(speed)
    below = sp < tol
    # the last frame above tol, per trailing index; settled from the one after it
    above = ~below
    n = sp.shape[0]
    last_above = np.where(above.any(axis=0), n - 1 - np.argmax(above[::-1], axis=0), -1)
    return (last_above + 1).astype(np.int64)


def nudge_profile(nudge, role, alive=None) -> np.ndarray:
    """Mean ``|nudge|`` over the living free voxels at each distance from the output region.

    Parameters
    ----------
    nudge : array (..., nx, ny, nz)
        Nudged minus free rates (e.g. ``ds.nudge.isel(time=-1)`` with dims ``(trial, x, y, z)``).
    role, alive : arrays (nx, ny, nz)
        Voxel roles and the living mask (default: all alive). Input voxels are clamped and excluded.

    Returns
    -------
    array (..., dmax + 1)
        Entry ``d`` is the mean ``|nudge|`` of the voxels at distance ``d`` (NaN where there are none).
    """
    nudge = np.abs(_values(nudge))
    role = _values(role)
    dist = distance_from_output(role)
    keep = role != INPUT_ROLE
    if alive is not None:
        keep &= _values(alive).astype(bool)
    dmax = int(dist.max())
    lead = nudge.shape[:-3]
    flat = nudge.reshape(lead + (-1,))
    out = np.full(lead + (dmax + 1,), np.nan)
    for d in range(dmax + 1):
        sel = (dist == d) & keep
        if sel.any():
            out[..., d] = flat[..., sel.reshape(-1)].mean(axis=-1)
    return out


def nudge_depth(nudge, role, alive=None, threshold: float = 0.05) -> np.ndarray:
    """How far from the output region the nudge stays strong: the largest distance ``d`` such that
    the mean ``|nudge|`` at every distance up to ``d`` is at least ``threshold`` times its value on
    the output region.

    The threshold is relative, so the depth does not depend on the nudge strength ``beta`` in the
    linear regime (small ``beta``), only on how the tissue carries the signal.

    Returns
    -------
    int array (...)
        Per leading index (e.g. per trial); -1 when there is no nudge on the output region.
    """
    prof = nudge_profile(nudge, role, alive)
    ref = prof[..., :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        strong = prof >= threshold * ref
    strong &= ref > 0
    strong |= np.isnan(prof) & (ref > 0)    # distances with no free voxel do not break the chain
    chain = np.cumprod(strong, axis=-1).astype(bool)          # the leading run of strong distances
    d = np.arange(prof.shape[-1])
    reached = np.where(chain & np.isfinite(prof), d, -1)      # only distances that hold free voxels
    return reached.max(axis=-1).astype(np.int64)


def at_rest_fraction(velocity, role, alive=None, tol: float = 1e-3) -> np.ndarray:
    """Share of the living free (non-input) voxels whose speed ``|ds/dt|`` is below ``tol``.

    Parameters
    ----------
    velocity : array (..., nx, ny, nz)
    role, alive : arrays (nx, ny, nz)

    Returns
    -------
    array (...)
    """
    v = np.abs(_values(velocity))
    keep = _values(role) != INPUT_ROLE
    if alive is not None:
        keep &= _values(alive).astype(bool)
    lead = v.shape[:-3]
    flat = v.reshape(lead + (-1,))[..., keep.reshape(-1)]
    return (flat < tol).mean(axis=-1)
