"""Sections of limit-cycle runs (issue 7): ``[oscillators]``, ``[entrain]``, ``[phase_memory]``,
``[xy_learning]``.

A run with any of these sections is dispatched by :func:`studies.run.run` to ``RUNNER``
(:func:`studies.oscillate.run_oscillators`). Every such run needs ``[tissue]`` (the wiring) and
exactly one study section:

- ``[entrain]``: an Arnold-tongue map (locking of the tissue to a periodic drive on a region,
  against detuning and drive strength), with ``[oscillators]`` giving the model;
- ``[phase_memory]``: phase patterns stored by the complex outer-product rule and retrieved from
  noisy cues, for 1 .. ``max_patterns`` stored patterns (phase model of ``[oscillators]``);
- ``[xy_learning]``: Equilibrium Propagation on the XY energy with phase-encoded digits
  (``[oscillators]`` is not used: settling is the XY gradient flow with the section's own ``dt``).

``[dynamics]``, ``[patterns]``, ``[input]``, ``[task]``, ``[learning]``, ``[homeostasis]`` and
``[baselines]`` belong to the point-attractor runs and are refused here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .schema import ConfigError, Region, _check_region_fits, _Key, param

SECTIONS = ("oscillators", "entrain", "phase_memory", "xy_learning")
RUNNER = "studies.oscillate:run_oscillators"
OWN_VALIDATION = True    # check() does all validation ([dynamics] phases do not apply)

_Z_FACE = Region("face", ("z-", 1))
STUDIES = ("entrain", "phase_memory", "xy_learning")
FOREIGN = ("dynamics", "patterns", "input", "task", "learning", "homeostasis", "baselines")


@dataclass(frozen=True, kw_only=True)
class OscillatorsConfig:
    """[oscillators]: the model and its integrator (dynamics.Integrator)."""

    model: str = param("choice", "Stuart-Landau (complex z) or Kuramoto (phases)", "kuramoto",
                       choices=("stuart_landau", "kuramoto"))
    dt: float = param("float", "time step", 0.05, lo=0, lo_open=True, hi=1)
    method: str = param("choice", "integration scheme (auto: RK4 without noise, Heun with noise)", "auto",
                        choices=("auto", "rk4", "heun", "euler"))
    noise: float = param("float", "additive white noise sigma", 0.0, lo=0)
    coupling: float = param("float", "coupling strength K (times the tissue's weights)", 1.0)
    omega: float = param("float", "natural angular frequency of every oscillator", 1.0)
    omega_spread: float = param("float", "standard deviation of the natural frequencies (gaussian, seeded)",
                                0.0, lo=0)
    mu: float = param("float", "Stuart-Landau growth rate (limit cycle |z| = sqrt(mu))", 1.0,
                      lo=0, lo_open=True)


@dataclass(frozen=True, kw_only=True)
class EntrainConfig:
    """[entrain]: an Arnold-tongue map of locking against detuning and drive strength."""

    region: Region = param("region", "the driven voxels", _Z_FACE)  # noqa: RUF009 (a frozen Region)
    drive_max: float = param("float", "largest drive amplitude F", 1.0, lo=0, lo_open=True)
    drive_points: int = param("int", "drive amplitudes from drive_max / drive_points to drive_max", 6, lo=1)
    detuning_max: float = param("float", "detunings Omega - omega in [-detuning_max, detuning_max]", 1.5,
                                lo=0, lo_open=True)
    detuning_points: int = param("int", "detuning grid points (odd: includes 0)", 13, lo=3)
    steps: int = param("int", "integration steps per trial", 4000, lo=2)
    transient: float = param("float", "fraction of the steps discarded before measuring", 0.5,
                             lo=0, hi=0.95)
    sample_every: int = param("int", "steps between phase samples of the locking measures", 5, lo=1)
    record_every: int = param("int", "steps between trajectory frames stored (0: none)", 50, lo=0)
    threshold: float = param("float", "a trial is locked when its phase-locking value is at least this",
                             0.9, lo=0, lo_open=True, hi=1)


@dataclass(frozen=True, kw_only=True)
class PhaseMemoryConfig:
    """[phase_memory]: phase patterns stored by a complex outer-product rule."""

    max_patterns: int = param("int", "store 1 .. max_patterns random phase patterns (one network each)",
                              6, lo=1)
    trials_per_pattern: int = param("int", "cued trials per stored pattern", 4, lo=1)
    cue_noise: float = param("float", "fraction of a cue's phases re-drawn uniformly", 0.2, lo=0, hi=1)
    steps: int = param("int", "integration steps of a retrieval", 1500, lo=1)
    gain: float = param("float", "coupling scale of the Hebbian rule", 1.0, lo=0, lo_open=True)
    threshold: float = param("float", "retrieval counts as successful at this mean overlap", 0.95,
                             lo=0, lo_open=True, hi=1)
    record_every: int = param("int", "steps between trajectory frames stored for the first load "
                              "(0: none)", 50, lo=0)


@dataclass(frozen=True, kw_only=True)
class XYLearningConfig:
    """[xy_learning]: Equilibrium Propagation on the XY energy (plasticity.xy_eqprop)."""

    task: str = param("choice", "scikit-learn digits or synthetic prototypes", "digits",
                      choices=("digits", "patterns"))
    classes: int = param("int", "classes of the patterns task (digits always have 10)", 4, lo=2, hi=10)
    n_train: int = param("int", "training samples of the patterns task", 400, lo=2)
    n_test: int = param("int", "held-out samples of the patterns task", 200, lo=2)
    upsample: int = param("int", "each pixel covers upsample x upsample input voxels", 1, lo=1)
    output_layout: str = param("choice", "output voxels per class: interleaved or blocks", "interleaved",
                               choices=("interleaved", "blocks"))
    input_scale: float = param("float", "input phase = input_scale * pixel (pixels in [0, 1])",
                               math.pi / 2, lo=0, lo_open=True)
    epochs: int = param("int", "passes over the training set", 10, lo=1)
    beta: float = param("float", "nudge strength", 0.5, lo=0, lo_open=True)
    symmetric: bool = param("bool", "nudge with +beta and -beta", True)
    lr: float = param("float", "learning rate of the couplings", 0.01, lo=0)
    lr_field: float | None = param("float", "learning rate of the bias field (default lr)", None, lo=0)
    optimizer: str = param("choice", "per-parameter step sizes", "adam", choices=("adam", "sgd"))
    batch_size: int = param("int", "examples per update", 32, lo=1)
    target_on: float = param("float", "target phase of the correct class's output voxels", 0.0)
    target_off: float = param("float", "target phase of the other output voxels", math.pi)
    off_weight: float | None = param("float", "cost weight of the other voxels (default 1/(classes-1))",
                                     None, lo=0)
    field_init: float = param("float", "magnitude of the initial random bias field", 0.2, lo=0)
    dt: float = param("float", "settling time step (RK4 gradient flow)", 0.2, lo=0, lo_open=True, hi=1)
    tol: float = param("float", "a settle ends when max |dtheta/dt| < tol ...", 1e-3, lo=0, lo_open=True)
    max_steps: int = param("int", "... or after this many steps", 2000, lo=1)
    newton: bool = param("bool", "finish settles near a minimum by Newton steps (see XYSettler)", False)
    alignment_samples: int = param("int", "test samples of the final EqProp-vs-exact-gradient check "
                                   "(0: skip)", 8, lo=0)


def check(cfg, raw):
    """All rules of these runs; returns the (possibly normalised) config.

    Raises
    ------
    ConfigError
        Naming the section or key and what is allowed.
    """
    present = [s for s in STUDIES if getattr(cfg, s) is not None]
    if len(present) != 1:
        if not present:
            raise ConfigError("an oscillator run needs exactly one of the sections [entrain], [phase_memory], "
                              "[xy_learning] (found only [oscillators])")
        raise ConfigError(f"sections {', '.join(f'[{s}]' for s in present)}: one oscillator study per run; "
                          "keep exactly one of [entrain], [phase_memory], [xy_learning]")
    study = present[0]
    for name in FOREIGN:
        if getattr(cfg, name) is not None:
            raise ConfigError(f"section [{name}] is not allowed in an oscillator run ([{study}]); "
                              f"allowed sections: [tissue], [oscillators], [{study}], [record]")
    if cfg.tissue is None:
        raise ConfigError("section [tissue] is required (the wiring of the oscillators)")
    t = cfg.tissue
    raw_t = raw.get("tissue", {})
    if t.radius is not None:
        if "stencil" in raw_t:
            raise _Key("tissue", "radius").bad(t.radius, "give either stencil or radius, not both")
        cfg = replace(cfg, tissue=replace(t, stencil=None))
        t = cfg.tissue
    if math.prod(t.shape) > 2**24:
        raise _Key("tissue", "shape").bad(list(t.shape), "too many voxels for an oscillator study "
                                          f"(at most {2**24})")
    if study == "xy_learning":
        if cfg.oscillators is not None:
            raise ConfigError("section [oscillators] is not used by [xy_learning] (settling is the XY "
                              "gradient flow; set [xy_learning] dt, tol, max_steps)")
        xc = cfg.xy_learning
        side = 8 * xc.upsample
        if t.shape[0] < side or t.shape[1] < side:
            raise _Key("tissue", "shape").bad(list(t.shape), f"the z- face must hold the {side}x{side} input "
                                              f"(8x8 images, upsample {xc.upsample})")
        if t.shape[2] < 2:
            raise _Key("tissue", "shape").bad(list(t.shape), "needs at least 2 layers along z "
                                              "(input face z-, output face z+)")
        n_classes = 10 if xc.task == "digits" else xc.classes
        if xc.task == "patterns":
            for key in ("n_train", "n_test"):
                if getattr(xc, key) < n_classes:
                    raise _Key("xy_learning", key).bad(getattr(xc, key), f"must be >= classes ({n_classes}): "
                                                       "the split is stratified")
        if t.shape[0] * t.shape[1] < n_classes:
            raise _Key("tissue", "shape").bad(list(t.shape), f"the z+ face needs a voxel per class ({n_classes})")
        return cfg
    if cfg.oscillators is None:
        from .config import OscillatorsConfig as _O  # the same class, re-exported

        cfg = replace(cfg, oscillators=_O())
    oc = cfg.oscillators
    if oc.method == "rk4" and oc.noise > 0:
        raise _Key("oscillators", "method").bad(oc.method, "RK4 is deterministic: use \"heun\" or \"auto\" "
                                                "with noise > 0")
    if study == "entrain":
        from tissue.lattice import Lattice

        _check_region_fits(cfg.entrain.region, Lattice(t.shape), _Key("entrain", "region"))
        e = cfg.entrain
        if int(e.steps * (1 - e.transient)) < 2 * e.sample_every:
            raise _Key("entrain", "steps").bad(e.steps, f"leaves fewer than two samples after the transient "
                                               f"({e.transient}) at sample_every = {e.sample_every}")
    if study == "phase_memory" and oc.model != "kuramoto":
        raise _Key("oscillators", "model").bad(oc.model, "must be \"kuramoto\" with [phase_memory] "
                                               "(retrieval runs on the phases)")
    return cfg
