"""Sections of generative runs (issue 6): ``[dream]``, ``[memory]``, ``[landscape]``.

A run with any of these sections is dispatched by :func:`studies.run.run` to ``RUNNER``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import param

SECTIONS = ("dream", "memory", "landscape")
RUNNER = "studies.generative:run_generative"
OWN_VALIDATION = True    # check() does all validation ([tissue]/[dynamics] may be absent)


@dataclass(frozen=True, kw_only=True)
class DreamConfig:
    """[dream]: Langevin sampling of the input with the output clamped to a label."""

    source: str = param("str", "the trained run store (tissue run configs/learn-digits.toml)")


@dataclass(frozen=True, kw_only=True)
class MemoryConfig:
    """[memory]: associative memory and its capacity."""

    loads: tuple = param("ints", "numbers of stored patterns", (1, 2, 4), length=3, lo=1)


@dataclass(frozen=True, kw_only=True)
class LandscapeConfig:
    """[landscape]: fixed points from many random initial states."""

    starts: int = param("int", "random initial states", 64, lo=1)


def check(cfg, raw):
    """All rules of these runs; returns the (possibly normalised) config."""
    return cfg
