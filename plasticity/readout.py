"""Read-out of the output region: one group of voxels per class.

``tissue.set_output(region, groups, layout)`` gives every output voxel a
``group`` (its class). Targets and predictions are in
``tissue.region("output")`` order.
"""

from __future__ import annotations

import numpy as np


def _output_groups(tissue) -> tuple[np.ndarray, np.ndarray, int]:
    out = tissue.region("output")
    if len(out) == 0:
        raise ValueError("the tissue has no living output voxels (call tissue.set_output first)")
    g = tissue.group[out].astype(np.int64)
    n_groups = int(tissue.group.max()) + 1
    return out, g, n_groups


def one_hot_targets(y, tissue, on: float = 1.0, off: float = 0.0) -> np.ndarray:
    """Targets ``(n, n_outputs)`` in ``tissue.region("output")`` order: ``on`` on the
    voxels of group ``y[k]``, ``off`` elsewhere."""
    out, g, n_groups = _output_groups(tissue)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= n_groups):
        raise ValueError(f"classes must lie in [0, {n_groups}) (the tissue's output groups), "
                         f"got {y.min()}..{y.max()}")
    return np.where(g[None, :] == y[:, None], float(on), float(off))


def group_means(rates, tissue) -> np.ndarray:
    """Mean rate of each output group: ``(B, n_groups)`` from rates ``(B, N)``
    (``NaN`` for a group with no living voxel)."""
    out, g, n_groups = _output_groups(tissue)
    r = np.asarray(rates, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != tissue.n:
        raise ValueError(f"rates must have shape (B, {tissue.n}), got {r.shape}")
    onehot = (g[:, None] == np.arange(n_groups)[None, :]).astype(np.float64)   # (n_out, G)
    count = onehot.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (r[:, out] @ onehot) / count


def predict_groups(rates, tissue) -> np.ndarray:
    """The class of each trial: the output group with the highest mean rate
    (ties -> the lowest class; groups with no living voxel are never chosen).

    ``rates`` is ``(B, N)`` (e.g. ``SettleResult.rates``) or ``(N,)``.
    """
    r = np.asarray(rates, dtype=np.float64)
    single = r.ndim == 1
    m = group_means(r[None, :] if single else r, tissue)
    m = np.where(np.isnan(m), -np.inf, m)
    pred = np.argmax(m, axis=1).astype(np.int64)   # first maximum: ties go to the lowest class
    return pred[0] if single else pred


def style_targets(tissue, styles: int, on: float = 1.0, off: float = 0.0, sibling: float | None = None) -> np.ndarray:
    """Output targets (or dream clamps) ``(n_groups, styles, n_outputs)`` that code a class *and* a style.

    The voxels of each class's output group (in ``tissue.region("output")`` order) are
    dealt in turn to ``styles`` subsets; the target of ``(c, k)`` holds subset ``k`` of
    group ``c`` at ``on``, the rest of group ``c`` at ``sibling`` (default ``off``) and every
    other output voxel at ``off``. With ``styles = 1`` it is the one-hot class target. A
    classifier still reads the class as the group with the highest mean rate.
    """
    out = tissue.region("output")
    if len(out) == 0:
        raise ValueError("the tissue has no output region")
    styles = int(styles)
    g = tissue.group[out].astype(np.int64)
    n_groups = int(g.max()) + 1
    if styles < 1 or np.bincount(g, minlength=n_groups).min() < styles:
        raise ValueError(f"styles must be an integer in [1, {np.bincount(g, minlength=n_groups).min()}] "
                         f"(the smallest output group's voxels), got {styles!r}")
    rank = np.empty(len(out), dtype=np.int64)
    for c in range(n_groups):
        idx = np.flatnonzero(g == c)
        rank[idx] = np.arange(len(idx)) % styles
    Y = np.full((n_groups, styles, len(out)), float(off))
    for c in range(n_groups):
        for k in range(styles):
            Y[c, k, g == c] = float(off if sibling is None else sibling)
            Y[c, k, (g == c) & (rank == k)] = float(on)
    return Y
