"""Trace how a trained tissue settles: the free phase, then the nudged phase, recorded with the nudge.

``tissue trace LEARN.zarr --out TRACE.zarr`` loads the trained tissue of a learning run, settles a
few test samples free and then nudged towards their labels (EqProp's two phases, from the free fixed
point), and writes one run store with the three channels of the observatory (activation,
velocity, nudge) over time, plus per-sample measures (:mod:`tissue.metrics`):

- ``settling_steps (phase, trial)``: steps of the free and of the nudged phase;
- ``nudge_profile (trial, distance)`` and ``nudge_depth (trial)``: how far from the output region
  the nudge reaches at the nudged fixed point;
- ``at_rest (time, trial)``: the share of free units whose speed is below the tolerance.

``tissue view TRACE.zarr --rgb --out trace.gif`` then shows it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

__all__ = ["tissue_dataset", "trace_settling", "trace_store"]


def trace_settling(tissue, engine, inputs, target, beta: float, out, every: int = 1, labels=None,
                   threshold: float = 0.05, attrs: dict | None = None, progress: bool = False,
                   cost=None) -> xr.Dataset:
    """Record a free then a nudged settle of ``inputs`` into the run store ``out``.

    Parameters
    ----------
    tissue : Tissue
        With input and output regions.
    engine : dynamics.Langevin
        A zero-temperature engine (its ``tol`` defines "settled" and "at rest").
    inputs : array (B, n_inputs)
    target : array (B, n_outputs) or None
        Output targets of the nudged phase (None with ``cost``).
    beta : float
        Nudge strength of the second phase.
    out : path
        The run store (replaced).
    every : int
        Record every ``every`` steps.
    labels : array (B,), optional
        Stored as ``label (trial)``.
    threshold : float
        Relative threshold of :func:`tissue.metrics.nudge_depth`.
    cost : dynamics.costs.Cost, optional
        The cost of the nudged phase in place of the squared error to ``target``.

    Returns
    -------
    xarray.Dataset
        The store, opened.
    """
    from tissue import Recorder, open_run
    from tissue.metrics import at_rest_fraction, nudge_depth, nudge_profile

    out = Path(out)
    rec = Recorder(out, every=every, variables=("activation", "velocity", "energy", "nudge"),
                   attrs={"kind": "trace", "beta": float(beta), **(attrs or {})})
    free = engine.settle(tissue, inputs, record=rec, progress=progress)
    rec.reference = free.rates.T.copy()
    nudged = engine.settle(tissue, inputs, init=free.state, target=target, beta=beta, cost=cost, record=rec,
                           start_step=free.step_end, progress=progress)
    ds = open_run(out)
    role, alive = ds.role.values, ds.alive.values
    fin = ds.nudge.isel(time=-1).values
    prof = nudge_profile(fin, role, alive)
    depth = nudge_depth(fin, role, alive, threshold=threshold)
    rest = np.stack([at_rest_fraction(ds.velocity.isel(time=k).values, role, alive, tol=engine.tol)
                     for k in range(ds.sizes["time"])])
    ds.close()
    extra = xr.Dataset(
        {
            "settling_steps": (("phase", "trial"), np.stack([free.steps, nudged.steps]),
                               {"long_name": "settling steps (until max |ds/dt| < tol)"}),
            "converged": (("phase", "trial"), np.stack([free.converged, nudged.converged])),
            "nudge_profile": (("trial", "distance"), prof,
                              {"long_name": "mean |nudge| at each distance from the output region"}),
            "nudge_depth": ("trial", depth, {"long_name": "nudge depth (voxels)",
                                             "comment": f"largest distance with mean |nudge| >= "
                                                        f"{threshold:g} x its value on the output region"}),
            "at_rest": (("time", "trial"), rest, {"long_name": "share of free units with |ds/dt| < tol"}),
        },
        coords={"phase": np.array(["free", "nudged"], dtype=object), "distance": np.arange(prof.shape[-1])},
    )
    if labels is not None:
        extra["label"] = ("trial", np.asarray(labels, dtype=np.int64))
    kept = dict(zarr.open_group(out, mode="r").attrs)   # xarray's append replaces the root attributes
    extra.to_zarr(out, mode="a", zarr_format=3, consolidated=False)
    root = zarr.open_group(out, mode="a")
    root.attrs.update({**kept,"phase_starts": json.dumps([0, int(free.step_end)]), "nudge_threshold": threshold,
                       "tol": float(engine.tol)})
    return open_run(out)


def trace_store(learn_store, out, samples: int = 8, beta: float | None = None, every: int = 1,
                threshold: float = 0.05, progress: bool = False) -> xr.Dataset:
    """:func:`trace_settling` on the trained tissue of a learning run store.

    The first ``samples`` held-out samples of the run's own split are traced, with the run's
    beta (or ``beta``), targets and settling tolerance.
    """
    from tissue import load_tissue

    from .config import load_config
    from .learn import build_learning

    learn_store = Path(learn_store)
    if not (learn_store / "tissue").is_dir():
        raise ValueError(f"{learn_store} holds no trained tissue (is it a learning run store?)")
    attrs = dict(zarr.open_group(learn_store, mode="r").attrs)
    if attrs.get("kind") != "learning":
        raise ValueError(f"{learn_store} is not a learning run (kind = {attrs.get('kind')!r})")
    config = attrs["config"]
    cfg = load_config(json.loads(config) if isinstance(config, str) else config)
    setup = build_learning(cfg)
    tissue = load_tissue(learn_store)
    n = min(int(samples), len(setup.xte))
    labels = setup.task.y_test[:n]
    target, cost = setup.trainer.cost_for(tissue, labels)
    return trace_settling(tissue, setup.engine, setup.xte[:n], target, cfg.learning.beta if beta is None else beta,
                          out, every=every, labels=labels, threshold=threshold, progress=progress, cost=cost,
                          attrs={"source": str(learn_store), "name": f"trace of {cfg.name}"})


def tissue_dataset(tissue) -> xr.Dataset:
    """A tissue's own per-voxel fields as a Dataset with dims ``(x, y, z)``: ``bias``, ``degree``
    (synapses per neuron), ``mean_abs_weight``, ``role`` and ``alive`` (for :func:`tissue.view`)."""
    lat = tissue.lattice
    syn = tissue.syn
    w = np.abs(syn.w.astype(np.float64))
    w[syn.nbr < 0] = 0.0
    deg = syn.deg.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_w = np.where(deg > 0, w.sum(axis=1) / deg, 0.0)
    dims = ("x", "y", "z")
    return xr.Dataset(
        {"bias": (dims, lat.grid(tissue.bias.astype(np.float64))),
         "degree": (dims, lat.grid(deg)),
         "mean_abs_weight": (dims, lat.grid(mean_w)),
         "role": (dims, lat.grid(tissue.role)),
         "alive": (dims, lat.grid(tissue.alive.astype(np.uint8)))},
        coords={a: np.arange(n) for a, n in zip(dims, lat.shape)})
