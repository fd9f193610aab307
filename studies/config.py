"""Run configurations: TOML files validated into typed, frozen objects.

A run config has sections named after the packages::

    seed = 0                      # seeds wiring, patterns, cues and noise
    name = "demo"

    [tissue]                      # tissue.Tissue.cube
    shape = [32, 32, 32]
    stencil = 26

    [patterns]                    # optional: plasticity.store_patterns
    count = 3

    [input]                       # optional: a clamped region
    region = {face = "z-"}
    value = 1.0

    [dynamics]                    # dynamics.Langevin, one engine per phase
    dt = 0.2
    [[dynamics.phases]]
    temperature = 0.02
    steps = 200

    [record]                      # tissue.Recorder
    every = 5

The schema is declarative: every field of the dataclasses below carries a
:class:`Spec` (kind, range or choices, default, doc) in its metadata, and one
generic walker (:func:`_build`) validates a parsed TOML document against it.
Validation is complete before any work starts; the first problem raises
:class:`ConfigError` whose message is one line naming the key and what is
allowed, e.g. ``config error: [tissue] stencil = 7: must be one of 6, 18, 26``.

:meth:`RunConfig.to_dict` gives the *canonical* form: every key with its
default filled in, absent optional keys left out, keys in schema order. It is
stored in a run's attributes (as JSON) and compared on ``--resume``;
``load_config(cfg.to_dict()) == cfg`` and :func:`to_toml` writes it back as
TOML.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from tissue.core import ACTIVATIONS, DTYPES
from tissue.lattice import Lattice
from tissue.records import VARIABLES
from tissue.wiring import INIT_SCHEMES, STENCILS

from . import damage_config, generative_config, osc_config
from .damage_config import LesionConfig, RecoveryConfig, StructuralConfig
from .generative_config import DreamConfig, LandscapeConfig, MemoryConfig
from .osc_config import EntrainConfig, OscillatorsConfig, PhaseMemoryConfig, XYLearningConfig
from .schema import (MAX_RADIUS, MAX_VOXELS, REQUIRED, ConfigError, Region, Spec, _build, _check,  # noqa: F401
                     _check_region_fits, _fmt, _Key, _no_unknown, _unknown, param)

__all__ = [
    "BaselinesConfig", "ConfigError", "DynamicsConfig", "HomeostasisConfig", "InputConfig", "LearningConfig",
    "PatternsConfig", "Phase", "RecordConfig", "Region", "RunConfig", "Spec", "TaskConfig", "TissueConfig",
    "describe", "load_config", "to_toml",
]

# ------------------------------------------------------------------ sections
@dataclass(frozen=True, kw_only=True)
class TissueConfig:
    """[tissue]: the substrate, built with :meth:`tissue.Tissue.cube`."""

    shape: tuple = param("ints", "voxels along x, y and z", length=3, lo=1)
    stencil: int | None = param("choice", "neighbourhood: 6, 18 or 26 neighbours "
                                "(26 unless radius is given)", 26, choices=STENCILS)
    radius: float | None = param("float", "wire all pairs within this distance in voxels "
                                 "(instead of a stencil)", None, lo=1, hi=MAX_RADIUS)
    small_world: float = param("float", "fraction of synapses rewired to distant voxels", 0.0, lo=0, hi=1)
    activation: str = param("choice", "rate function rho(s)", "hard_sigmoid", choices=ACTIVATIONS)
    init: str = param("choice", "weight initialisation", "uniform", choices=INIT_SCHEMES)
    weight_scale: float | None = param("float", "weight scale (default 1/sqrt(K))", None, lo=0)
    bias: float = param("float", "initial bias of every neuron", 0.0)
    dtype: str = param("choice", "floating point type of states and weights", "float32",
                       choices=tuple(DTYPES))


@dataclass(frozen=True, kw_only=True)
class PatternsConfig:
    """[patterns]: Hebbian storage of smooth random 3D binary patterns
    (gaussian-filtered noise thresholded at its median), and the corrupted cues
    the trials start from."""

    count: int = param("int", "number of stored patterns", 3, lo=1)
    smoothness: float = param("float", "gaussian filter width (voxels)", 2.0, lo=0, lo_open=True)
    gain: float = param("float", "Hebbian coupling strength", 4.0, lo=0, lo_open=True)
    cue_flip: float = param("float", "fraction of voxels flipped in each cue", 0.25, lo=0, hi=1)
    trials_per_pattern: int = param("int", "cued trials per pattern", 1, lo=1)


@dataclass(frozen=True, kw_only=True)
class InputConfig:
    """[input]: a region clamped to a value in every trial."""

    region: Region = param("region", "the clamped voxels")
    value: float = param("float", "the clamped state", 1.0)


@dataclass(frozen=True, kw_only=True)
class Phase:
    """[[dynamics.phases]]: one Langevin engine run after the previous one."""

    temperature: float = param("float", "noise temperature; 0 is gradient flow, which stops when "
                                "every trial has converged", lo=0)
    steps: int = param("int", "number of steps; at T > 0 all are run, at T = 0 it is a cap", lo=1)


@dataclass(frozen=True, kw_only=True)
class DynamicsConfig:
    """[dynamics]: Langevin settling in phases (an annealing schedule)."""

    dt: float = param("float", "time step in membrane time constants", 0.2, lo=0, lo_open=True)
    tol: float = param("float", "convergence: max |ds/dt| below this", 1e-4, lo=0, lo_open=True)
    blowup: float = param("float", "max |s| beyond which the run has diverged", 1e6, lo=0, lo_open=True)
    trials: int | None = param("int", "trials without [patterns] (with patterns: count x "
                               "trials_per_pattern)", None, lo=1)
    init: str = param("choice", "initial state without [patterns]: rest (0) or random in [0, 1)",
                      "random", choices=("rest", "random"))
    max_steps: int = param("int", "step cap of every settle of a [learning] run", 1000, lo=1)
    phases: tuple | None = param("tables", "one [[dynamics.phases]] table per phase, run in order "
                                 "(required without [learning])", None, cls=Phase)
    engine: str = param("choice", "settling engine: clocked (dynamics.Langevin, every field every step) "
                        "or events (dynamics.events.EventEngine, T = 0: only what changes; [learning] runs)",
                        "clocked", choices=("clocked", "events"))
    epsilon: float | None = param("float", "engine = events: a neuron broadcasts when its rate moved by "
                                  "more than this (default tol / 4)", None, lo=0)
    order: str | None = param("choice", "engine = events: worklist order, first in first out or the "
                              "largest residual first (default fifo)", None, choices=("fifo", "residual"))

    def __post_init__(self):
        if self.engine == "events" and self.phases is not None:
            raise _Key("dynamics", "engine").bad(
                self.engine, 'must be "clocked" in settle runs ([[dynamics.phases]] record every step); '
                '"events" is for [learning] runs')
        if self.engine != "events":
            for key in ("epsilon", "order"):
                if getattr(self, key) is not None:
                    raise _Key("dynamics", key).bad(getattr(self, key), 'only with engine = "events"')


@dataclass(frozen=True, kw_only=True)
class RecordConfig:
    """[record]: what the run store keeps (see tissue.Recorder)."""

    every: int = param("int", "record a frame every this many steps", 1, lo=1)
    variables: tuple = param("strs", "recorded variables", ("activation", "velocity", "energy"),
                             choices=VARIABLES)
    region: Region | None = param("region", "record only this region's bounding box", None)
    checkpoint_every: int | None = param("int", "steps between checkpoints", None, lo=1)


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """[task]: what a [learning] run learns; the input is the z- face, the output the z+ face."""

    name: str = param("choice", "digits: scikit-learn's 8x8 digits; patterns: synthetic prototypes",
                      "digits", choices=("digits", "patterns"))
    upsample: int = param("int", "each pixel covers upsample x upsample input voxels", 1, lo=1, hi=16)
    encoding: str = param("choice", "intensity: every voxel of a pixel's block carries the pixel value p; "
                          "on_off: half of them (a checkerboard) carry 1 - p, as ON and OFF cells "
                          "(needs upsample >= 2)", "intensity", choices=("intensity", "on_off"))
    test_size: float = param("float", "held-out fraction (stratified, seeded by seed)", 0.25, lo=0.05, hi=0.9)
    output_layout: str = param("choice", "output groups: contiguous blocks or interleaved voxels",
                               "interleaved", choices=("blocks", "interleaved"))
    styles: int = param("int", "styles per class: each class's training images are split by k-means on "
                        "the pixels into this many styles, and a training image's target switches on only "
                        "its style's share of its class group (the class is still read as the group with "
                        "the highest mean rate); a tissue so trained dreams one image per style "
                        "([dream], docs/results_generative.md). 1: the plain one-hot class targets", 1,
                        lo=1, hi=16)
    n_classes: int = param("int", "classes of the patterns task", 4, lo=2, hi=64)
    noise: float = param("float", "flipped pixel fraction of the patterns task", 0.1, lo=0, hi=0.5)


@dataclass(frozen=True, kw_only=True)
class LearningConfig:
    """[learning]: Equilibrium Propagation (plasticity.EqProp)."""

    epochs: int = param("int", "passes over the training set", 30, lo=1)
    beta: float = param("float", "nudge strength", 0.1, lo=0, lo_open=True)
    symmetric: bool = param("bool", "nudge with +beta and -beta (else free and +beta)", True)
    lr: float = param("float", "learning rate of the weights", 0.003, lo=0)
    lr_bias: float | None = param("float", "learning rate of the biases (default lr)", None, lo=0)
    depth_lr: float = param("float", "learning-rate factor per voxel of distance from the output", 1.0,
                            lo=0, lo_open=True)
    optimizer: str = param("choice", "sgd, or adam (per-synapse adaptive steps)", "adam",
                           choices=("sgd", "adam"))
    batch_size: int = param("int", "examples settled together", 32, lo=1)
    persistent: bool = param("bool", "warm-start free phases from each example's last fixed point", False)
    nudged_steps: int | None = param("int", "step cap of the nudged phases (default max_steps)", None, lo=1)
    target_on: float = param("float", "target rate of the correct output group", 1.0)
    target_off: float = param("float", "target rate of the other output groups", 0.0)
    cost: str = param("choice", "squared error per output voxel, on the group means, or softmax "
                      "cross-entropy of the group means", "squared",
                      choices=("squared", "group_squared", "cross_entropy"))
    tau: float = param("float", "temperature of the cross-entropy read-out", 0.1, lo=0, lo_open=True)
    schedule: str = param("choice", "learning-rate schedule over the epochs (cosine: half a cosine down to "
                          "lr_final x lr, read once per epoch; cosine_batch: read at every mini-batch, "
                          "reaching lr_final x lr at the last one)", "constant",
                          choices=("constant", "cosine", "cosine_batch"))
    lr_final: float = param("float", "cosine schedule: final learning rate / lr", 0.05, lo=0, hi=1)
    weight_clip: float | None = param("float", "clip weights to [-c, c] after each update", None,
                                      lo=0, lo_open=True)
    weight_decay: float = param("float", "decoupled weight decay: each step w *= 1 - lr_t * weight_decay "
                                "(0: off)", 0.0, lo=0)
    average: float = param("float", "Polyak averaging: each weight and bias keeps a running average of "
                           "itself (decay per batch; 0.995 averages over about 200 batches, 5 epochs of the "
                           "digits); the held-out accuracy is read, and the trained tissue kept, with the "
                           "averages (0: off)", 0.0, lo=0, hi=0.9999)
    dropout: float = param("float", "damage-tolerance training: share of the living hidden neurons silenced "
                           "(held at rest) afresh in every mini-batch, in all its phases; evaluation runs the "
                           "whole tissue (0: off)", 0.0, lo=0, hi=0.9)
    prune_target: float = param("float", "pruning while learning: share of the synapses removed by the start "
                                "of epoch prune_end, in cuts at the start of epochs prune_start .. prune_end - 1 "
                                "on a cubic schedule (0: off)", 0.0, lo=0, hi=0.95)
    prune_start: int = param("int", "pruning while learning: the first epoch (0-based) that starts with a cut",
                             15, lo=0)
    prune_end: int = param("int", "pruning while learning: the epoch that starts with prune_target removed",
                           30, lo=1)
    prune_by: str = param("choice", "pruning while learning: cut the synapses between two clamped inputs "
                          "(they move no fixed point) and then those of smallest |w| r_i r_j (effect; r: RMS "
                          "rates at the training digits' free fixed points), the smallest |w| r_i r_j alone "
                          "(activity), or the smallest |w| (weight)", "effect",
                          choices=("effect", "activity", "weight"))
    blends: int = param("int", "ambiguous 50/50 blends of two test digits for the uncertainty AUROC",
                        200, lo=0)
    alignment_samples: int = param("int", "test samples of the final gradient-alignment check "
                                   "(0: skip it)", 8, lo=0)
    mode: str = param("choice", "two_phase: settle free, then nudged (EqProp); continuous: the output "
                      "always carries a weak nudge beta modulated around beta, learning from the running "
                      "contrast (plasticity.continuous)", "two_phase", choices=("two_phase", "continuous"))
    modulation: float | None = param("float", "mode = continuous: relative amplitude a of the nudge "
                                     "beta (1 + a sin phase), never 0 (default 0.5)", None, lo=0, lo_open=True,
                                     hi=0.99)
    cycle: int | None = param("int", "mode = continuous: settles per cycle of the nudge modulation "
                              "(default 4)", None, lo=3, hi=64)
    contrast_tau: float | None = param("float", "mode = continuous: time constant (in settles) of the slow "
                                       "exponential average of the co-activity (default 8)", None, lo=1)

    def __post_init__(self):
        if self.mode != "continuous":
            for key in ("modulation", "cycle", "contrast_tau"):
                if getattr(self, key) is not None:
                    raise _Key("learning", key).bad(getattr(self, key), 'only with mode = "continuous"')
        if self.dropout > 0 and self.mode != "two_phase":
            raise _Key("learning", "dropout").bad(self.dropout, 'only with mode = "two_phase"')
        if self.prune_target > 0:
            if self.mode != "two_phase":
                raise _Key("learning", "prune_target").bad(self.prune_target, 'only with mode = "two_phase"')
            if not self.prune_start < self.prune_end <= self.epochs:
                raise _Key("learning", "prune_end").bad(
                    self.prune_end, f"needs prune_start ({self.prune_start}) < prune_end <= epochs ({self.epochs})")


@dataclass(frozen=True, kw_only=True)
class HomeostasisConfig:
    """[homeostasis]: Lipschitz braking (plasticity.LipschitzBrake)."""

    enabled: bool = param("bool", "brake when a free phase stalls or diverges", True)
    target: float = param("float", "contraction to brake down to", 0.9, lo=0, lo_open=True)
    trigger: float = param("float", "brake only above this contraction (>= target)", 0.95,
                           lo=0, lo_open=True)
    stall_fraction: float = param("float", "a free phase has stalled when this share of its trials "
                                  "hits max_steps", 0.25, lo=0, lo_open=True, hi=1)


@dataclass(frozen=True, kw_only=True)
class BaselinesConfig:
    """[baselines]: backprop references trained on the same split."""

    mlp: bool = param("bool", "scikit-learn MLPClassifier with as many weights as the tissue", True)
    logistic: bool = param("bool", "logistic regression on the pixels", True)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A whole run: top-level keys and one field per section."""

    seed: int = param("int", "seeds wiring, patterns, cues and noise", 0, lo=0)
    name: str = param("str", "a name for the run", "run")
    tissue: TissueConfig | None = param("section", "the substrate (required unless the study loads "
                                        "a trained tissue)", None, cls=TissueConfig)
    patterns: PatternsConfig | None = param("section", "stored patterns and cues", None, cls=PatternsConfig)
    input: InputConfig | None = param("section", "a clamped input region", None, cls=InputConfig)
    dynamics: DynamicsConfig | None = param("section", "settling phases (required unless the study "
                                            "says otherwise)", None, cls=DynamicsConfig)
    record: RecordConfig = param("section", "what to record", RecordConfig(), cls=RecordConfig)
    task: TaskConfig | None = param("section", "the task of a learning run", None, cls=TaskConfig)
    learning: LearningConfig | None = param("section", "Equilibrium Propagation", None, cls=LearningConfig)
    homeostasis: HomeostasisConfig | None = param("section", "Lipschitz braking", None, cls=HomeostasisConfig)
    baselines: BaselinesConfig | None = param("section", "backprop baselines", None, cls=BaselinesConfig)
    lesion: LesionConfig | None = param("section", "damage (issue 5)", None, cls=LesionConfig)
    structural: StructuralConfig | None = param("section", "pruning and growth (issue 5)", None,
                                                cls=StructuralConfig)
    recovery: RecoveryConfig | None = param("section", "recovery after a lesion (issue 5)", None,
                                            cls=RecoveryConfig)
    dream: DreamConfig | None = param("section", "dreaming from a label (issue 6)", None, cls=DreamConfig)
    memory: MemoryConfig | None = param("section", "associative memory (issue 6)", None, cls=MemoryConfig)
    landscape: LandscapeConfig | None = param("section", "the attractor landscape (issue 6)", None,
                                              cls=LandscapeConfig)
    oscillators: OscillatorsConfig | None = param("section", "limit-cycle tissue (issue 7)", None,
                                                  cls=OscillatorsConfig)
    entrain: EntrainConfig | None = param("section", "entrainment map (issue 7)", None, cls=EntrainConfig)
    phase_memory: PhaseMemoryConfig | None = param("section", "oscillatory memory (issue 7)", None,
                                                   cls=PhaseMemoryConfig)
    xy_learning: XYLearningConfig | None = param("section", "EqProp with phases (issue 7)", None,
                                                 cls=XYLearningConfig)

    @property
    def n_trials(self) -> int:
        if self.patterns is not None:
            return self.patterns.count * self.patterns.trials_per_pattern
        return self.dynamics.trials

    def to_dict(self) -> dict:
        """The canonical dict: defaults filled in, absent optional keys omitted."""
        return _to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


STUDY_MODULES = (damage_config, generative_config, osc_config)


def study_module(cfg: RunConfig):
    """The ``*_config`` module of the study this config runs (None: a settle or learning run).

    Each such module names its ``SECTIONS``, the ``RUNNER`` (``"module:function"``) that
    :func:`studies.run.run` dispatches to, a ``check(cfg, raw)`` hook for its cross-key rules, and
    ``OWN_VALIDATION``: whether ``check`` replaces the base rules below (for runs without a
    [tissue] or [dynamics] of their own).
    """
    found = [m for m in STUDY_MODULES if any(getattr(cfg, s) is not None for s in m.SECTIONS)]
    if len(found) > 1:
        a, b = (f"[{next(s for s in m.SECTIONS if getattr(cfg, s) is not None)}]" for m in found[:2])
        raise ConfigError(f"sections {a} and {b} belong to different studies; one study per run")
    return found[0] if found else None


def _cross_checks(cfg: RunConfig, raw: Mapping) -> RunConfig:
    """Rules that involve several keys; regions checked against the lattice."""
    study = study_module(cfg)
    if study is not None and study.OWN_VALIDATION:
        return study.check(cfg, raw)
    cfg = _base_checks(cfg, raw)
    return study.check(cfg, raw) if study is not None else cfg


def _base_checks(cfg: RunConfig, raw: Mapping) -> RunConfig:
    """The rules of settle and learning runs (and of studies built on them)."""
    for name, doc in (("tissue", "the substrate"), ("dynamics", "settling phases")):
        if getattr(cfg, name) is None:
            raise ConfigError(f"section [{name}] is required ({doc})")
    t = cfg.tissue
    raw_t = raw.get("tissue", {})
    if t.radius is not None:
        if "stencil" in raw_t:
            raise _Key("tissue", "radius").bad(t.radius, "give either stencil or radius, not both")
        cfg = replace(cfg, tissue=replace(t, stencil=None))
    if math.prod(t.shape) > MAX_VOXELS:
        raise _Key("tissue", "shape").bad(list(t.shape), f"too many voxels (at most {MAX_VOXELS})")
    d = cfg.dynamics
    if cfg.learning is not None or cfg.task is not None:
        return _learning_checks(cfg, raw)
    for name in ("homeostasis", "baselines"):
        if getattr(cfg, name) is not None:
            raise ConfigError(f"section [{name}] needs [learning] and [task]")
    if d.phases is None:
        raise ConfigError("[[dynamics.phases]] is required: at least one phase "
                          "(temperature, steps), unless the run has [learning]")
    if "max_steps" in raw.get("dynamics", {}):
        raise _Key("dynamics", "max_steps").bad(d.max_steps, "only for [learning] runs "
                                                "(settle runs cap each phase with its steps)")
    cfg = replace(cfg, dynamics=replace(d, max_steps=None))
    d = cfg.dynamics
    if cfg.patterns is not None:
        if d.trials is not None:
            raise _Key("dynamics", "trials").bad(
                d.trials, "not allowed with [patterns] (trials = count x trials_per_pattern)")
        if "init" in raw.get("dynamics", {}):
            raise _Key("dynamics", "init").bad(d.init, "not allowed with [patterns] (trials start from cues)")
        cfg = replace(cfg, dynamics=replace(d, init=None))
    elif d.trials is None:
        cfg = replace(cfg, dynamics=replace(d, trials=1))
    lattice = Lattice(t.shape)
    if cfg.input is not None:
        _check_region_fits(cfg.input.region, lattice, _Key("input", "region"))
    if cfg.record.region is not None:
        _check_region_fits(cfg.record.region, lattice, _Key("record", "region"))
    return cfg


def _learning_checks(cfg: RunConfig, raw: Mapping) -> RunConfig:
    """A learning run: [task] and [learning] together, no settle-run sections."""
    if cfg.learning is None:
        raise ConfigError("section [learning] is required with [task]")
    if cfg.task is None:
        raise ConfigError("section [task] is required with [learning]")
    for name in ("patterns", "input"):
        if getattr(cfg, name) is not None:
            raise ConfigError(f"section [{name}] is not allowed with [learning] "
                              f"(the task's images are clamped on the z- face)")
    raw_d = raw.get("dynamics", {})
    for key in ("phases", "trials", "init"):
        if key in raw_d:
            raise _Key("dynamics", key).bad(raw_d[key], "not allowed with [learning] "
                                            "(every settle runs at T = 0 up to max_steps)")
    h = cfg.homeostasis
    if h is not None and h.target > h.trigger:
        raise _Key("homeostasis", "target").bad(h.target, f"must be <= trigger ({h.trigger})")
    t, tk = cfg.tissue, cfg.task
    side = 8 * tk.upsample
    if t.shape[0] < side or t.shape[1] < side:
        raise _Key("tissue", "shape").bad(list(t.shape), f"the z- face must hold the {side}x{side} "
                                          f"input (8x8 images, upsample {tk.upsample})")
    if t.shape[2] < 2:
        raise _Key("tissue", "shape").bad(list(t.shape), "needs at least 2 layers along z "
                                          "(input face z-, output face z+)")
    if tk.encoding == "on_off" and tk.upsample < 2:
        raise _Key("task", "encoding").bad(tk.encoding, "needs upsample >= 2 (each pixel's block holds its "
                                           f"ON and OFF voxels; upsample is {tk.upsample})")
    if tk.name == "digits" and t.shape[0] * t.shape[1] < 10:
        raise _Key("tissue", "shape").bad(list(t.shape), "the z+ face needs a voxel per class (10)")
    if tk.styles > 1:
        n_cls = 10 if tk.name == "digits" else tk.n_classes
        if t.shape[0] * t.shape[1] < n_cls * tk.styles:
            raise _Key("task", "styles").bad(tk.styles, f"the z+ face ({t.shape[0]}x{t.shape[1]}) needs a voxel "
                                             f"per class and style ({n_cls} x {tk.styles})")
        lc = cfg.learning
        if lc.cost != "squared" or getattr(lc, "mode", "two_phase") != "two_phase":
            raise _Key("task", "styles").bad(tk.styles, "needs [learning] cost = \"squared\" and mode = "
                                             "\"two_phase\" (the style targets are per-voxel rates)")
    return replace(cfg, dynamics=replace(cfg.dynamics, init=None))


def _to_dict(obj) -> dict:
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if v is None:
            continue
        if isinstance(v, Region):
            v = v.to_dict()
        elif hasattr(v, "__dataclass_fields__"):
            v = _to_dict(v)
        elif isinstance(v, tuple):
            v = [_to_dict(x) if hasattr(x, "__dataclass_fields__") else x for x in v]
        out[f.name] = v
    return out


# ------------------------------------------------------------------ loading
def load_config(source) -> RunConfig:
    """Validate a run config given as a TOML path, a TOML string or a dict.

    A ``str`` naming an existing file or ending in ``.toml`` is read as a path;
    any other ``str`` is parsed as TOML text.

    Raises
    ------
    ConfigError
        One line naming the key and what it allows (also for unreadable files
        and TOML syntax errors).
    """
    if isinstance(source, Mapping):
        raw = source
    else:
        is_path = isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and (
            source.endswith(".toml") or Path(source).exists()))
        if is_path:
            path = Path(source)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                raise ConfigError(f"cannot read {path}: {reason}") from None
            where = f"{path}: "
        else:
            text, where = str(source), ""
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{where}invalid TOML: {err}") from None
    cfg = _build(RunConfig, raw, _Key())
    return _cross_checks(cfg, raw)


def to_toml(cfg: RunConfig | Mapping) -> str:
    """Write a config (or its canonical dict) as TOML text that loads back to it."""
    d = cfg.to_dict() if isinstance(cfg, RunConfig) else dict(cfg)

    def val(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, Mapping):
            return "{" + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return str(v)

    lines = [f"{k} = {val(v)}" for k, v in d.items() if not isinstance(v, Mapping)]
    for sec, body in d.items():
        if not isinstance(body, Mapping):
            continue
        lines += ["", f"[{sec}]"]
        lines += [f"{k} = {val(v)}" for k, v in body.items()
                  if not (isinstance(v, list) and v and isinstance(v[0], Mapping))]
        for k, v in body.items():
            if isinstance(v, list) and v and isinstance(v[0], Mapping):
                for item in v:
                    lines += ["", f"[[{sec}.{k}]]"] + [f"{a} = {val(b)}" for a, b in item.items()]
    return "\n".join(lines) + "\n"


def describe() -> str:
    """The schema as text: every section and key with its default and what it allows."""
    lines = []

    def walk(cls, title):
        doc = " ".join((cls.__doc__ or "").split("\n\n")[0].split())
        doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc)   # drop reST roles
        lines.append(f"{title}  # {doc.split(': ', 1)[-1]}")
        for f in fields(cls):
            s = f.metadata["spec"]
            if s.kind in ("section", "tables"):
                continue
            if s.default is REQUIRED:
                default = "required"
            elif s.default is None:
                default = "optional"
            else:
                d = list(s.default) if isinstance(s.default, tuple) else s.default
                default = f"default {_fmt(d)}"
            lines.append(f"  {f.name}: {s.allowed()}; {default}. {s.doc}")
        for f in fields(cls):
            s = f.metadata["spec"]
            if s.kind == "section":
                walk(s.cls, f"[{f.name}]")
            elif s.kind == "tables":
                walk(s.cls, f"[[{title.strip('[]')}.{f.name}]]")

    walk(RunConfig, "(top level)")
    return "\n".join(lines)
