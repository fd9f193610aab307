"""Sections of generative runs (issue 6): ``[dream]``, ``[memory]``, ``[landscape]``.

A run with any of these sections is dispatched by :func:`studies.run.run` to ``RUNNER``
(:func:`studies.generative.run_generative`). These runs build or load their own tissues, so
``check`` does all validation: ``[tissue]``, ``[dynamics]``, ``[task]`` and ``[learning]`` are
refused here (a dream reads the trained tissue, its task and its training targets from the
learning run store named by ``[dream] source``).

``source`` paths: an absolute path, or a path relative to the current working directory of
the process that runs the config (``tissue run`` is usually started from the repository root).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .schema import ConfigError, _Key, param

SECTIONS = ("dream", "memory", "landscape")
RUNNER = "studies.generative:run_generative"
OWN_VALIDATION = True    # check() does all validation ([tissue]/[dynamics] may be absent)

_FOREIGN = ("tissue", "dynamics", "task", "learning", "patterns", "input", "homeostasis", "baselines")


@dataclass(frozen=True, kw_only=True)
class AnnealPhase:
    """[[dream.anneal]]: one phase of the annealing schedule."""

    temperature: float = param("float", "noise temperature T (noise sqrt(2 T dt)); 0 is gradient flow", lo=0)
    steps: int = param("int", "Langevin steps of this phase", lo=1)


@dataclass(frozen=True, kw_only=True)
class DreamConfig:
    """[dream]: Langevin sampling of the input with the output clamped to a label."""

    source: str = param("str", "the trained learning run store (tissue run configs/learn-digits-16.toml); "
                        "absolute, or relative to the current directory")
    chains: int = param("int", "independent chains per class", 8, lo=1)
    dt: float = param("float", "Langevin time step", 0.2, lo=0, lo_open=True)
    init: str = param("choice", "start of every chain: rest (0), uniform noise, or the mean training "
                      "image on the input face (hidden at rest)", "rest", choices=("rest", "random", "mean"))
    samples: int = param("int", "samples kept per chain from the last phase", 1, lo=1)
    thin: int = param("int", "steps between kept samples", 200, lo=1)
    anneal: tuple = param("tables", "annealing schedule: [[dream.anneal]] tables run in order",
                          (AnnealPhase(temperature=0.02, steps=2000),), cls=AnnealPhase)
    generative_epochs: int = param("int", "epochs of maximum-likelihood (Boltzmann) learning on a copy of "
                                   "the trained tissue before dreaming (0: dream the tissue as trained)", 0, lo=0)
    generative_lr: float = param("float", "learning rate of the generative epochs (Adam)", 3e-4, lo=0)
    generative_temperature: float = param("float", "temperature of the generative epochs' dream chains",
                                          0.02, lo=0, lo_open=True)
    generative_steps: int = param("int", "Langevin steps of the dream phase per mini-batch", 20, lo=1)
    classifier_lr: float = param("float", "learning rate of the EqProp steps interleaved with the generative "
                                 "ones (0: none)", 1e-3, lo=0)
    evaluate: bool = param("bool", "score the dreams with a logistic regression trained on the real digits "
                           "and their diversity against the real digits of each class", True)
    quench_steps: int = param("int", "also settle every chain's last sample at T = 0 for this many steps and "
                              "score those (quenched_*): is the dreams' diversity several minima or noise "
                              "around one? (0: skip)", 0, lo=0)


@dataclass(frozen=True, kw_only=True)
class MemoryConfig:
    """[memory]: associative memory and its capacity (plasticity.memory.capacity_curve)."""

    shape: tuple = param("ints", "voxels along x, y, z", (10, 10, 10), length=3, lo=2)
    stencil: int = param("choice", "neighbours per voxel", 26, choices=(6, 18, 26))
    rules: tuple = param("strs", "storage rules", ("hebbian",), choices=("hebbian", "eqprop"))
    load_min: int = param("int", "smallest number of stored patterns", 1, lo=1)
    load_max: int = param("int", "largest number of stored patterns", 12, lo=1)
    load_step: int = param("int", "step between loads", 1, lo=1)
    cue_fraction: float = param("float", "fraction of living voxels corrupted in a cue", 0.2, lo=0, hi=1)
    mode: str = param("choice", "corruption: flip the voxel or erase it to 0.5", "flip", choices=("flip", "erase"))
    trials: int = param("int", "cues per load (patterns taken in turn)", 16, lo=1)
    gain: float = param("float", "coupling strength of the Hebbian rule", 4.0, lo=0, lo_open=True)
    epochs: int = param("int", "EqProp epochs of the learned rule", 30, lo=1)
    threshold: float = param("float", "overlap that counts as retrieval", 0.95, lo=0, hi=1)


@dataclass(frozen=True, kw_only=True)
class LandscapeConfig:
    """[landscape]: fixed points from many random initial states (dynamics.landscape)."""

    starts: int = param("int", "random initial states", 256, lo=1)
    tol: float = param("float", "max-norm distance below which two end states are one fixed point",
                       1e-2, lo=0, lo_open=True)
    source: str = param("str", "a trained learning run store whose tissue is explored (with its output "
                        "clamped to `label`); empty: a Hebbian memory tissue (shape, stencil, patterns, gain)", "")
    label: int = param("int", "class clamped on the output of a source tissue", 0, lo=0)
    shape: tuple = param("ints", "voxels of the memory tissue", (8, 8, 8), length=3, lo=2)
    stencil: int = param("choice", "neighbours of the memory tissue", 26, choices=(6, 18, 26))
    patterns: int = param("int", "patterns stored in the memory tissue", 3, lo=1)
    gain: float = param("float", "Hebbian coupling strength", 4.0, lo=0, lo_open=True)
    max_steps: int = param("int", "step cap of every settle", 20000, lo=1)


def _source_path(value: str, key: _Key) -> Path:
    p = Path(value).expanduser()
    if not (p / "zarr.json").is_file():
        where = f" (relative to the current directory {Path.cwd()})" if not p.is_absolute() else ""
        raise key.bad(value, f"must name a trained learning run store; {p}{where} is not a zarr store "
                             f"(train one with: tissue run configs/learn-digits-styles.toml --out STORE, or learn-digits-16.toml)")
    import json

    import zarr

    attrs = dict(zarr.open_group(p, mode="r").attrs)
    cfg = attrs.get("config")
    cfg = json.loads(cfg) if isinstance(cfg, str) else cfg
    if not isinstance(cfg, dict) or "learning" not in cfg or attrs.get("status") != "complete":
        raise key.bad(value, f"must name a complete learning run store (status {attrs.get('status')!r}, "
                             f"kind {attrs.get('kind')!r})")
    if not (p / "tissue" / "zarr.json").is_file():
        raise key.bad(value, "the store holds no trained tissue (tissue/ group)")
    return p


def check(cfg, raw):
    """All rules of these runs; returns the config unchanged (raises ConfigError naming the key)."""
    for name in _FOREIGN:
        if getattr(cfg, name, None) is not None:
            present = [s for s in SECTIONS if getattr(cfg, s) is not None]
            raise ConfigError(f"section [{name}] does not belong in a generative run ([{present[0]}]); "
                              f"a dream reads its tissue and task from [dream] source; allowed sections: "
                              f"{', '.join(f'[{s}]' for s in SECTIONS)}, [record]")
    d = cfg.dream
    if d is not None:
        _source_path(d.source, _Key("dream", "source"))
        last = d.anneal[-1]
        if (d.samples - 1) * d.thin >= last.steps:
            raise _Key("dream", "samples").bad(
                d.samples, f"must fit the last [[dream.anneal]] phase: (samples - 1) * thin = "
                           f"{(d.samples - 1) * d.thin} must be < its steps ({last.steps})")
    m = cfg.memory
    if m is not None:
        if m.load_max < m.load_min:
            raise _Key("memory", "load_max").bad(m.load_max, f"must be >= load_min ({m.load_min})")
        n = m.shape[0] * m.shape[1] * m.shape[2]
        if n > 200_000:
            raise _Key("memory", "shape").bad(list(m.shape), "must hold at most 200000 voxels")
    la = cfg.landscape
    if la is not None:
        if la.source:
            _source_path(la.source, _Key("landscape", "source"))
        else:
            for key in ("label",):
                if key in raw.get("landscape", {}):
                    raise _Key("landscape", key).bad(la.label, "only applies with a source store")
        if la.tol < 1e-5:
            raise _Key("landscape", "tol").bad(la.tol, "must be >= 1e-5 (well above the settling tolerance 1e-7)")
    return cfg


