"""Sections of limit-cycle runs (issue 7): ``[oscillators]``, ``[entrain]``, ``[phase_memory]``,
``[xy_learning]``.

A run with any of these sections is dispatched by :func:`studies.run.run` to ``RUNNER``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import param

SECTIONS = ("oscillators", "entrain", "phase_memory", "xy_learning")
RUNNER = "studies.oscillate:run_oscillators"
OWN_VALIDATION = True    # check() does all validation ([dynamics] phases do not apply)


@dataclass(frozen=True, kw_only=True)
class OscillatorsConfig:
    """[oscillators]: the model and its integrator."""

    model: str = param("choice", "Stuart-Landau (complex z) or Kuramoto (phases)", "kuramoto",
                       choices=("stuart_landau", "kuramoto"))


@dataclass(frozen=True, kw_only=True)
class EntrainConfig:
    """[entrain]: an Arnold-tongue map of locking against detuning and drive strength."""

    points: int = param("int", "grid points per axis", 9, lo=2)


@dataclass(frozen=True, kw_only=True)
class PhaseMemoryConfig:
    """[phase_memory]: phase patterns stored by a complex outer-product rule."""

    patterns: int = param("int", "stored phase patterns", 3, lo=1)


@dataclass(frozen=True, kw_only=True)
class XYLearningConfig:
    """[xy_learning]: Equilibrium Propagation on the XY energy."""

    epochs: int = param("int", "passes over the training set", 10, lo=1)


def check(cfg, raw):
    """All rules of these runs; returns the (possibly normalised) config."""
    return cfg
