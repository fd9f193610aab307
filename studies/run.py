"""The settle-run protocol behind ``tissue run``: build, store patterns, settle in phases, record, resume.

:func:`run` turns a validated :class:`~studies.config.RunConfig` into a run store:

1. build the tissue (:meth:`tissue.Tissue.cube`, seeded by ``seed``); clamp the
   ``[input]`` region; with ``[patterns]``, store ``count`` smooth random
   binary patterns (:func:`plasticity.store_patterns`) and start one trial per
   pattern and repetition from a cue with ``cue_flip`` of its voxels flipped;
   without, start ``[dynamics] trials`` trials from rest or uniform noise;
2. run the ``[[dynamics.phases]]`` in order, each a :class:`dynamics.Langevin`
   engine with its temperature and a noise seed derived from ``seed``. All
   phases share ONE recorder and one global step counter, so the store holds a
   single time axis; a T = 0 phase stops when every trial has converged;
3. finish the store (layout below) and set its ``status`` to ``"complete"``.

Store layout, beyond what :class:`tissue.Recorder` writes (``activation``,
``velocity``, ``state``, ``energy`` over ``(time, trial, x, y, z)``)::

    patterns  (pattern, x, y, z)  uint8    the stored patterns (with [patterns])
    target    (trial)             int64    the pattern cued in each trial
    overlap   (time, trial, pattern)       m = mean_i (2 xi_i - 1)(2 rho_i - 1) over the
                                           living recorded voxels (needs activation)
    tissue/                                the wiring after storage (tissue.save_tissue)
    attrs: config (canonical JSON), name, seed, package_version, status
           ("running" | "complete" | "diverged"), phase_starts (JSON list: the
           global step at which each phase began), step_end, wall_time_s, ...

The overlap is computed when the last phase has ended (complete runs only),
from the stored frames, chunk by chunk, so memory stays flat.

Resume. Every checkpoint also holds, atomically with the state, the phase it
belongs to and the start steps of the phases so far (extra ``carry`` arrays
``phase`` and ``phase_starts``). A checkpoint is either inside a phase
(``status="running"``: continue that phase with the remaining steps, the saved
per-trial bookkeeping and the same global step, hence the same noise) or the end
of one (``"settled"``: start the next phase there). A periodic checkpoint that
falls on the very last step of a phase is not written, since the phase's own
final checkpoint follows at the same step; so "running" never means "finished".
A resumed run therefore writes exactly the frames an uninterrupted one would.
"""

from __future__ import annotations

import importlib
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import zarr

from dynamics import Langevin, SimulationDiverged
from plasticity import store_patterns
from tissue import Recorder, Tissue, open_run, save_tissue
from tissue.records import _jsonable, package_version, read_checkpoint, truncate_after

from .config import RunConfig, load_config, study_module

__all__ = ["RunRefused", "RunSummary", "Setup", "build", "derived_seed", "make_cues", "overlap", "run",
           "smooth_patterns"]

# tags of the seed streams derived from the config seed (the tissue uses the seed itself)
_PATTERNS, _CUES, _INIT, _NOISE = 1, 2, 3, 4


class RunRefused(RuntimeError):
    """The run cannot start as asked (existing store, different config, ...); one line."""


def derived_seed(seed: int, *tags: int) -> int:
    """An independent 32-bit seed for stream ``tags`` of ``seed`` (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([int(seed), *tags]).generate_state(1, np.uint32)[0])


# ------------------------------------------------------------------ patterns
def smooth_patterns(shape, count: int, smoothness: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` smooth random binary patterns ``(count, N)`` (uint8).

    Each is white noise on the lattice blurred by a gaussian of width
    ``smoothness`` voxels (periodic edges) and thresholded at its median, so
    half of the voxels are 1.
    """
    from scipy.ndimage import gaussian_filter

    out = np.empty((count, int(np.prod(shape))), dtype=np.uint8)
    for p in range(count):
        f = gaussian_filter(rng.standard_normal(tuple(shape)), float(smoothness), mode="wrap").ravel()
        out[p] = f > np.median(f)
    return out


def make_cues(patterns: np.ndarray, cue_flip: float, trials_per_pattern: int, rng: np.random.Generator,
              alive=None):
    """Corrupted copies of the patterns: ``(cues (B, N) uint8, target (B,))``.

    Trial ``b`` cues pattern ``b // trials_per_pattern``; exactly
    ``round(cue_flip * n_alive)`` of its living voxels, drawn without
    replacement, are flipped.
    """
    p, n = patterns.shape
    alive_idx = np.arange(n) if alive is None else np.flatnonzero(alive)
    k = int(round(cue_flip * len(alive_idx)))
    target = np.repeat(np.arange(p), trials_per_pattern)
    cues = patterns[target].copy()
    for b in range(len(target)):
        flip = rng.choice(alive_idx, size=k, replace=False)
        cues[b, flip] ^= 1
    return cues, target


def overlap(rates: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """Overlaps ``m = mean_i (2 xi_i - 1)(2 rho_i - 1)`` of rates ``(..., M)``
    with 0/1 patterns ``(P, M)``: an array ``(..., P)`` in [-1, 1] for rates in [0, 1]."""
    sig = 2.0 * np.asarray(patterns, dtype=np.float64) - 1.0
    return (2.0 * np.asarray(rates, dtype=np.float64) - 1.0) @ sig.T / sig.shape[1]


# ------------------------------------------------------------------ set-up
@dataclass
class Setup:
    """Everything a run needs before the dynamics; rebuilt identically on resume."""

    tissue: Tissue
    init: np.ndarray                  # (B, N) initial states
    inputs: np.ndarray | None         # (B, n_inputs) clamped values
    patterns: np.ndarray | None       # (P, N) uint8
    target: np.ndarray | None         # (B,) pattern cued by each trial
    noise_seeds: list = field(default_factory=list)


def build(cfg: RunConfig) -> Setup:
    """Build the tissue, patterns, cues and inputs of a config (deterministic in ``cfg.seed``)."""
    tc = cfg.tissue
    t = Tissue.cube(tc.shape, stencil=tc.stencil or 26, radius=tc.radius, small_world=tc.small_world,
                    init=tc.init, weight_scale=tc.weight_scale, bias=tc.bias, activation=tc.activation,
                    dtype=tc.dtype, seed=cfg.seed)
    inputs = None
    if cfg.input is not None:
        idx = t.set_input(cfg.input.region.indices(t.lattice))
        inputs = np.full((cfg.n_trials, len(idx)), cfg.input.value)
    patterns = target = None
    if cfg.patterns is not None:
        pc = cfg.patterns
        patterns = smooth_patterns(tc.shape, pc.count, pc.smoothness,
                                   np.random.default_rng(derived_seed(cfg.seed, _PATTERNS)))
        store_patterns(t, patterns, gain=pc.gain)
        cues, target = make_cues(patterns, pc.cue_flip, pc.trials_per_pattern,
                                 np.random.default_rng(derived_seed(cfg.seed, _CUES)), t.alive)
        init = cues.astype(np.float64)
    elif cfg.dynamics.init == "random":
        init = np.random.default_rng(derived_seed(cfg.seed, _INIT)).random((cfg.n_trials, t.n))
    else:
        init = np.zeros((cfg.n_trials, t.n))
    seeds = [derived_seed(cfg.seed, _NOISE, k) for k in range(len(cfg.dynamics.phases))]
    return Setup(t, init, inputs, patterns, target, seeds)


# ------------------------------------------------------------------ recorder
class _PhaseRecorder(Recorder):
    """A :class:`tissue.Recorder` that knows which phase it records.

    It adds the phase bookkeeping to every checkpoint (see the module doc) and
    skips the periodic checkpoint on a phase's last step (the final one follows).
    """

    def set_phase(self, index: int, starts: list, steps: int, temperature: float) -> None:
        self.phase, self.starts = index, list(starts)
        self.phase_steps, self.phase_temperature = int(steps), float(temperature)

    def checkpoint(self, step, s, status="running", message="", carry=None) -> None:
        carry = dict(carry or {})
        done = step - self.starts[self.phase] >= self.phase_steps
        if self.phase_temperature == 0 and "active" in carry:
            done = done or not np.any(carry["active"])
        if status == "running" and done:
            self.flush()  # the phase ends at this step: its final checkpoint follows
            return
        carry["phase"] = [self.phase]
        carry["phase_starts"] = self.starts
        super().checkpoint(step, s, status=status, message=message, carry=carry)


# ------------------------------------------------------------------ the run
@dataclass
class RunSummary:
    """What a run did; ``status`` is ``complete``, ``already complete`` or ``diverged``."""

    path: Path
    status: str
    step_end: int
    phase_starts: list
    temperatures: list
    converged: np.ndarray | None = None       # (B,) at the end of the last phase
    target: np.ndarray | None = None          # (B,)
    cue_overlap: np.ndarray | None = None     # (B,) overlap of the first frame with the target
    final_overlap: np.ndarray | None = None   # (B,) overlap of the last frame with the target
    wall_time: float = 0.0
    resumed_from: int | None = None
    message: str = ""

    def lines(self) -> list[str]:
        """A short human-readable report."""
        phases = ", ".join(
            f"T={t:g} from step {s}" for t, s in zip(self.temperatures, self.phase_starts))
        out = [f"{self.path}: {self.status}, {self.step_end} steps ({phases})"]
        if self.resumed_from is not None:
            out.append(f"  resumed from the checkpoint at step {self.resumed_from}")
        if self.final_overlap is not None:
            for b in range(len(self.final_overlap)):
                conv = "" if self.converged is None else (
                    "  converged" if self.converged[b] else "  not converged")
                out.append(f"  trial {b}: pattern {self.target[b]}, overlap cue {self.cue_overlap[b]:.3f}"
                           f" -> final {self.final_overlap[b]:.3f}{conv}")
        elif self.converged is not None:
            out.append(f"  converged: {int(np.sum(self.converged))}/{len(self.converged)} trials")
        if self.message:
            out.append(f"  {self.message}")
        out.append(f"  wall time {self.wall_time:.1f} s")
        return out


@dataclass
class StudySummary:
    """What a study run (a ``*_config`` module's ``RUNNER``) returns: its store, status and
    the lines ``tissue run`` prints."""

    path: Path
    status: str
    figures: dict = field(default_factory=dict)
    wall_time: float = 0.0

    def lines(self) -> list[str]:
        out = [f"{self.path}: {self.status}"]
        for k, v in self.figures.items():
            out.append(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
        if self.wall_time:
            out.append(f"  wall time {self.wall_time:.1f} s")
        return out


def _is_store(path: Path) -> bool:
    return (path / "zarr.json").is_file()


def _first_difference(a, b, where: str = "") -> str:
    """The first key path at which two canonical configs differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            sub = f"{where}.{k}" if where else k
            if k not in a or k not in b:
                return f"{sub} (stored {json.dumps(a.get(k))}, given {json.dumps(b.get(k))})"
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], sub)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where} (stored {json.dumps(a)}, given {json.dumps(b)})"


def _root_attrs(path: Path) -> dict:
    return dict(zarr.open_group(path, mode="r").attrs)


def _stored_identity(out: Path) -> tuple[dict | None, str | None]:
    """The canonical config and creation time stored in a run's root attributes,
    ``(None, None)`` when there is none."""
    attrs = _root_attrs(out)
    config, created = attrs.get("config"), attrs.get("created")
    if isinstance(config, str):
        config = json.loads(config)
    return config, created


def _check_resumable(out: Path, canonical: dict, has_checkpoint: bool) -> str | None:
    """Refuse a resume whose config differs from the stored one; returns the stored creation time."""
    stored, created = _stored_identity(out)
    if stored is None:
        if has_checkpoint or "alive" not in zarr.open_group(out, mode="r"):
            raise RunRefused(f"cannot resume {out}: it holds no run config (not written by `tissue run`?)")
        return None  # a run interrupted before its first checkpoint: nothing to keep, start again
    given = json.loads(json.dumps(canonical))
    try:   # the stored config in today's canonical form (keys added since then take their defaults)
        stored = json.loads(json.dumps(load_config(stored).to_dict()))
    except Exception:  # noqa: BLE001 - a config that no longer validates is compared as stored
        pass
    if stored != given:
        raise RunRefused(f"cannot resume {out}: its config differs at {_first_difference(stored, given)}; "
                         f"use the original config, or --overwrite to start again")
    return created


def run(config, out, resume: bool = False, overwrite: bool = False, progress: bool = True) -> RunSummary:
    """Run a config into the zarr store ``out``.

    Parameters
    ----------
    config : RunConfig, dict, str or Path
        A validated config, or anything :func:`~studies.config.load_config` takes.
    out : str or Path
        The run store (a directory).
    resume : bool
        Continue an interrupted store from its checkpoint (its config must
        equal ``config``). A complete store is left as it is.
    overwrite : bool
        Replace an existing store. Without ``resume`` or ``overwrite`` an
        existing store is refused.
    progress : bool
        tqdm bars over phases and steps.

    Raises
    ------
    RunRefused
        The store exists (neither flag), is not a run store, holds another
        config, or diverged.
    dynamics.SimulationDiverged
        The state blew up; the store keeps the last finite frame and
        ``status = "diverged"``.
    """
    t0 = time.perf_counter()
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    out = Path(out)
    canonical = cfg.to_dict()
    ck = None
    if _is_store(out):
        if resume:
            ck = read_checkpoint(out)
            created = _check_resumable(out, canonical, ck is not None)
            if _root_attrs(out).get("status") == "complete":
                if study_module(cfg) is not None:
                    return StudySummary(out, "already complete")
                if cfg.learning is not None:
                    from .learn import LearnSummary

                    return LearnSummary(out, "already complete", int(_root_attrs(out).get("epochs_done", 0)))
                return _summary(out, cfg, "already complete", time.perf_counter() - t0)
            if ck is not None and ck[3].get("status") == "diverged":
                raise RunRefused(f"cannot resume {out}: the run diverged at step {ck[0]}; "
                                 f"change the config and start again with --overwrite")
            if ck is not None and "phase" not in ck[2] and cfg.learning is None and study_module(cfg) is None:
                raise RunRefused(f"cannot resume {out}: its checkpoint was not written by `tissue run`")
        elif not overwrite:
            raise RunRefused(f"{out} already exists; pass --resume to continue it "
                             f"or --overwrite to replace it")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunRefused(f"{out} exists and is not a run store; refusing to overwrite it")
    study = study_module(cfg)
    if study is not None:
        module, func = study.RUNNER.split(":")
        runner = getattr(importlib.import_module(module), func)
        return runner(cfg, out, resume=resume and _is_store(out), progress=progress)
    if cfg.learning is not None:
        from .learn import run_learning

        return run_learning(cfg, out, resume=resume and _is_store(out), progress=progress)
    if ck is None and out.exists():
        shutil.rmtree(out)  # a run store (checked above) being replaced, or an empty directory

    setup = build(cfg)
    phases = cfg.dynamics.phases
    if ck is None:
        k0, step, state, carry, starts = 0, 0, setup.init, None, [0]
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    else:
        step, s_nb, carry, _ = ck
        try:
            truncate_after(out, step)  # drop frames of an append the kill interrupted
        except RuntimeError as err:
            raise RunRefused(f"cannot resume {err}") from None
        k = int(carry.pop("phase")[0])
        starts = [int(v) for v in carry.pop("phase_starts")]
        state = s_nb.T
        if ck[3]["status"] == "settled":           # phase k finished at this step
            k0, carry = k + 1, None
        else:                                      # inside phase k
            k0 = k
        created = created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    resumed_from = None if ck is None else step

    dc = cfg.dynamics
    attrs = {
        "title": f"neural-tissue run {cfg.name!r}", "name": cfg.name, "config": canonical, "seed": cfg.seed,
        "package": "neural-tissue", "package_version": package_version(), "created": created,
        "status": "running", "activation_function": cfg.tissue.activation, "dt": dc.dt,
        "temperature": [p.temperature for p in phases], "noise_seed": setup.noise_seeds,
        "tissue_seed": cfg.seed, "n_phases": len(phases),
    }
    rc = cfg.record
    region = None if rc.region is None else rc.region.indices(setup.tissue.lattice)
    status, message = "complete", ""
    if k0 < len(phases):
        rec = _PhaseRecorder(out, every=rc.every, variables=rc.variables, region=region, attrs=attrs,
                             checkpoint_every=rc.checkpoint_every, resume=ck is not None)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(phases), initial=k0, desc="phases", unit="phase")
        try:
            for k in range(k0, len(phases)):
                ph = phases[k]
                if k > k0 or carry is None:
                    starts = starts[:k] + [step]
                    steps, carry = ph.steps, None
                else:
                    steps = ph.steps - (step - starts[k])
                rec.set_phase(k, starts, ph.steps, ph.temperature)
                rec.attrs["phase_starts"] = list(starts)   # visible to `tissue info` while running
                engine = Langevin(dt=dc.dt, temperature=ph.temperature, tol=dc.tol, max_steps=ph.steps,
                                  seed=setup.noise_seeds[k], blowup=dc.blowup)
                res = engine.settle(setup.tissue, inputs=setup.inputs, init=state, steps=steps, record=rec,
                                    start_step=step, progress=progress, carry=carry)
                state, step, carry = res.state, res.step_end, None
                if bar is not None:
                    bar.update(1)
        except SimulationDiverged as err:
            status, message, step = "diverged", str(err), err.step
            _finalize(out, setup, attrs, starts, step, status, message, time.perf_counter() - t0)
            raise
        finally:
            if bar is not None:
                bar.close()
    else:
        step = ck[0]
    _finalize(out, setup, attrs, starts, step, status, message, time.perf_counter() - t0)
    summary = _summary(out, cfg, status, time.perf_counter() - t0)
    summary.resumed_from = resumed_from
    return summary


def _finalize(out: Path, setup: Setup, attrs: dict, starts: list, step_end: int, status: str,
              message: str, wall: float) -> None:
    """Write the tissue, patterns and overlaps into the store, then the final attributes."""
    import xarray as xr

    save_tissue(setup.tissue, out)
    ds = open_run(out)
    extra = {}
    if setup.patterns is not None:
        sel = np.ix_(ds.x.values, ds.y.values, ds.z.values)
        pats = setup.tissue.lattice.grid(setup.patterns.T)[sel]          # (x, y, z, P)
        pats = np.moveaxis(pats, -1, 0)
        extra["patterns"] = (("pattern", "x", "y", "z"), pats,
                             {"long_name": "stored binary pattern", "units": "1"})
        extra["target"] = ("trial", setup.target.astype(np.int64),
                           {"long_name": "pattern cued in the trial", "units": "1"})
        if "activation" in ds and status == "complete":
            alive = ds.alive.values.astype(bool)
            sig = pats[:, alive]
            nt, nb = ds.sizes["time"], ds.sizes["trial"]
            chunk = max(1, 2**23 // max(1, nb * sig.shape[1]))
            m = np.empty((nt, nb, len(pats)))
            for i in range(0, nt, chunk):
                a = ds.activation.isel(time=slice(i, i + chunk)).values[..., alive]
                m[i:i + chunk] = overlap(a, sig)
            extra["overlap"] = (("time", "trial", "pattern"), m, {
                "long_name": "overlap with the stored pattern", "units": "1",
                "comment": "mean over living recorded voxels of (2 xi - 1)(2 rho - 1)"})
    ds.close()
    if extra:
        xr.Dataset(extra, coords={"pattern": np.arange(len(setup.patterns))}).to_zarr(
            out, mode="a", consolidated=False)
    final = dict(attrs)
    final.update(status=status, phase_starts=list(starts), step_end=int(step_end),
                 wall_time_s=round(wall, 3),
                 finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if message:
        final["message"] = message
    root = zarr.open_group(out, mode="a")
    root.update_attributes(_jsonable(final))


def _summary(out: Path, cfg: RunConfig, status: str, wall: float) -> RunSummary:
    attrs = _root_attrs(out)
    starts = json.loads(attrs.get("phase_starts", "[]"))
    ck = read_checkpoint(out)
    converged = None if ck is None or "converged" not in ck[2] else ck[2]["converged"].astype(bool)
    s = RunSummary(out, status, int(attrs.get("step_end", -1)), starts,
                   [p.temperature for p in cfg.dynamics.phases], converged, wall_time=wall,
                   message=attrs.get("message", ""))
    ds = open_run(out)
    if "overlap" in ds and "target" in ds:
        target = ds.target.values
        m = ds.overlap.isel(time=[0, -1]).values                       # (2, B, P)
        b = np.arange(len(target))
        s.target, s.cue_overlap, s.final_overlap = target, m[0, b, target], m[1, b, target]
    ds.close()
    return s
