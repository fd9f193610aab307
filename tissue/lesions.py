"""Lesions: kill neurons (a random fraction, a ball, a slab, any region), cut synapses, add weight noise.

A killed neuron stops taking part: :meth:`tissue.Tissue.kill` removes its
synapses from the table (both slots of each), zeroes its bias and clears its
``alive`` bit, so the integrator clamps it at rest (``s = 0``). Its voxel keeps
its index (and role), so records keep their ``(x, y, z)`` dims and a later
neurogenesis step can bring a neuron back there.

Every function takes an optional :class:`LesionLog` and appends what it did:
which voxels or synapses, when (a label chosen by the caller, e.g. an epoch),
and how (the kind and its parameters). :meth:`LesionLog.to_dataset` turns the
log into an ``xarray.Dataset`` for a results store::

    log_neurons, log_synapses        (lesion)     int  neurons killed, synapses removed
    log_noise                        (lesion)     float  std of the added weight noise
    lesioned_by                      (x, y, z)    int  the lesion that killed the voxel, -1: none
    attrs["lesion_log"]              JSON list: kind, when, params, neurons, synapses, noise

(``log_`` is the default ``prefix``; it keeps the names clear of sweep dims such as
``lesion_kind``. Text goes to the attribute so that results of many runs combine.)

Randomness comes from ``numpy.random.default_rng(seed)``: the same seed kills
the same neurons. :func:`kill_fraction` draws one permutation of the candidates
per seed, so a larger fraction with the same seed kills a superset of a smaller
one (nested lesions, as :func:`studies.baselines.ablate_mlp_hidden` does for the
MLP).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .core import HIDDEN, INPUT, OUTPUT, ROLES

__all__ = ["KINDS", "Lesion", "LesionLog", "candidates", "cut_synapses", "kill_ball", "kill_fraction",
           "kill_region", "kill_slab", "weight_noise"]

KINDS = ("random", "ball", "slab", "region", "synapses", "noise")
_ROLE_CODE = {"hidden": HIDDEN, "input": INPUT, "output": OUTPUT}


@dataclass
class Lesion:
    """One lesion: ``kind`` (see :data:`KINDS`), ``when`` (a caller's label), ``params``
    (how, JSON-able), ``voxels`` (neurons killed, sorted), ``synapses`` (removed pairs
    ``(2, m)``), ``noise`` (std of added weight noise, 0 for none)."""

    kind: str
    when: str
    params: dict
    voxels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    synapses: np.ndarray = field(default_factory=lambda: np.zeros((2, 0), np.int64))
    n_synapses: int = 0
    noise: float = 0.0

    @property
    def n_neurons(self) -> int:
        return len(self.voxels)


class LesionLog:
    """Every lesion applied to a tissue, in order (see the module doc)."""

    def __init__(self):
        self.records: list[Lesion] = []

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def append(self, lesion: Lesion) -> Lesion:
        self.records.append(lesion)
        return lesion

    def killed(self, n: int) -> np.ndarray:
        """``(n,)`` int: index of the lesion that killed each voxel, -1 for none."""
        out = np.full(n, -1, np.int64)
        for k, rec in enumerate(self.records):
            out[rec.voxels] = k
        return out

    def as_dicts(self) -> list[dict]:
        """The records as JSON-able dicts (``kind``, ``when``, ``params``, ``neurons`` (count),
        ``synapses`` (count), ``noise``, ``voxels`` (indices))."""
        return [{"kind": r.kind, "when": r.when, "params": r.params, "neurons": r.n_neurons,
                 "synapses": int(r.n_synapses), "noise": float(r.noise), "voxels": r.voxels.tolist()}
                for r in self.records]

    def to_dataset(self, lattice, prefix: str = "log"):
        """The log as an ``xarray.Dataset``: numeric variables over ``lesion``, the map
        ``lesioned_by (x, y, z)``, and the records as JSON in the attribute ``lesion_log``
        (text lives in attributes, so Datasets of many runs combine as numbers)."""
        import xarray as xr

        recs = self.records
        data = {
            f"{prefix}_neurons": ("lesion", np.array([r.n_neurons for r in recs], dtype=np.int64),
                                  {"long_name": "neurons killed", "units": "1"}),
            f"{prefix}_synapses": ("lesion", np.array([r.n_synapses for r in recs], dtype=np.int64),
                                   {"long_name": "synapses removed", "units": "1"}),
            f"{prefix}_noise": ("lesion", np.array([r.noise for r in recs], dtype=np.float64),
                                {"long_name": "standard deviation of the added weight noise", "units": "1"}),
            "lesioned_by": (("x", "y", "z"), lattice.grid(self.killed(lattice.size)),
                            {"long_name": "index of the lesion that killed the voxel (-1: none)", "units": "1",
                             "comment": "lesion k is entry k of the root attribute lesion_log"}),
        }
        log = [{k: v for k, v in d.items() if k != "voxels"} for d in self.as_dicts()]
        return xr.Dataset(data, coords={"lesion": np.arange(len(recs))},
                          attrs={"lesion_log": json.dumps(log, sort_keys=True)})


# ------------------------------------------------------------------ neurons
def _roles(roles) -> np.ndarray:
    if isinstance(roles, str):
        roles = (roles,)
    bad = [r for r in roles if r not in _ROLE_CODE]
    if bad or not roles:
        raise ValueError(f"roles must be a non-empty list among {ROLES}, got {roles!r}")
    return np.array([_ROLE_CODE[r] for r in roles], dtype=np.int8)


def candidates(tissue, roles=("hidden",), region=None) -> np.ndarray:
    """Living neurons with one of ``roles`` (inside ``region`` if given), sorted."""
    mask = tissue.alive & np.isin(tissue.role, _roles(roles))
    if region is not None:
        mask &= tissue.lattice.mask(tissue._region(region))
    return np.flatnonzero(mask)


def _record(log, kind, when, params, voxels, n_syn):
    rec = Lesion(kind, str(when), params, np.asarray(voxels, np.int64), n_synapses=int(n_syn))
    if log is not None:
        log.append(rec)
    return rec


def _kill(tissue, voxels) -> tuple[np.ndarray, int]:
    before = tissue.syn.n_synapses
    dead = tissue.kill(voxels)
    return dead, before - tissue.syn.n_synapses


def kill_region(tissue, region, roles=("hidden",), log=None, when="", kind: str = "region",
                params: dict | None = None) -> Lesion:
    """Kill the living neurons of ``region`` that have one of ``roles``.

    Parameters
    ----------
    tissue : Tissue
    region : array of voxel indices
    roles : sequence of {"hidden", "input", "output"}
        Which neurons of the region may die (default: hidden only, so the task's
        input and output stay in place).
    log : LesionLog, optional
    when : str
        A label stored with the record (e.g. ``"epoch 40"``).

    Returns
    -------
    Lesion
        ``voxels``: the neurons killed.
    """
    victims = candidates(tissue, roles, region)
    dead, n_syn = _kill(tissue, victims)
    p = {"roles": list(roles) if not isinstance(roles, str) else [roles], **(params or {})}
    return _record(log, kind, when, p, dead, n_syn)


def kill_fraction(tissue, fraction: float, seed: int = 0, roles=("hidden",), region=None, log=None,
                  when="") -> Lesion:
    """Kill ``round(fraction * n)`` of the ``n`` living neurons with ``roles`` (in ``region``),
    drawn without replacement (the first of a seeded permutation)."""
    if not (isinstance(fraction, (int, float)) and 0 <= fraction <= 1):
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    pool = candidates(tissue, roles, region)
    k = int(round(fraction * len(pool)))  # noqa: RUF046 (fraction may be a numpy float)
    victims = np.sort(np.random.default_rng(seed).permutation(pool)[:k])
    dead, n_syn = _kill(tissue, victims)
    p = {"fraction": float(fraction), "seed": int(seed), "pool": len(pool),
         "roles": [roles] if isinstance(roles, str) else list(roles)}
    if region is not None:
        p["region_size"] = len(np.unique(region))
    return _record(log, "random", when, p, dead, n_syn)


def kill_ball(tissue, center, radius: float, roles=("hidden",), log=None, when="") -> Lesion:
    """Kill the neurons (with ``roles``) whose voxel centre lies within ``radius`` of ``center``."""
    region = tissue.lattice.ball(center, radius)
    return kill_region(tissue, region, roles, log, when, kind="ball",
                       params={"center": [float(c) for c in center], "radius": float(radius)})


def kill_slab(tissue, axis, lo: int, hi: int | None = None, roles=("hidden",), log=None, when="") -> Lesion:
    """Kill the neurons (with ``roles``) with ``lo <= coordinate[axis] < hi``."""
    region = tissue.lattice.slab(axis, lo, hi)
    return kill_region(tissue, region, roles, log, when, kind="slab",
                       params={"axis": axis, "lo": int(lo), "hi": int(lo + 1 if hi is None else hi)})


# ------------------------------------------------------------------ synapses
def cut_synapses(tissue, fraction: float, seed: int = 0, log=None, when="") -> Lesion:
    """Remove ``round(fraction * m)`` of the ``m`` synapses, drawn without replacement."""
    if not (isinstance(fraction, (int, float)) and 0 <= fraction <= 1):
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    i, j, _ = tissue.syn.edges()
    k = int(round(fraction * len(i)))  # noqa: RUF046 (fraction may be a numpy float)
    pick = np.sort(np.random.default_rng(seed).permutation(len(i))[:k])
    for a, b in zip(i[pick].tolist(), j[pick].tolist()):
        tissue.syn.remove(a, b)
    rec = Lesion("synapses", str(when), {"fraction": float(fraction), "seed": int(seed), "of": len(i)},
                 synapses=np.stack([i[pick], j[pick]]), n_synapses=k)
    if log is not None:
        log.append(rec)
    return rec


def weight_noise(tissue, std: float, seed: int = 0, relative: bool = True, log=None, when="") -> Lesion:
    """Add gaussian noise to every synapse, the same draw on both slots (weights stay symmetric).

    With ``relative`` the noise's standard deviation is ``std`` times the standard
    deviation of the current weights; otherwise ``std`` itself.
    """
    if not (isinstance(std, (int, float)) and np.isfinite(std) and std >= 0):
        raise ValueError(f"noise std must be a finite number >= 0, got {std!r}")
    syn = tissue.syn
    i, k = np.nonzero(syn.nbr >= 0)
    j = syn.nbr[i, k].astype(np.int64)
    half = i < j
    i, k, j = i[half], k[half], j[half]
    sigma = float(std) * (float(np.std(syn.w[i, k])) if relative and len(i) else 1.0)
    eps = np.random.default_rng(seed).normal(0.0, sigma, size=len(i)).astype(syn.w.dtype)
    syn.w[i, k] += eps
    syn.w[j, syn.rev[i, k]] = syn.w[i, k]
    rec = Lesion("noise", str(when), {"std": float(std), "relative": bool(relative), "seed": int(seed)},
                 noise=sigma)
    if log is not None:
        log.append(rec)
    return rec
