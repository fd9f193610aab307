"""Wiring: a padded neighbour table of symmetric synapses, and its builders.

Like a molecular-dynamics neighbour list, the synapses of ``N`` voxels live in
three ``(N, K)`` arrays:

``nbr``  int32, the index of the presynaptic voxel, ``-1`` for an empty slot;
``w``    float, the weight (0 in empty slots);
``rev``  int32, the slot of the reverse synapse: ``nbr[nbr[i, k], rev[i, k]] == i``;

and ``deg`` (N,) int32, the number of synapses of each row. Rows are *compact*:
the synapses of row ``i`` fill slots ``0 .. deg[i] - 1`` and every later slot is
empty, so kernels loop ``for k in range(deg[i])`` with no test on ``-1``.

A settling kernel reads row ``i`` only ("pull"), so it runs in parallel over
neurons without races, and one load of ``nbr``/``w`` serves every trial of a
batch. Symmetry is a property of the table (``w[i, k] == w[j, rev[i, k]]``)
kept by every edit; :meth:`Synapses.check` verifies it. Edits (adding or
removing synapses) touch two slots and never rebuild the table; ``K`` grows
only when a row is full.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp

from .lattice import Lattice

STENCILS = (6, 18, 26)
INIT_SCHEMES = ("uniform", "normal", "constant", "zero")


# ------------------------------------------------------------------ offsets
def stencil_offsets(stencil: int) -> np.ndarray:
    """The ``(stencil, 3)`` integer offsets of a 6-, 18- or 26-neighbour stencil."""
    if stencil not in STENCILS:
        raise ValueError(f"stencil must be one of {STENCILS}, got {stencil!r}")
    max_sq = {6: 1, 18: 2, 26: 3}[stencil]
    offs = [o for o in itertools.product((-1, 0, 1), repeat=3) if 0 < sum(v * v for v in o) <= max_sq]
    return np.array(offs, dtype=np.int64)


def radius_offsets(radius: float) -> np.ndarray:
    """All non-zero integer offsets with Euclidean length <= ``radius`` (voxel units)."""
    if not np.isfinite(radius) or radius < 1:
        raise ValueError(f"radius must be >= 1 voxel, got {radius!r}")
    r = int(np.floor(radius))
    rng = np.arange(-r, r + 1)
    o = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), axis=-1).reshape(-1, 3)
    d2 = (o**2).sum(1)
    return o[(d2 > 0) & (d2 <= radius**2 + 1e-9)]


def _half(offsets: np.ndarray) -> np.ndarray:
    """One offset of each +/- pair (the lexicographically positive one)."""
    keep = [o for o in offsets if tuple(o) > (0, 0, 0)]
    return np.array(keep, dtype=np.int64).reshape(-1, 3)


def lattice_edges(lattice: Lattice, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges ``(u, v)`` joining every voxel to ``voxel + offset``."""
    coords = lattice.coords()
    shape = np.asarray(lattice.shape)
    us, vs = [], []
    for o in _half(offsets):
        c = coords + o
        ok = np.all((c >= 0) & (c < shape), axis=1)
        u = np.flatnonzero(ok)
        v = lattice.index(c[ok, 0], c[ok, 1], c[ok, 2])
        us.append(u)
        vs.append(v)
    if not us:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(us), np.concatenate(vs)


def _pair_keys(u, v, n):
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    return lo.astype(np.int64) * n + hi


def small_world_rewire(u, v, n, fraction, rng, exclude=None):
    """Rewire ``fraction`` of the edges: keep ``u``, move ``v`` to a random voxel.

    The new partner is drawn uniformly among voxels not yet joined to ``u`` (no
    self-loops, no duplicates). ``exclude`` (bool mask) lists voxels that may not
    receive a rewired synapse (e.g. dead voxels). Vectorised: invalid draws are
    redrawn until none is left.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"small_world fraction must be in [0, 1], got {fraction!r}")
    u = np.asarray(u, dtype=np.int64).copy()
    v = np.asarray(v, dtype=np.int64).copy()
    m = len(u)
    n_rew = int(round(fraction * m))
    if n_rew == 0:
        return u, v
    pick = np.sort(rng.choice(m, size=n_rew, replace=False))
    keep = np.ones(m, dtype=bool)
    keep[pick] = False
    kept_keys = np.sort(_pair_keys(u[keep], v[keep], n))
    allowed = np.flatnonzero(~exclude) if exclude is not None else np.arange(n)
    todo = pick
    done_keys = np.zeros(0, dtype=np.int64)
    for _ in range(100):
        k = allowed[rng.integers(len(allowed), size=len(todo))]
        keys = _pair_keys(u[todo], k, n)
        pos = np.searchsorted(kept_keys, keys).clip(max=max(len(kept_keys) - 1, 0))
        clash = (k == u[todo]) | (kept_keys[pos] == keys if len(kept_keys) else False)
        clash |= np.isin(keys, done_keys)
        # among the new draws themselves, keep the first of each key
        _, first = np.unique(keys, return_index=True)
        dup = np.ones(len(keys), dtype=bool)
        dup[first] = False
        clash |= dup
        ok = ~clash
        v[todo[ok]] = k[ok]
        done_keys = np.union1d(done_keys, keys[ok])
        todo = todo[clash]
        if len(todo) == 0:
            break
    else:  # pragma: no cover - only on nearly complete graphs
        raise RuntimeError("small-world rewiring found no free partner; lower the fraction")
    return u, v


def init_weights(m: int, scheme: str, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Draw ``m`` symmetric-synapse weights: ``uniform`` on [-scale, scale],
    ``normal`` with std ``scale``, ``constant`` equal to ``scale``, or ``zero``."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"weight init must be one of {INIT_SCHEMES}, got {scheme!r}")
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"weight scale must be a finite number >= 0, got {scale!r}")
    if scheme == "uniform":
        return rng.uniform(-scale, scale, size=m)
    if scheme == "normal":
        return rng.normal(0.0, scale, size=m)
    if scheme == "constant":
        return np.full(m, float(scale))
    return np.zeros(m)


# ------------------------------------------------------------------- table
class Synapses:
    """Symmetric synapses of ``n`` voxels in a padded neighbour table.

    Build one with :meth:`from_edges`; read ``nbr``, ``w`` and ``rev`` directly
    in kernels. Every edit keeps the table symmetric and duplicate-free.
    """

    def __init__(self, nbr: np.ndarray, w: np.ndarray, rev: np.ndarray):
        self.nbr = np.ascontiguousarray(nbr, dtype=np.int32)
        self.w = np.ascontiguousarray(w)
        self.rev = np.ascontiguousarray(rev, dtype=np.int32)
        if not (self.nbr.shape == self.w.shape == self.rev.shape and self.nbr.ndim == 2):
            raise ValueError("nbr, w and rev must be (N, K) arrays of one shape")
        occ = self.nbr >= 0
        self.deg = occ.sum(axis=1).astype(np.int32)
        if not np.array_equal(occ, np.arange(self.width)[None, :] < self.deg[:, None]):
            raise ValueError("synapse rows must be compact (occupied slots first)")

    # ----------------------------------------------------------- construction
    @classmethod
    def from_edges(cls, n: int, u, v, w=None, dtype=np.float32, slack: int = 0) -> "Synapses":
        """Build the table from undirected edges ``(u[e], v[e])`` with weights ``w[e]``.

        Raises ``ValueError`` on self-loops or duplicate edges. ``slack`` adds
        empty columns for later growth.
        """
        u = np.asarray(u, dtype=np.int64)
        v = np.asarray(v, dtype=np.int64)
        m = len(u)
        w = np.zeros(m) if w is None else np.asarray(w, dtype=float)
        if len(v) != m or len(w) != m:
            raise ValueError("u, v and w must have the same length")
        if m and (u.min() < 0 or v.min() < 0 or u.max() >= n or v.max() >= n):
            raise ValueError("edge endpoint outside [0, n)")
        if np.any(u == v):
            raise ValueError("self-loops are not allowed")
        keys = _pair_keys(u, v, n)
        if len(np.unique(keys)) != m:
            raise ValueError("duplicate synapses are not allowed")
        src = np.concatenate([u, v])
        dst = np.concatenate([v, u])
        ww = np.concatenate([w, w])
        deg = np.bincount(src, minlength=n)
        k = int(deg.max()) if m else 0
        k += int(slack)
        k = max(k, 1)
        order = np.lexsort((dst, src))  # by source, then by target (cache order)
        start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(deg, out=start[1:])
        slot_sorted = np.arange(2 * m) - start[src[order]]
        slot = np.empty(2 * m, dtype=np.int64)
        slot[order] = slot_sorted
        nbr = np.full((n, k), -1, dtype=np.int32)
        wt = np.zeros((n, k), dtype=dtype)
        rev = np.full((n, k), -1, dtype=np.int32)
        nbr[src, slot] = dst
        wt[src, slot] = ww
        partner = np.concatenate([np.arange(m, 2 * m), np.arange(m)])
        rev[src, slot] = slot[partner]
        return cls(nbr, wt, rev)

    # ------------------------------------------------------------- properties
    @property
    def n(self) -> int:
        return self.nbr.shape[0]

    @property
    def width(self) -> int:
        """``K``: slots per row."""
        return self.nbr.shape[1]

    @property
    def degree(self) -> np.ndarray:
        """Synapses per neuron (a copy of ``deg``)."""
        return self.deg.copy()

    @property
    def n_synapses(self) -> int:
        """Number of undirected synapses."""
        return int(self.deg.sum()) // 2

    def copy(self) -> "Synapses":
        return Synapses(self.nbr.copy(), self.w.copy(), self.rev.copy())

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Undirected edges ``(i, j, w)`` with ``i < j``, sorted by ``(i, j)``."""
        i, k = np.nonzero((self.nbr >= 0))
        j = self.nbr[i, k].astype(np.int64)
        keep = i < j
        return i[keep].astype(np.int64), j[keep], self.w[i[keep], k[keep]]

    def slot(self, i: int, j: int) -> int:
        """Slot of synapse ``i -> j`` in row ``i``, or -1."""
        hit = np.flatnonzero(self.nbr[i] == j)
        return int(hit[0]) if len(hit) else -1

    # ------------------------------------------------------------------ edits
    def _grow(self, extra: int) -> None:
        n, k = self.nbr.shape
        self.nbr = np.concatenate([self.nbr, np.full((n, extra), -1, np.int32)], axis=1)
        self.w = np.concatenate([self.w, np.zeros((n, extra), self.w.dtype)], axis=1)
        self.rev = np.concatenate([self.rev, np.full((n, extra), -1, np.int32)], axis=1)

    def _free_slot(self, i: int) -> int:
        if self.deg[i] == self.width:
            self._grow(max(2, self.width // 4))
        return int(self.deg[i])

    def add(self, i: int, j: int, weight: float = 0.0) -> bool:
        """Add synapse ``i <-> j``; returns False if it exists already."""
        i, j = int(i), int(j)
        if i == j:
            raise ValueError("self-loops are not allowed")
        if not (0 <= i < self.n and 0 <= j < self.n):
            raise IndexError("synapse endpoint outside the table")
        if self.slot(i, j) >= 0:
            return False
        a = self._free_slot(i)
        b = self._free_slot(j)
        self.nbr[i, a], self.nbr[j, b] = j, i
        self.w[i, a] = self.w[j, b] = weight
        self.rev[i, a], self.rev[j, b] = b, a
        self.deg[i] += 1
        self.deg[j] += 1
        return True

    def remove(self, i: int, j: int) -> bool:
        """Remove synapse ``i <-> j``; returns False if there was none."""
        a = self.slot(int(i), int(j))
        if a < 0:
            return False
        b = int(self.rev[i, a])
        self._clear(int(i), a)
        self._clear(int(j), b)
        return True

    def _clear(self, r: int, a: int) -> None:
        """Empty slot ``a`` of row ``r``, moving the row's last synapse into it."""
        last = int(self.deg[r]) - 1
        if a != last:
            p, q = int(self.nbr[r, last]), int(self.rev[r, last])
            self.nbr[r, a], self.w[r, a], self.rev[r, a] = p, self.w[r, last], q
            self.rev[p, q] = a  # the partner's reverse pointer follows the move
        self.nbr[r, last] = -1
        self.w[r, last] = 0
        self.rev[r, last] = -1
        self.deg[r] = last

    def isolate(self, i: int) -> int:
        """Remove every synapse of voxel ``i``; returns how many were removed."""
        count = 0
        for j in self.nbr[i][self.nbr[i] >= 0].tolist():
            count += self.remove(i, j)
        return count

    # ------------------------------------------------------------ validation
    def check(self) -> None:
        """Raise ``AssertionError`` unless the table is a valid symmetric graph."""
        nbr, rev, w = self.nbr, self.rev, self.w
        n = self.n
        occ = nbr >= 0
        assert np.all(nbr < n), "neighbour index out of range"
        assert np.all(rev[~occ] == -1) and np.all(w[~occ] == 0), "empty slot holds data"
        assert np.array_equal(occ.sum(1), self.deg), "deg does not count the row"
        assert np.array_equal(occ, np.arange(self.width)[None, :] < self.deg[:, None]), "row not compact"
        i, k = np.nonzero(occ)
        j = nbr[i, k]
        assert np.all(i != j), "self-loop"
        r = rev[i, k]
        assert np.all((r >= 0) & (r < self.width)), "reverse slot out of range"
        assert np.all(nbr[j, r] == i), "reverse slot does not point back"
        assert np.all(rev[j, r] == k), "reverse of reverse is not the slot"
        assert np.array_equal(w[i, k], w[j, r]), "weights are not symmetric"
        keys = i.astype(np.int64) * n + j
        assert len(np.unique(keys)) == len(keys), "duplicate synapse"

    # --------------------------------------------------------------- exports
    def to_scipy(self) -> sp.csr_matrix:
        """The symmetric weight matrix as ``scipy.sparse.csr_matrix`` (N x N)."""
        i, k = np.nonzero(self.nbr >= 0)
        j = self.nbr[i, k]
        m = sp.csr_matrix((self.w[i, k], (i, j)), shape=(self.n, self.n))
        m.sort_indices()
        return m
