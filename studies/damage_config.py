"""Sections of damage and recovery runs (issue 5): ``[lesion]``, ``[structural]``, ``[recovery]``.

A run with any of these sections is dispatched by :func:`studies.run.run` to ``RUNNER``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import param

SECTIONS = ("lesion", "structural", "recovery")
RUNNER = "studies.recovery:run_recovery"
OWN_VALIDATION = False   # the base checks ([tissue], [dynamics], [learning]) run first


@dataclass(frozen=True, kw_only=True)
class LesionConfig:
    """[lesion]: the damage applied to a trained tissue."""

    fraction: float = param("float", "fraction of hidden neurons killed", 0.2, lo=0, hi=1)


@dataclass(frozen=True, kw_only=True)
class StructuralConfig:
    """[structural]: pruning, synaptogenesis and neurogenesis (plasticity.structural)."""

    every: int = param("int", "batches between structural steps", 10, lo=1)


@dataclass(frozen=True, kw_only=True)
class RecoveryConfig:
    """[recovery]: continued learning after the lesion."""

    epochs: int = param("int", "epochs of recovery learning", 2, lo=1)


def check(cfg, raw):
    """Cross-key rules of these sections; returns the (possibly normalised) config."""
    return cfg
