"""Sections of damage and recovery runs (issue 5): ``[lesion]``, ``[structural]``, ``[recovery]``.

A run with any of these sections is dispatched by :func:`studies.run.run` to ``RUNNER``
(:func:`studies.recovery.run_recovery`). It is a learning run as well: ``[tissue]``,
``[task]``, ``[learning]`` and ``[dynamics]`` describe the tissue that is trained (or
loaded, ``[recovery] trained``) before the lesion, and are checked by the base rules first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .schema import ConfigError, _Key, param

SECTIONS = ("lesion", "structural", "recovery")
RUNNER = "studies.recovery:run_recovery"
OWN_VALIDATION = False   # the base checks ([tissue], [dynamics], [learning]) run first

LESION_KINDS = ("random", "ball", "slab", "synapses", "noise")
ARMS = ("learn", "neurogenesis", "structural")
ROLES = ("hidden", "output")   # input voxels carry the images: the study does not remap them


@dataclass(frozen=True, kw_only=True)
class LesionConfig:
    """[lesion]: the damage applied to the trained tissue (tissue.lesions)."""

    kind: str = param("choice", "random: a fraction of the neurons with `roles`; ball: centre and radius; "
                      "slab: axis, lo, hi; synapses: a fraction of the synapses; noise: gaussian weight "
                      "noise of std `noise` x the weights' std", "random", choices=LESION_KINDS)
    fraction: float = param("float", "random: share of the neurons with `roles` killed; synapses: share of "
                            "the synapses removed", 0.2, lo=0, hi=1)
    roles: tuple = param("strs", "which neurons a neuron lesion may kill", ("hidden",), choices=ROLES)
    center: tuple | None = param("ints", "ball: centre voxel (default: the centre of the lattice)", None,
                                 length=3, lo=0)
    radius: float = param("float", "ball: radius in voxels", 3.0, lo=0)
    axis: str = param("choice", "slab: axis", "x", choices=("x", "y", "z"))
    lo: int = param("int", "slab: first layer", 0, lo=0)
    hi: int | None = param("int", "slab: end layer, exclusive (default lo + 1)", None, lo=1)
    noise: float = param("float", "noise: std of the weight noise relative to the weights' std", 0.5, lo=0)
    curve_max: float = param("float", "accuracy-against-damage curve (tissue and MLP, before retraining): "
                             "shares of hidden neurons killed at random from 0 up to this (0: skip it)",
                             0.5, lo=0, hi=1)
    curve_points: int = param("int", "points of that curve, evenly spaced from 0 to curve_max", 6, lo=2,
                              hi=101)


@dataclass(frozen=True, kw_only=True)
class StructuralConfig:
    """[structural]: pruning, synaptogenesis and neurogenesis (plasticity.structural)."""

    every: int = param("int", "batches between structural steps", 10, lo=1)
    homeostasis_every: int = param("int", "batches between scheduled Lipschitz-brake checks", 50, lo=1)
    prune_weight: float = param("float", "a silent synapse has |w| at most this", 0.02, lo=0)
    prune_dw: float = param("float", "... and a running |dw| per batch at most this", 2e-4, lo=0)
    prune_max: float = param("float", "share of the synapses pruned per structural step at most", 0.05,
                             lo=0, hi=1)
    prune_by: str = param("choice", "rank silent synapses by |w| (weight) or by |w| r_i r_j with r the "
                          "neurons' running RMS rates (activity; effect: the same and 0 between two clamped "
                          "inputs); prune_weight then bounds that effective weight",
                          "weight", choices=("weight", "activity", "effect"))
    rate_decay: float = param("float", "decay of the running mean squared rate per batch", 0.9, lo=0, hi=1)
    grow_radius: float = param("float", "new synapses join neurons at most this far apart (voxels)", 2.0,
                               lo=1, hi=8)
    grow_quantile: float = param("float", "loud neurons: running nudge at least this quantile", 0.9, lo=0, hi=1)
    grow_max: int = param("int", "synapses grown per structural step at most", 20, lo=0)
    grow_weight: float = param("float", "magnitude of a new synapse's weight", 0.01, lo=0)
    birth_radius: float = param("float", "new neurons are wired to living neighbours this close (voxels)",
                                1.75, lo=1, hi=8)
    birth_quantile: float = param("float", "birth sites: mean neighbour nudge at least this quantile", 0.5,
                                  lo=0, hi=1)
    birth_max: int = param("int", "neurons born per structural step at most", 8, lo=0)
    birth_weight: float = param("float", "new neurons' weights uniform in [-w, w] (gradmax: the same "
                                "root mean square, w / sqrt(3))", 0.05, lo=0)
    birth_init: str = param("choice", "random: small random weights; copy: a newborn starts as a copy of a living "
                            "in-plane neighbour moved by one voxel (its synapse at each offset takes the "
                            "neighbour's weight at that offset, and its bias); gradmax: its synapses to older neighbours "
                            "start along the direction learning amplifies fastest (top eigenvector of the "
                            "neighbours' nudge-rate correlation), at the random init's size", "random",
                            choices=("random", "copy", "gradmax"))
    birth_small_world: float = param("float", "share of a newborn's synapses that go to living neurons drawn "
                                     "uniformly from the whole tissue instead of its neighbours (as the "
                                     "tissue's own small_world synapses; 0: wired locally only)", 0.0, lo=0, hi=1)
    birth_lr: float = param("float", "heightened plasticity of newborns: their synapses and bias learn with "
                            "this many times the rate at birth, falling linearly to 1 over juvenile_steps "
                            "structural steps (1: off)", 1.0, lo=1)
    juvenile_steps: int = param("int", "structural steps over which a newborn's birth_lr falls back to 1", 10,
                                lo=1)
    nudge_decay: float = param("float", "decay of the running nudge per structural step", 0.5, lo=0, hi=1)
    dw_decay: float = param("float", "decay of the running |dw| per batch", 0.9, lo=0, hi=1)


@dataclass(frozen=True, kw_only=True)
class RecoveryConfig:
    """[recovery]: continued learning after the lesion, and the pruning experiment."""

    trained: str | None = param("str", "a trained learning-run store to start from instead of training "
                                "(`{seed}` is replaced by the seed); its stored config must have the same "
                                "seed, [tissue], [task], [learning] and [dynamics]", None)
    epochs: int = param("int", "epochs of recovery learning", 2, lo=1)
    evals_per_epoch: int = param("int", "test-set evaluations per recovery epoch (A(t) resolution)", 2, lo=1)
    arms: tuple = param("strs", "learn: EqProp only; neurogenesis: EqProp and births; structural: EqProp, "
                        "pruning, growth and births", ("learn", "neurogenesis"), choices=ARMS)
    lr: float | None = param("float", "recovery learning rate (default [learning] lr)", None, lo=0)
    optimizer: str | None = param("choice", "recovery optimizer (default [learning] optimizer); a fresh "
                                  "Adam moves every weight by about lr per step even on a converged "
                                  "tissue, plain SGD in proportion to the EqProp gradient", None,
                                  choices=("sgd", "adam"))
    schedule: str = param("choice", "recovery learning-rate schedule over its epochs (cosine: half a cosine "
                          "down to [learning] lr_final x lr, read once per epoch, so a 2-epoch recovery runs "
                          "its second epoch at half the rate; cosine_batch: read at every mini-batch, "
                          "reaching lr_final x lr at the last one)", "constant",
                          choices=("constant", "cosine", "cosine_batch"))
    warm_optimizer: bool = param("bool", "recovery and pruning continue the optimizer state the trained "
                                 "tissue ended its learning with (its per-synapse Adam moments, moved to "
                                 "the edited table) instead of starting a fresh Adam, whose first steps "
                                 "move every weight by about lr", False)
    control: bool = param("bool", "a control arm: the unlesioned trained tissue learns on exactly as the "
                          "learn arm does (how much the continued learning itself moves the accuracy)", False)
    mlp: bool = param("bool", "the backprop MLP side: same lesion fraction of its hidden units, retrained "
                      "epoch by epoch", True)
    prune_target: float = param("float", "pruning experiment on the trained tissue: share of the synapses "
                                "to remove (0: skip it)", 0.0, lo=0, hi=0.95)
    prune_epochs: int = param("int", "epochs of learning while pruning to prune_target", 2, lo=1)
    average: float = param("float", "Polyak averaging of the recovery and pruning: each weight and bias keeps a "
                           "running average of itself (decay per batch; 0.95 averages over about 20 batches), "
                           "and the accuracy is read, and the tissue kept, with the averages (0: off)", 0.0,
                           lo=0, hi=0.999)
    replicate: int = param("int", "replicate of the recovery and pruning: another number draws other seeds for "
                           "their trainers' mini-batch order and the structural rules, while the trained tissue and "
                           "the lesion stay those of seed (0: the seeds of seed itself)", 0, lo=0)
    prune_mode: str = param("choice", "gradual: silent synapses ([structural] prune_*) go every "
                            "[structural] every batches while the tissue learns, up to prune_target; oneshot: "
                            "the prune_target share of smallest saliency ([structural] prune_by; rates from "
                            "the free fixed points of the training set) goes at once, then the tissue "
                            "fine-tunes for prune_epochs", "gradual", choices=("gradual", "oneshot"))
    prune_teacher: bool = param("bool", "the pruned tissue learns towards the trained tissue's own free output "
                                "rates on each training digit (distillation from its intact self) instead of "
                                "the one-hot class targets", False)


def check(cfg, raw):
    """Cross-key rules of these sections; returns the (possibly normalised) config."""
    if cfg.learning is None or cfg.task is None:
        raise ConfigError("a damage run ([lesion], [structural], [recovery]) needs [task] and [learning] "
                          "(the tissue it lesions is trained, or loaded with [recovery] trained)")
    if cfg.lesion is None:
        cfg = replace(cfg, lesion=LesionConfig())
    if cfg.structural is None:
        cfg = replace(cfg, structural=StructuralConfig())
    if cfg.recovery is None:
        cfg = replace(cfg, recovery=RecoveryConfig())
    les, raw_l = cfg.lesion, raw.get("lesion", {})
    shape = cfg.tissue.shape
    # keys of another kind are errors unless they hold their default (the canonical form of a
    # config lists every key, and must load again)
    default = LesionConfig()
    only = {"center": ("ball",), "radius": ("ball",), "axis": ("slab",), "lo": ("slab",), "hi": ("slab",),
            "noise": ("noise",), "fraction": ("random", "synapses"), "roles": ("random", "ball", "slab")}
    for key, kinds in only.items():
        if key in raw_l and les.kind not in kinds and getattr(les, key) != getattr(default, key):
            allowed = " or ".join(f'"{k}"' for k in kinds)
            raise _Key("lesion", key).bad(raw_l[key], f"only with kind = {allowed} (kind is \"{les.kind}\")")
    if les.center is not None and any(c >= n for c, n in zip(les.center, shape)):
        raise _Key("lesion", "center").bad(list(les.center), f"must lie in the lattice {list(shape)}")
    if les.kind == "slab":
        n = shape["xyz".index(les.axis)]
        hi = les.lo + 1 if les.hi is None else les.hi
        if not les.lo < hi <= n:
            raise _Key("lesion", "hi" if les.hi is not None else "lo").bad(
                les.hi if les.hi is not None else les.lo,
                f"slab along {les.axis} must be a non-empty part of [0, {n})")
    rc = cfg.recovery
    if rc.trained is not None:
        try:
            rc.trained.format(seed=0)
        except (KeyError, IndexError, ValueError):
            raise _Key("recovery", "trained").bad(rc.trained, "may hold no placeholder but {seed}") from None
    if not math.isfinite(cfg.structural.prune_weight):
        raise _Key("structural", "prune_weight").bad(cfg.structural.prune_weight, "must be finite")
    if rc.warm_optimizer and ((rc.optimizer or cfg.learning.optimizer) != cfg.learning.optimizer
                              or cfg.learning.optimizer != "adam"):
        raise _Key("recovery", "warm_optimizer").bad(
            rc.warm_optimizer, f"needs the recovery optimizer to be the learning's, and that \"adam\" "
            f"(they are {rc.optimizer or cfg.learning.optimizer!r} and {cfg.learning.optimizer!r})")
    return cfg
