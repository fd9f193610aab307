"""Limit-cycle studies behind ``tissue run`` (issue 7): entrainment, phase memory, learning with phases.

A config with ``[entrain]``, ``[phase_memory]`` or ``[xy_learning]`` (see
:mod:`studies.osc_config`) is run by :func:`run_oscillators` into a zarr store:

``[entrain]`` (``configs/oscillators-entrain.toml``)
    A periodic drive ``F sin(Omega t - theta)`` (phase model) or ``F exp(i Omega t)``
    (Stuart-Landau) on a region (default the z- face), one trial per drive
    amplitude ``F`` and detuning ``Omega - omega``. After a transient, the
    phase-locking value of every neuron against the drive phase ``Omega t``
    (:func:`dynamics.phase_measures.phase_locking_value`) and its mean frequency
    are measured. The map (:func:`locking_map`) holds, over ``(drive, detuning)``:
    ``plv`` (mean over living neurons), ``plv_region`` (driven voxels),
    ``locked_fraction``, ``frequency_error`` (mean frequency minus ``Omega``),
    ``order_parameter``, and the same map of one uncoupled oscillator
    (``single_plv``); over ``drive``: the widths of the locking regions
    (:func:`tongue_width`) of the tissue and of the single oscillator, beside
    Adler's ``2 F``. The trajectory (``amplitude``, ``phase`` over ``(time, trial,
    x, y, z)``) is stored every ``record_every`` steps, and ``final_phase`` relative
    to the drive. Pictures, next to the store: ``<store>_tongue.png`` (the map)
    and ``<store>_phase_map.png`` (a PyVista phase map, cyclic colormap).

``[phase_memory]`` (``configs/oscillators-memory.toml``)
    For ``P = 1 .. max_patterns`` random phase patterns stored by the complex
    outer-product rule (:mod:`plasticity.phase`), retrieval from cues with
    ``cue_noise`` of their phases re-drawn: overlaps over ``load`` and the
    capacity point (largest ``P`` whose mean overlap is at least ``threshold``);
    the trajectory of the retrievals at that load; ``<store>_memory.png`` and
    ``<store>_phase_map.png``.

``[xy_learning]`` (``configs/oscillators-xy.toml``)
    Equilibrium Propagation on the XY energy (:mod:`plasticity.xy_eqprop`) with
    phase-encoded images clamped on the z- face and the z+ face as output:
    accuracy and loss per ``epoch``, the cosine between the EqProp update and
    the exact gradient over ``beta_check``, the trained couplings (``tissue/``)
    and field; ``<store>_learning.png``, ``<store>_phase_map.png``. Checkpointed
    every epoch (``--resume`` continues from the last finished one).

The entrainment and memory runs are short; an interrupted one starts again on ``--resume``.
"""

from __future__ import annotations

import math
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import zarr

from dynamics import phase_measures as pm
from dynamics.oscillators import Drive, Integrator, Kuramoto, Network, StuartLandau
from tissue import Tissue, load_tissue, save_tissue
from tissue.records import _jsonable, package_version
from tissue.wiring import Synapses

__all__ = ["build_oscillator_tissue", "locking_map", "memory_capacity", "run_oscillators", "tongue_width",
           "xy_setup"]

# tags of the seed streams derived from the config seed
_OMEGA, _PATTERNS, _CUES, _NOISE, _FIELD, _INIT = 21, 22, 23, 24, 25, 26


def _seed(cfg, tag):
    from .run import derived_seed

    return derived_seed(cfg.seed, tag)


def build_oscillator_tissue(cfg) -> Tissue:
    """The tissue of ``[tissue]`` (seeded by ``seed``), in float64."""
    tc = cfg.tissue
    return Tissue.cube(tc.shape, stencil=tc.stencil or 26, radius=tc.radius, small_world=tc.small_world,
                       init=tc.init, weight_scale=tc.weight_scale, bias=tc.bias, activation=tc.activation,
                       dtype="float64", seed=cfg.seed)


# ====================================================================== entrainment
def tongue_width(plv, detuning, threshold: float = 0.9) -> float:
    """Width of the locking interval in one row of a locking map.

    Starting from the detuning of the largest ``plv``, the interval extends to
    both sides while ``plv >= threshold``; each end is placed where the linear
    interpolation between the last point inside and the first outside crosses
    ``threshold`` (at the grid edge when the interval reaches it: then the width
    is a lower bound). 0 when no point reaches ``threshold``.
    """
    p = np.asarray(plv, dtype=float)
    d = np.asarray(detuning, dtype=float)
    if p.shape != d.shape or p.ndim != 1:
        raise ValueError("plv and detuning must be 1D arrays of one length")
    if not np.all(np.diff(d) > 0):
        raise ValueError("detuning must increase")
    k = int(np.argmax(p))
    if p[k] < threshold:
        return 0.0
    lo = k
    while lo > 0 and p[lo - 1] >= threshold:
        lo -= 1
    hi = k
    while hi < len(p) - 1 and p[hi + 1] >= threshold:
        hi += 1

    def cross(i_in, i_out):
        f = (p[i_in] - threshold) / (p[i_in] - p[i_out])
        return d[i_in] + f * (d[i_out] - d[i_in])

    left = d[0] if lo == 0 else cross(lo, lo - 1)
    right = d[-1] if hi == len(p) - 1 else cross(hi, hi + 1)
    return float(right - left)


def locking_map(network, drives, detunings, *, model: str = "kuramoto", omega=1.0, omega_ref: float = 1.0,
                coupling: float = 1.0, mu: float = 1.0, region=None, steps: int = 4000, dt: float = 0.05,
                transient: float = 0.5, sample_every: int = 5, record_every: int = 0, method: str = "auto",
                noise: float = 0.0, seed: int = 0, threshold: float = 0.9, freq_tol: float = 0.01, init=None,
                progress: bool = False):
    """Locking of an oscillator network to a periodic drive, over drive amplitude and detuning.

    Trial ``b = i * len(detunings) + j`` is driven with amplitude ``drives[i]`` on
    ``region`` (default every neuron) at ``Omega = omega_ref + detunings[j]``.
    After ``transient * steps`` steps, every ``sample_every`` steps, the phase of
    every neuron is compared with the drive phase ``Omega t``.

    Parameters
    ----------
    network : Network, Tissue or Synapses
    drives, detunings : 1D arrays
    model : {"kuramoto", "stuart_landau"}
    omega : float or (N,)
        Natural frequencies.
    omega_ref : float
        The drive frequency at zero detuning.
    coupling, mu : float
        ``K`` and the Stuart-Landau ``mu``.
    record_every : int
        Keep trajectory frames every so many steps (0: none; a multiple of ``sample_every``).
    threshold : float
        PLV above which a neuron counts as locked (``locked_fraction``).
    freq_tol : float
        A neuron is frequency-locked when its mean frequency is within ``freq_tol``
        of ``Omega`` (``frequency_locked_fraction``; ``frequency_tongue_width`` is the
        width where that fraction is at least ``threshold``).
    init : array (N,) or (B, N), optional
        Initial phases (Kuramoto) or ``z`` (Stuart-Landau); default: uniform
        phases from ``seed``.

    Returns
    -------
    (ds, frames) : ``xarray.Dataset`` of the map (see the module doc) and the
    trajectory frames (``OscResult``-like dict with ``step``, ``amplitude``,
    ``phase`` ``(T, B, N)`` float32; empty when ``record_every = 0``) plus the
    final phases (``"final"``, ``(B, N)``).
    """
    import xarray as xr

    net = Network.coerce(network)
    n = net.n
    drives = np.asarray(drives, dtype=float)
    detunings = np.asarray(detunings, dtype=float)
    nd, nq = len(drives), len(detunings)
    nb = nd * nq
    f_b = np.repeat(drives, nq)
    om_b = omega_ref + np.tile(detunings, nd)
    mask = np.ones(n, bool) if region is None else np.isin(np.arange(n), np.asarray(region))
    amp = np.where(mask[None, :], f_b[:, None], 0.0)
    drive = Drive(amplitude=amp, frequency=om_b, phase=0.0)
    if model == "kuramoto":
        mdl = Kuramoto(omega=omega, coupling=coupling, drive=drive)
    elif model == "stuart_landau":
        mdl = StuartLandau(mu=mu, omega=omega, coupling=coupling, drive=drive)
    else:
        raise ValueError(f"model must be 'kuramoto' or 'stuart_landau', got {model!r}")
    steps, sample_every, record_every = int(steps), int(sample_every), int(record_every)
    if record_every and record_every % sample_every:
        raise ValueError(f"record_every ({record_every}) must be a multiple of sample_every ({sample_every})")
    t0 = round(transient * steps)
    alive = net.alive
    acc = {"S": np.zeros((nb, n), complex), "prog": np.zeros((nb, n)), "prev": None, "count": 0, "r": 0.0,
           "t_first": None, "t_last": None}
    frames = {"step": [], "amplitude": [], "phase": []}

    def on_frame(step, t, a, p):
        if record_every and (step % record_every == 0 or step == steps):
            frames["step"].append(step)
            frames["amplitude"].append(a.astype(np.float32))
            frames["phase"].append(p.astype(np.float32))
        if step < t0:
            return
        if acc["prev"] is not None:
            acc["prog"] += pm.wrap(p - acc["prev"])
        else:
            acc["t_first"] = t
        acc["prev"] = p
        acc["t_last"] = t
        acc["S"] += np.exp(1j * (p - om_b[:, None] * t))
        acc["count"] += 1
        acc["r"] = acc["r"] + np.abs(pm.order_parameter(p, mask=alive))

    integ = Integrator(dt=dt, method=method, noise=noise, seed=seed)
    res = integ.run(mdl, net, steps, init=init, n_trials=nb, record_every=sample_every, on_frame=on_frame,
                    keep_frames=False, progress=progress)
    plv_n = np.abs(acc["S"]) / acc["count"]                       # (B, N)
    span = acc["t_last"] - acc["t_first"]
    freq_n = acc["prog"] / span if span > 0 else np.full((nb, n), np.nan)
    live = alive
    reg = mask & alive

    def grid(v):
        return np.asarray(v).reshape(nd, nq)

    dims = ("drive", "detuning")
    ds = xr.Dataset(
        {"plv": (dims, grid(plv_n[:, live].mean(1)), {"long_name": "phase-locking value to the drive, "
                                                       "mean over living neurons", "units": "1"}),
         "plv_region": (dims, grid(plv_n[:, reg].mean(1)), {"long_name": "phase-locking value of the driven "
                                                             "neurons", "units": "1"}),
         "locked_fraction": (dims, grid((plv_n[:, live] >= threshold).mean(1)),
                             {"long_name": f"fraction of living neurons with PLV >= {threshold}", "units": "1"}),
         "frequency_error": (dims, grid(freq_n[:, live].mean(1) - om_b),
                             {"long_name": "mean frequency of the living neurons minus the drive frequency",
                              "units": "rad / time"}),
         "frequency_locked_fraction": (dims, grid((np.abs(freq_n[:, live] - om_b[:, None]) < freq_tol).mean(1)),
                                       {"long_name": f"fraction of living neurons whose mean frequency is "
                                                     f"within {freq_tol} of the drive's", "units": "1"}),
         "order_parameter": (dims, grid(acc["r"] / acc["count"]),
                             {"long_name": "time-averaged Kuramoto order parameter r", "units": "1"}),
         "tongue_width": ("drive", np.array([tongue_width(row, detunings, threshold)
                                             for row in grid(plv_n[:, live].mean(1))]),
                          {"long_name": f"width in detuning of the region with mean PLV >= {threshold}",
                           "units": "rad / time"}),
         "frequency_tongue_width": ("drive", np.array([
             tongue_width(row, detunings, threshold)
             for row in grid((np.abs(freq_n[:, live] - om_b[:, None]) < freq_tol).mean(1))]),
             {"long_name": f"width in detuning of the region with frequency-locked fraction >= {threshold}",
              "units": "rad / time"})},
        coords={"drive": ("drive", drives, {"long_name": "drive amplitude F", "units": "1"}),
                "detuning": ("detuning", detunings, {"long_name": "drive frequency minus omega_ref",
                                                     "units": "rad / time"})},
        attrs={"threshold": float(threshold), "freq_tol": float(freq_tol), "omega_ref": float(omega_ref), "model": model,
               "measure_from_step": t0, "steps": steps, "dt": float(dt)})
    final = res.theta
    out = {"frames": frames, "final": final, "drive_phase_end": om_b * steps * dt, "trial_drive": f_b,
           "trial_detuning": om_b - omega_ref, "plv_neuron": plv_n}
    return ds, out


def _entrain(cfg, out: Path, progress: bool) -> tuple[dict, dict]:

    oc, ec = cfg.oscillators, cfg.entrain
    t = build_oscillator_tissue(cfg)
    region = ec.region.indices(t.lattice)
    net = Network.from_tissue(t)
    n = t.n
    rng = np.random.default_rng(_seed(cfg, _OMEGA))
    omega = oc.omega + oc.omega_spread * rng.standard_normal(n) if oc.omega_spread > 0 else oc.omega
    drives = ec.drive_max * np.arange(1, ec.drive_points + 1) / ec.drive_points
    detunings = np.linspace(-ec.detuning_max, ec.detuning_max, ec.detuning_points)
    common = {"model": oc.model, "omega_ref": oc.omega, "coupling": oc.coupling, "mu": oc.mu, "steps": ec.steps,
              "dt": oc.dt, "transient": ec.transient, "sample_every": ec.sample_every, "method": oc.method,
              "noise": oc.noise, "threshold": ec.threshold}
    ds, extra = locking_map(net, drives, detunings, omega=omega, region=region, record_every=ec.record_every,
                            seed=_seed(cfg, _NOISE), progress=progress, **common)
    one = Network.from_synapses(Synapses.from_edges(1, [], [], [], dtype=np.float64))
    single, _ = locking_map(one, drives, detunings, omega=oc.omega, seed=_seed(cfg, _NOISE), **common)
    ds["single_plv"] = single.plv.assign_attrs(long_name="phase-locking value of one uncoupled oscillator "
                                               "under the same drive")
    ds["single_tongue_width"] = single.tongue_width.assign_attrs(
        long_name="locking width (PLV) of one uncoupled oscillator")
    ds["single_frequency_tongue_width"] = single.frequency_tongue_width.assign_attrs(
        long_name="frequency-locking width of one uncoupled oscillator")
    adler = 2 * drives if oc.model == "kuramoto" else 2 * drives / math.sqrt(oc.mu)
    ds["adler_width"] = ("drive", adler, {"long_name": "Adler's locking width 2F of one phase oscillator "
                                          "(Stuart-Landau, weak drive: 2F / sqrt(mu))", "units": "rad / time"})
    lat = t.lattice
    nb = len(extra["final"])
    rel = pm.wrap(extra["final"] - extra["drive_phase_end"][:, None])
    ds["final_phase"] = (("trial", "x", "y", "z"), rel.reshape((nb,) + lat.shape),
                         {"long_name": "final phase minus the drive phase", "units": "rad"})
    ds = ds.assign_coords(trial_drive=("trial", extra["trial_drive"]),
                          trial_detuning=("trial", extra["trial_detuning"]))
    fr = extra["frames"]
    if fr["step"]:
        shape = (len(fr["step"]), nb) + lat.shape
        steps = np.asarray(fr["step"], dtype=np.int64)
        ds = ds.assign_coords(time=("time", steps * oc.dt, {"long_name": "model time step * dt"}),
                              step=("time", steps))
        ds["amplitude"] = (("time", "trial", "x", "y", "z"), np.stack(fr["amplitude"]).reshape(shape),
                           {"long_name": "oscillation amplitude |z|", "units": "1"})
        ds["phase"] = (("time", "trial", "x", "y", "z"), np.stack(fr["phase"]).reshape(shape),
                       {"long_name": "phase arg z, wrapped to (-pi, pi]", "units": "rad"})
    ds["alive"] = (("x", "y", "z"), lat.grid(t.alive).astype(np.uint8))
    ds["driven"] = (("x", "y", "z"), lat.grid(np.isin(np.arange(n), region)).astype(np.uint8),
                    {"long_name": "voxels receiving the drive"})
    ds = ds.assign_coords(x=np.arange(lat.shape[0]), y=np.arange(lat.shape[1]), z=np.arange(lat.shape[2]))
    ds.to_zarr(out, mode="w", consolidated=False)
    save_tissue(t, out)
    # pictures
    figs = {}
    tongue = plot_tongue(ds, _sibling(out, "tongue.png"))
    # the phase map: the strongest drive at the largest detuning the tissue still locks to (the lag
    # behind the drive then grows away from the driven face); zero detuning if none locks
    i_d = len(drives) - 1
    locked = np.flatnonzero(ds.plv.values[i_d] >= ec.threshold)
    j_q = int(locked[np.argmax(np.abs(detunings[locked]))]) if len(locked) else int(np.argmin(np.abs(detunings)))
    b = i_d * len(detunings) + j_q
    pmap = _phase_map(rel[b], t, _sibling(out, "phase_map.png"),
                      f"phase - drive phase, F={drives[i_d]:.2g}, detuning {detunings[j_q]:+.2g}")
    w = ds.tongue_width.values
    figs.update({"tongue_width_min_drive": float(w[0]), "tongue_width_max_drive": float(w[-1]),
                 "frequency_tongue_width_max_drive": float(ds.frequency_tongue_width.values[-1]),
                 "single_tongue_width_max_drive": float(ds.single_tongue_width.values[-1]),
                 "single_frequency_width_max_drive": float(ds.single_frequency_tongue_width.values[-1]),
                 "adler_width_max_drive": float(adler[-1]),
                 # wider with the drive, up to 5% of a grid step of noise (the tongue saturates once the
                 # drive tears the driven face away from the bulk)
                 "widening": bool(np.all(np.diff(w) >= -0.05 * abs(detunings[1] - detunings[0])) and w[-1] > w[0]),
                 "tongue_png": str(tongue), "phase_map_png": str(pmap)})
    widths = {f"{d:.3g}": float(x) for d, x in zip(drives, w)}
    return figs, {"tongue_widths": widths}


def plot_tongue(ds, path) -> Path:
    """The Arnold tongue: mean PLV over (detuning, drive), the locking contour of the tissue (white)
    and of one oscillator (dashed), and Adler's lines |detuning| = F."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    d, f = ds.detuning.values, ds.drive.values
    thr = float(ds.attrs.get("threshold", 0.9))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax = axes[0]
    im = ax.pcolormesh(d, f, ds.plv.values, shading="nearest", vmin=0, vmax=1, cmap="magma")
    fig.colorbar(im, ax=ax, label="phase-locking value (mean over neurons)")
    if len(f) > 1:
        ax.contour(d, f, ds.plv.values, levels=[thr], colors="white")
        ax.contour(d, f, ds.single_plv.values, levels=[thr], colors="cyan", linestyles="--")
    half = ds.adler_width.values / 2
    ax.plot(half, f, "w:", lw=1)
    ax.plot(-half, f, "w:", lw=1, label="Adler |detuning| = F")
    ax.set_xlim(d[0], d[-1])
    ax.set_xlabel("detuning  Omega - omega")
    ax.set_ylabel("drive amplitude F")
    ax.set_title("Arnold tongue (white: tissue, cyan: one oscillator)")
    ax.legend(loc="lower left", fontsize=8)
    ax = axes[1]
    ax.plot(f, ds.tongue_width.values, "o-", label="tissue")
    ax.plot(f, ds.frequency_tongue_width.values, "^-", label="tissue (frequency locking)")
    ax.plot(f, ds.single_tongue_width.values, "s--", label="one oscillator")
    ax.plot(f, ds.adler_width.values, "k:", label="Adler 2F")
    ax.set_xlabel("drive amplitude F")
    ax.set_ylabel(f"locking width (PLV >= {thr:g})")
    ax.legend()
    ax.set_title("tongue width vs drive")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _sibling(out: Path, name: str) -> Path:
    out = Path(out)
    return out.parent / f"{out.name.removesuffix('.zarr')}_{name}"


def _phase_map(values, tissue, path, title) -> Path:
    from tissue.view import orthogonal_slices_png

    grid = tissue.lattice.grid(np.asarray(values, dtype=float))
    return orthogonal_slices_png(grid, path, alive=tissue.lattice.grid(tissue.alive), cmap="twilight",
                                 clim=(-np.pi, np.pi), name="phase", title=title)


# ====================================================================== phase memory
def memory_capacity(tissue, loads, cue_noise: float = 0.2, trials_per_pattern: int = 4, steps: int = 1500,
                    dt: float = 0.05, gain: float = 1.0, noise: float = 0.0, method: str = "auto", seed: int = 0,
                    progress: bool = False):
    """Retrieval overlaps of phase memories at several loads.

    For each ``P`` in ``loads``: ``P`` random phase patterns (seeded by ``[seed, P]``),
    the complex outer-product coupling on ``tissue``'s synapses, cues with
    ``cue_noise`` of the phases re-drawn, retrieval by the phase gradient flow.

    Returns an ``xarray.Dataset`` over ``load``: ``overlap_mean``, ``overlap_min``,
    ``cue_overlap_mean``, ``alpha`` (``P`` / mean degree), ``crosstalk_max`` (largest
    overlap with a non-cued pattern).
    """
    import xarray as xr

    from plasticity.phase import (
        hebbian_phase_weights,
        phase_cues,
        phase_overlap,
        random_phase_patterns,
    )

    loads = [int(p) for p in loads]
    alive = tissue.alive
    rows = {k: [] for k in ("overlap_mean", "overlap_min", "cue_overlap_mean", "crosstalk_max")}
    it = loads
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(loads, desc="loads", unit="load")
    for p in it:
        rng = np.random.default_rng([seed, p])
        pats = random_phase_patterns(p, tissue.n, rng)
        c = hebbian_phase_weights(tissue.syn, pats, gain)
        cues, tgt = phase_cues(pats, cue_noise, trials_per_pattern, rng, alive)
        net = Network.from_tissue(tissue, weights=c)
        res = Integrator(dt=dt, method=method, noise=noise, seed=seed).run(
            Kuramoto(omega=0.0, coupling=1.0), net, steps, init=cues)
        m = phase_overlap(res.theta, pats, alive)
        b = np.arange(len(tgt))
        mt = m[b, tgt]
        rows["overlap_mean"].append(mt.mean())
        rows["overlap_min"].append(mt.min())
        rows["cue_overlap_mean"].append(phase_overlap(cues, pats, alive)[b, tgt].mean())
        other = m.copy()
        other[b, tgt] = -np.inf
        rows["crosstalk_max"].append(float(other.max()) if p > 1 else 0.0)
    deg = tissue.syn.degree[alive].mean()
    long = {"overlap_mean": "mean retrieval overlap with the cued pattern",
            "overlap_min": "smallest retrieval overlap with the cued pattern",
            "cue_overlap_mean": "mean overlap of the cues with their pattern",
            "crosstalk_max": "largest final overlap with a pattern that was not cued"}
    ds = xr.Dataset({k: ("load", np.asarray(v), {"long_name": long[k], "units": "1"}) for k, v in rows.items()},
                    coords={"load": ("load", np.asarray(loads), {"long_name": "stored patterns P"})})
    ds["alpha"] = ("load", np.asarray(loads) / deg, {"long_name": "P / mean degree", "units": "1"})
    return ds


def _memory(cfg, out: Path, progress: bool) -> tuple[dict, dict]:

    from plasticity.phase import (
        hebbian_phase_weights,
        phase_cues,
        phase_overlap,
        random_phase_patterns,
    )

    oc, mc = cfg.oscillators, cfg.phase_memory
    t = build_oscillator_tissue(cfg)
    seed = _seed(cfg, _PATTERNS)
    loads = list(range(1, mc.max_patterns + 1))
    ds = memory_capacity(t, loads, mc.cue_noise, mc.trials_per_pattern, mc.steps, oc.dt, mc.gain, oc.noise,
                         oc.method, seed, progress)
    ok = ds.overlap_mean.values >= mc.threshold
    cap = 0
    for p, good in zip(loads, ok):       # the largest load up to which every load succeeds
        if not good:
            break
        cap = p
    # the trajectory of the retrievals at the capacity point (or P = 1)
    p = max(cap, 1)
    rng = np.random.default_rng([seed, p])
    pats = random_phase_patterns(p, t.n, rng)
    c = hebbian_phase_weights(t.syn, pats, mc.gain)
    cues, tgt = phase_cues(pats, mc.cue_noise, mc.trials_per_pattern, rng, t.alive)
    net = Network.from_tissue(t, weights=c)
    every = mc.record_every or mc.steps
    res = Integrator(dt=oc.dt, method=oc.method, noise=oc.noise, seed=seed).run(
        Kuramoto(omega=0.0, coupling=1.0), net, mc.steps, init=cues, record_every=every)
    traj = res.to_dataset()
    b = np.arange(len(tgt))
    m_t = phase_overlap(res.phase, pats, t.alive)[:, b, tgt]             # (T, B)
    lat = t.lattice
    out_ds = ds.assign(
        traj_overlap=(("time", "trial"), m_t, {"long_name": "overlap with the cued pattern during retrieval "
                                                            "(at the capacity load)", "units": "1"}),
        target=("trial", tgt.astype(np.int64), {"long_name": "pattern cued in the trial"}),
        patterns=(("pattern", "x", "y", "z"), pats.reshape((p,) + lat.shape),
                  {"long_name": "stored phase patterns (capacity load)", "units": "rad"}))
    if mc.record_every:
        out_ds = out_ds.assign(amplitude=traj.amplitude.astype(np.float32), phase=traj.phase.astype(np.float32))
    else:
        out_ds = out_ds.assign_coords(time=traj.time, step=traj.step)
    out_ds["alive"] = traj.alive if "alive" in traj else (("x", "y", "z"), lat.grid(t.alive).astype(np.uint8))
    out_ds.attrs.update({"capacity_load": int(cap), "threshold": mc.threshold,
                         "mean_degree": float(t.syn.degree[t.alive].mean())})
    out_ds.to_zarr(out, mode="w", consolidated=False)
    save_tissue(t, out)
    fig = plot_memory(ds, mc.threshold, cap, _sibling(out, "memory.png"))
    # phase map: the retrieved state of trial 0 with the global phase removed, and its pattern
    th = res.theta[0]
    g = np.angle(np.mean(np.exp(1j * (th - pats[tgt[0]]))[t.alive]))
    pmap = _phase_map(pm.wrap(th - g), t, _sibling(out, "phase_map.png"),
                      f"retrieved phases (P={p}, global phase removed)")
    pat = _phase_map(pm.wrap(pats[tgt[0]]), t, _sibling(out, "pattern.png"), "stored phase pattern")
    i = loads.index(p)
    figs = {"capacity_load": int(cap), "capacity_alpha": float(ds.alpha.values[i]) if cap else 0.0,
            "overlap_at_capacity": float(ds.overlap_mean.values[i]),
            "overlap_min_at_capacity": float(ds.overlap_min.values[i]),
            "cue_overlap": float(ds.cue_overlap_mean.values[i]),
            "memory_png": str(fig), "phase_map_png": str(pmap), "pattern_png": str(pat)}
    curve = {str(pp): round(float(v), 4) for pp, v in zip(loads, ds.overlap_mean.values)}
    return figs, {"overlap_by_load": curve}


def plot_memory(ds, threshold, cap, path) -> Path:
    """Retrieval overlap against the number of stored patterns."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    p = ds["load"].values
    ax.plot(p, ds.overlap_mean.values, "o-", label="retrieved (mean)")
    ax.plot(p, ds.overlap_min.values, "v:", label="retrieved (min)")
    ax.plot(p, ds.cue_overlap_mean.values, "s--", label="cue")
    ax.plot(p, ds.crosstalk_max.values, "x:", label="largest other overlap")
    ax.axhline(threshold, color="k", lw=0.8)
    if cap:
        ax.axvline(cap, color="g", lw=0.8, label=f"capacity point P={cap}")
    ax.set_xlabel("stored patterns P")
    ax.set_ylabel("overlap |<z conj(xi)>|")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("oscillatory associative memory")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


# ====================================================================== XY learning
def xy_setup(cfg):
    """``(tissue, task, x_train, x_test, trainer, settler)`` of an ``[xy_learning]`` config:
    images clamped on the z- face as phases ``input_scale * pixel``, the z+ face as output."""
    from plasticity.xy_eqprop import XYEqProp, XYSettler

    from .tasks import InputMap, load_digits_task, pattern_task

    xc = cfg.xy_learning
    task = (load_digits_task(cfg.seed) if xc.task == "digits"
            else pattern_task(n_classes=xc.classes, n_train=xc.n_train, n_test=xc.n_test, seed=cfg.seed))
    t = build_oscillator_tissue(cfg)
    im = InputMap(t.lattice, task.image_shape, "z-", xc.upsample)
    t.set_input(im.region)
    t.set_output(t.lattice.face("z+"), groups=task.n_classes, layout=xc.output_layout)
    xtr = xc.input_scale * im(task.x_train, t)
    xte = xc.input_scale * im(task.x_test, t)
    rng = np.random.default_rng(_seed(cfg, _FIELD))
    field = xc.field_init * np.exp(1j * rng.uniform(-np.pi, np.pi, t.n))
    field[t.clamped] = 0
    tr = XYEqProp(beta=xc.beta, symmetric=xc.symmetric, lr=xc.lr, lr_field=xc.lr_field, optimizer=xc.optimizer,
                  batch_size=xc.batch_size, target_on=xc.target_on, target_off=xc.target_off,
                  off_weight=xc.off_weight, seed=cfg.seed, field=field)
    eng = XYSettler(dt=xc.dt, tol=xc.tol, max_steps=xc.max_steps, newton=xc.newton)
    return t, task, xtr, xte, tr, eng


_XY_HIST = ("train_accuracy", "test_accuracy", "loss", "test_loss", "epoch_seconds")


def _xy_checkpoint(out, slot, t, tr, hist, done):
    grp = f"ckpt_{slot}"
    save_tissue(t, out, group=grp)
    g = zarr.open_group(out, mode="a")[grp]
    st = tr.export_state()
    for name, arr in list(st.items()) + [(f"hist_{k}", np.asarray(v, dtype=np.float64)) for k, v in hist.items()]:
        arr = np.asarray(arr)
        a = g.create_array(name, shape=arr.shape, dtype=arr.dtype, overwrite=True)
        a[...] = arr
    zarr.open_group(out, mode="a").update_attributes({"ckpt_slot": slot, "epochs_done": int(done)})


def _xy_restore(out, t, tr):
    root = zarr.open_group(out, mode="r")
    slot, done = root.attrs.get("ckpt_slot"), int(root.attrs.get("epochs_done", 0))
    if slot is None:
        return {k: [] for k in _XY_HIST}, 0
    grp = f"ckpt_{slot}"
    saved = load_tissue(out, group=grp)
    t.syn = saved.syn
    g = root[grp]
    tr.import_state(t, {k: g[k][...] for k in g.array_keys() if not k.startswith("hist_")})
    return {k: g[f"hist_{k}"][...].tolist() for k in _XY_HIST}, done


def xy_alignment(t, tr, x, y, betas, tol: float = 1e-9, max_steps: int = 200000):
    """Cosines between the symmetric EqProp estimate at each ``beta`` and the exact gradient
    (couplings and field together) on the examples ``(x, y)``, settled to ``tol``."""
    from plasticity.xy_eqprop import XYEqProp, XYSettler, exact_xy_gradient

    eng = XYSettler(dt=0.1, tol=tol, max_steps=max_steps, check_every=100)
    tau = tr.targets(t, y)
    free = eng.settle(t, inputs=x, target=tau, field=tr.field)
    gw, gb = exact_xy_gradient(t, free.state, tau, tr.field)
    occ = t.syn.nbr >= 0
    fm = (~t.clamped) & t.alive
    exact = -np.concatenate([gw[occ], gb[fm].real, gb[fm].imag])
    out = []
    for beta in betas:
        probe = XYEqProp(beta=float(beta), symmetric=True, target_on=tr.target_on, target_off=tr.target_off,
                         off_weight=tr.off_weight, field=tr.field.copy())
        probe._prepare(t)
        plus = eng.settle(t, inputs=x, init=free.state, target=tau, beta=beta, field=tr.field)
        minus = eng.settle(t, inputs=x, init=free.state, target=tau, beta=-beta, field=tr.field)
        g, gbe = probe.gradient(t, free, plus, minus)
        est = np.concatenate([g[occ], gbe[fm].real, gbe[fm].imag])
        out.append(float(est @ exact / (np.linalg.norm(est) * np.linalg.norm(exact))))
    return np.asarray(out)


def _xy(cfg, out: Path, resume: bool, progress: bool, base: dict) -> tuple[dict, dict]:
    import xarray as xr

    xc = cfg.xy_learning
    t, task, xtr, xte, tr, eng = xy_setup(cfg)
    hist, done = ({k: [] for k in _XY_HIST}, 0)
    if resume:
        hist, done = _xy_restore(out, t, tr)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=xc.epochs, initial=done, desc="epochs", unit="epoch")
    try:
        for epoch in range(done, xc.epochs):
            rep = tr.fit_epoch(t, eng, xtr, task.y_train, epoch=epoch, progress=progress, epochs=xc.epochs)
            ev = tr.evaluate(t, eng, xte, task.y_test)
            for k, v in (("train_accuracy", rep["accuracy"]), ("loss", rep["loss"]),
                         ("test_accuracy", ev["accuracy"]), ("test_loss", ev["loss"]),
                         ("epoch_seconds", rep["seconds"])):
                hist[k].append(float(v))
            _xy_checkpoint(out, "ab"[epoch % 2], t, tr, hist, epoch + 1)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(train=f"{rep['accuracy']:.3f}", test=f"{ev['accuracy']:.3f}")
    finally:
        if bar is not None:
            bar.close()
    ev = tr.evaluate(t, eng, xte, task.y_test)
    betas = sorted({0.01, 0.1, float(xc.beta)})
    cos = np.full(len(betas), np.nan)
    if xc.alignment_samples:
        k = min(xc.alignment_samples, len(xte))
        cos = xy_alignment(t, tr, xte[:k], task.y_test[:k], betas)
    lat = t.lattice
    free = eng.settle(t, inputs=xte[:1], target=tr.targets(t, task.y_test[:1]), field=tr.field)
    ds = xr.Dataset(
        {"train_accuracy": ("epoch", hist["train_accuracy"], {"long_name": "training accuracy during the epoch"}),
         "test_accuracy": ("epoch", hist["test_accuracy"], {"long_name": "held-out accuracy after the epoch"}),
         "loss": ("epoch", hist["loss"], {"long_name": "mean cost at the free phase (training)"}),
         "test_loss": ("epoch", hist["test_loss"], {"long_name": "mean cost on the held-out set"}),
         "epoch_seconds": ("epoch", hist["epoch_seconds"], {"units": "s"}),
         "alignment": ("beta_check", cos, {"long_name": "cosine between the symmetric EqProp update and the "
                                           "exact implicit-differentiation gradient"}),
         "test_pred": ("sample", ev["pred"].astype(np.int64)),
         "test_label": ("sample", task.y_test.astype(np.int64)),
         "test_steps": ("sample", ev["steps"].astype(np.int64), {"long_name": "settling steps of the free phase"}),
         "field_re": (("x", "y", "z"), lat.grid(tr.field.real)),
         "field_im": (("x", "y", "z"), lat.grid(tr.field.imag)),
         "example_phase": (("x", "y", "z"), lat.grid(pm.wrap(free.state[0])),
                           {"long_name": "free-phase phases of the first test sample", "units": "rad"})},
        coords={"epoch": np.arange(len(hist["loss"])), "beta_check": np.asarray(betas),
                "sample": np.arange(len(task.y_test))})
    root = zarr.open_group(out, mode="a")
    keep = {k: root.attrs.get(k) for k in ("ckpt_slot", "epochs_done")}
    for name in list(ds.variables):          # results of an earlier finish (killed before "complete")
        if name in root:
            del root[name]
    ds.to_zarr(out, mode="a", consolidated=False)
    save_tissue(t, out)
    zarr.open_group(out, mode="a").update_attributes(_jsonable({**base, **keep}))
    fig = plot_xy_learning(ds, _sibling(out, "learning.png"))
    pmap = _phase_map(pm.wrap(free.state[0]), t, _sibling(out, "phase_map.png"),
                      f"free phases, test digit {int(task.y_test[0])}")
    figs = {"test_accuracy": float(ev["accuracy"]), "test_loss": float(ev["loss"]),
            "train_accuracy": float(hist["train_accuracy"][-1]) if hist["train_accuracy"] else float("nan"),
            **{f"cosine_beta_{b:g}": float(c) for b, c in zip(betas, cos)},
            "learning_png": str(fig), "phase_map_png": str(pmap)}
    return figs, {"test_accuracy_by_epoch": [round(v, 4) for v in hist["test_accuracy"]]}


def plot_xy_learning(ds, path) -> Path:
    """Accuracy and loss per epoch of an XY EqProp run."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    e = ds.epoch.values + 1
    axes[0].plot(e, ds.train_accuracy.values, "o-", label="train (during epoch)")
    axes[0].plot(e, ds.test_accuracy.values, "s-", label="held out")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    axes[1].plot(e, ds.loss.values, "o-", label="train")
    axes[1].plot(e, ds.test_loss.values, "s-", label="held out")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("cost at the free phase")
    axes[1].legend()
    fig.suptitle("Equilibrium Propagation on the XY energy")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


# ====================================================================== the runner
def run_oscillators(cfg, out, resume: bool = False, progress: bool = True):
    """Run an oscillator config (``[entrain]``, ``[phase_memory]`` or ``[xy_learning]``) into ``out``.

    The caller (:func:`studies.run.run`) has checked the store and the resume rules. Returns a
    :class:`studies.run.StudySummary` whose ``figures`` hold the measured numbers and picture paths.
    """
    from .run import StudySummary

    t0 = time.perf_counter()
    out = Path(out)
    study = next(s for s in ("entrain", "phase_memory", "xy_learning") if getattr(cfg, s) is not None)
    keep = resume and study == "xy_learning" and (out / "zarr.json").is_file()
    created = None
    if keep:
        created = zarr.open_group(out, mode="r").attrs.get("created")
    elif out.exists():
        shutil.rmtree(out)
    created = created or datetime.now(UTC).isoformat(timespec="seconds")
    base = {"title": f"neural-tissue oscillator run {cfg.name!r}", "kind": f"oscillators/{study}",
            "name": cfg.name, "config": cfg.to_dict(), "seed": cfg.seed, "package": "neural-tissue",
            "package_version": package_version(), "created": created, "status": "running"}
    if (out / "zarr.json").is_file():     # a resumed [xy_learning] store: running again until it ends
        zarr.open_group(out, mode="a").update_attributes(_jsonable(base))
    else:
        zarr.create_group(out, attributes=_jsonable(base))
    if study == "entrain":
        figs, extra = _entrain(cfg, out, progress)
    elif study == "phase_memory":
        figs, extra = _memory(cfg, out, progress)
    else:
        figs, extra = _xy(cfg, out, keep, progress, base)
    wall = time.perf_counter() - t0
    final = {**base, **{k: v for k, v in figs.items()}, **extra, "status": "complete",
             "wall_time_s": round(wall, 3), "finished": datetime.now(UTC).isoformat(timespec="seconds")}
    root = zarr.open_group(out, mode="a")
    root.update_attributes(_jsonable(final))
    return StudySummary(out, "complete", figs, wall)
