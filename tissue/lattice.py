"""The voxel lattice: shape, spacing, index <-> coordinates and named regions.

Every voxel has a fixed integer index in C order over ``(x, y, z)``::

    index = (x * ny + y) * nz + z

Indices never move: neurogenesis and death flip bits of an ``alive`` mask
(see :class:`tissue.Tissue`), so a trajectory keeps its ``(x, y, z)`` dims
across growth and damage.

A *region* is a sorted, duplicate-free ``int64`` array of voxel indices.
Regions are built by :meth:`Lattice.face`, :meth:`Lattice.box`,
:meth:`Lattice.ball` and :meth:`Lattice.slab`, and combined with the usual
NumPy set functions (``np.union1d``, ``np.setdiff1d``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AXES = ("x", "y", "z")
FACES = ("x-", "x+", "y-", "y+", "z-", "z+")


def _axis(axis) -> int:
    if isinstance(axis, str):
        if axis not in AXES:
            raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
        return AXES.index(axis)
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    return int(axis)


@dataclass(frozen=True)
class Lattice:
    """A 3D grid of ``nx * ny * nz`` voxels.

    Parameters
    ----------
    shape : tuple of 3 ints
        Number of voxels along x, y and z (each >= 1).
    spacing : float
        Physical edge length of a voxel (used by :attr:`positions` and by
        radius-based wiring, which is expressed in voxel units).
    """

    shape: tuple[int, int, int]
    spacing: float = 1.0

    def __post_init__(self):
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 3 or any(n < 1 for n in shape):
            raise ValueError(f"shape must be three positive integers, got {self.shape!r}")
        if not np.isfinite(self.spacing) or self.spacing <= 0:
            raise ValueError(f"spacing must be a positive number, got {self.spacing!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", float(self.spacing))

    # ----------------------------------------------------------------- basics
    @property
    def size(self) -> int:
        """Number of voxels."""
        nx, ny, nz = self.shape
        return nx * ny * nz

    def index(self, x, y, z) -> np.ndarray:
        """Voxel index of integer coordinates (arrays broadcast)."""
        x, y, z = (np.asarray(a, dtype=np.int64) for a in (x, y, z))
        nx, ny, nz = self.shape
        if np.any((x < 0) | (x >= nx) | (y < 0) | (y >= ny) | (z < 0) | (z >= nz)):
            raise IndexError(f"coordinates outside the lattice of shape {self.shape}")
        return (x * ny + y) * nz + z

    def coords(self, index=None) -> np.ndarray:
        """Integer ``(n, 3)`` coordinates of voxel indices (all voxels by default)."""
        if index is None:
            index = np.arange(self.size)
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.size):
            raise IndexError(f"voxel index outside [0, {self.size})")
        return np.stack(np.unravel_index(index, self.shape), axis=-1).astype(np.int64)

    @property
    def positions(self) -> np.ndarray:
        """Physical ``(size, 3)`` voxel-centre positions (coords * spacing)."""
        return self.coords() * self.spacing

    def grid(self, values: np.ndarray) -> np.ndarray:
        """Reshape a per-voxel array ``(size, ...)`` to ``(nx, ny, nz, ...)``."""
        values = np.asarray(values)
        return values.reshape(self.shape + values.shape[1:])

    # ---------------------------------------------------------------- regions
    def _from_mask(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask.reshape(-1)).astype(np.int64)

    def _check_box(self, lo, hi):
        for a, (l, h, n) in enumerate(zip(lo, hi, self.shape)):
            if not (0 <= l < h <= n):
                raise ValueError(
                    f"box along {AXES[a]} is [{l}, {h}) but must lie in [0, {n}) and be non-empty"
                )

    def box(self, lo, hi) -> np.ndarray:
        """Voxels with ``lo <= (x, y, z) < hi`` (half-open, like slicing)."""
        lo = tuple(int(v) for v in lo)
        hi = tuple(int(v) for v in hi)
        if len(lo) != 3 or len(hi) != 3:
            raise ValueError("box corners must have three coordinates")
        self._check_box(lo, hi)
        mask = np.zeros(self.shape, dtype=bool)
        mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
        return self._from_mask(mask)

    def slab(self, axis, lo: int, hi: int | None = None) -> np.ndarray:
        """Voxels with ``lo <= coordinate[axis] < hi`` (``hi`` defaults to ``lo + 1``)."""
        a = _axis(axis)
        hi = lo + 1 if hi is None else hi
        box_lo = [0, 0, 0]
        box_hi = list(self.shape)
        box_lo[a], box_hi[a] = int(lo), int(hi)
        return self.box(box_lo, box_hi)

    def face(self, name: str, depth: int = 1) -> np.ndarray:
        """The outer ``depth`` layers on one face: ``"x-"``, ``"x+"``, ..., ``"z+"``."""
        if name not in FACES:
            raise ValueError(f"face must be one of {FACES}, got {name!r}")
        a = AXES.index(name[0])
        n = self.shape[a]
        if not 1 <= depth <= n:
            raise ValueError(f"face depth must be in [1, {n}], got {depth}")
        return self.slab(a, 0, depth) if name[1] == "-" else self.slab(a, n - depth, n)

    def ball(self, center, radius: float) -> np.ndarray:
        """Voxels whose centre lies within ``radius`` (voxel units) of ``center``."""
        c = np.asarray(center, dtype=float)
        if c.shape != (3,) or not np.all(np.isfinite(c)):
            raise ValueError(f"ball centre must be three finite numbers, got {center!r}")
        if np.any(c < 0) or np.any(c > np.asarray(self.shape) - 1):
            raise ValueError(f"ball centre {tuple(float(v) for v in c)} lies outside the lattice {self.shape}")
        if not np.isfinite(radius) or radius < 0:
            raise ValueError(f"ball radius must be >= 0, got {radius!r}")
        d2 = ((self.coords() - c) ** 2).sum(axis=1)
        return np.flatnonzero(d2 <= radius**2 + 1e-9).astype(np.int64)

    def mask(self, region) -> np.ndarray:
        """Boolean ``(size,)`` mask of a region."""
        m = np.zeros(self.size, dtype=bool)
        m[np.asarray(region, dtype=np.int64)] = True
        return m

    def bounding_box(self, region) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Half-open bounding box ``(lo, hi)`` of a non-empty region."""
        c = self.coords(region)
        if len(c) == 0:
            raise ValueError("empty region has no bounding box")
        return tuple(int(v) for v in c.min(0)), tuple(int(v) + 1 for v in c.max(0))
