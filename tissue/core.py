"""The :class:`Tissue`: a lattice, its living neurons, their roles, biases and synapses."""

from __future__ import annotations

import numpy as np

from .lattice import Lattice
from .wiring import (
    STENCILS,
    Synapses,
    init_weights,
    lattice_edges,
    radius_offsets,
    small_world_rewire,
    stencil_offsets,
)

ROLES = ("hidden", "input", "output")
HIDDEN, INPUT, OUTPUT = 0, 1, 2
ACTIVATIONS = ("hard_sigmoid", "sigmoid", "tanh", "linear")
DTYPES = {"float32": np.float32, "float64": np.float64}
OUTPUT_LAYOUTS = ("blocks", "interleaved")


class Tissue:
    """Neurons on a voxel lattice with symmetric synapses.

    Attributes
    ----------
    lattice : Lattice
    syn : Synapses
        The padded neighbour table (``nbr``, ``w``, ``rev``).
    bias : ndarray (N,)
    alive : ndarray of bool (N,)
        Dead or empty voxels have no synapses and rest at ``s = 0``.
    role : ndarray of int8 (N,)
        ``0`` hidden, ``1`` input (clamped to data), ``2`` output.
    group : ndarray of int16 (N,)
        Output group (class) of each output voxel, ``-1`` elsewhere.
    activation : str
        One of ``hard_sigmoid`` (clip to [0, 1]), ``sigmoid``, ``tanh``, ``linear``.
    """

    def __init__(self, lattice: Lattice, syn: Synapses, bias=None, activation="hard_sigmoid",
                 alive=None, seed: int | None = None, meta: dict | None = None):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        n = lattice.size
        if syn.n != n:
            raise ValueError(f"synapse table has {syn.n} rows for a lattice of {n} voxels")
        self.lattice = lattice
        self.syn = syn
        dtype = syn.w.dtype
        self.bias = np.zeros(n, dtype) if bias is None else np.ascontiguousarray(bias, dtype=dtype)
        self.alive = np.ones(n, bool) if alive is None else np.asarray(alive, bool).copy()
        self.role = np.zeros(n, np.int8)
        self.group = np.full(n, -1, np.int16)
        self.activation = activation
        self.seed = seed
        self.meta = dict(meta or {})

    # ------------------------------------------------------------ builders
    @classmethod
    def cube(cls, shape, stencil: int = 26, radius: float | None = None, small_world: float = 0.0,
             init: str = "uniform", weight_scale: float | None = None, bias: float = 0.0,
             activation: str = "hard_sigmoid", dtype: str = "float32", spacing: float = 1.0,
             seed: int = 0) -> "Tissue":
        """A fully alive box of neurons wired to their lattice neighbours.

        Parameters
        ----------
        shape : int or 3 ints
            Voxels along x, y, z (an int gives a cube).
        stencil : {6, 18, 26}
            Neighbourhood when ``radius`` is None.
        radius : float, optional
            Wire every pair within this Euclidean distance (voxel units) instead.
        small_world : float in [0, 1]
            Fraction of synapses rewired to a uniformly random distant voxel.
        init : {"uniform", "normal", "constant", "zero"}
            Weight initialisation; ``weight_scale`` defaults to ``1 / sqrt(K)``
            with ``K`` the neighbourhood size.
        bias : float
            Initial bias of every neuron.
        seed : int
            Seeds wiring and weights (``numpy.random.Generator``).
        """
        if np.isscalar(shape):
            shape = (int(shape),) * 3
        lat = Lattice(tuple(shape), spacing)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
        offsets = stencil_offsets(stencil) if radius is None else radius_offsets(radius)
        rng = np.random.default_rng(seed)
        u, v = lattice_edges(lat, offsets)
        u, v = small_world_rewire(u, v, lat.size, small_world, rng)
        k = len(offsets)
        scale = 1.0 / np.sqrt(k) if weight_scale is None else float(weight_scale)
        w = init_weights(len(u), init, scale, rng)
        syn = Synapses.from_edges(lat.size, u, v, w, dtype=DTYPES[dtype])
        b = np.full(lat.size, bias, dtype=DTYPES[dtype])
        meta = dict(stencil=int(stencil), radius=radius, small_world=float(small_world), init=init,
                    weight_scale=scale)
        return cls(lat, syn, b, activation=activation, seed=seed, meta=meta)

    # -------------------------------------------------------------- basics
    @property
    def n(self) -> int:
        """Number of voxels (living or not)."""
        return self.lattice.size

    @property
    def dtype(self):
        return self.syn.w.dtype

    def copy(self) -> "Tissue":
        t = Tissue(self.lattice, self.syn.copy(), self.bias.copy(), self.activation,
                   self.alive, self.seed, self.meta)
        t.role = self.role.copy()
        t.group = self.group.copy()
        return t

    def __repr__(self) -> str:
        nx, ny, nz = self.lattice.shape
        return (f"Tissue({nx}x{ny}x{nz}, alive={int(self.alive.sum())}, "
                f"synapses={self.syn.n_synapses}, activation={self.activation!r}, "
                f"inputs={int((self.role == INPUT).sum())}, outputs={int((self.role == OUTPUT).sum())})")

    # --------------------------------------------------------------- roles
    def _region(self, region) -> np.ndarray:
        r = np.unique(np.asarray(region, dtype=np.int64))
        if r.size and (r[0] < 0 or r[-1] >= self.n):
            raise IndexError(f"region index outside [0, {self.n})")
        return r

    def set_input(self, region) -> np.ndarray:
        """Mark ``region`` as input: its states are clamped to the data."""
        r = self._region(region)
        self.role[self.role == INPUT] = HIDDEN
        self.role[r] = INPUT
        self.group[r] = -1
        return r

    def set_output(self, region, groups: int = 1, layout: str = "blocks") -> np.ndarray:
        """Mark ``region`` as output, split into ``groups`` groups of voxels (one per class).

        ``layout="blocks"`` gives each group a contiguous run of the region in
        index order (a spatial block); ``"interleaved"`` deals the voxels out in
        turn (voxel ``k`` of the region joins group ``k % groups``), so every
        group is spread over the whole region.
        """
        r = self._region(region)
        if not 1 <= groups <= len(r):
            raise ValueError(f"groups must be in [1, {len(r)}], got {groups}")
        if layout not in OUTPUT_LAYOUTS:
            raise ValueError(f"output layout must be one of {OUTPUT_LAYOUTS}, got {layout!r}")
        self.role[self.role == OUTPUT] = HIDDEN
        self.group[:] = -1
        self.role[r] = OUTPUT
        k = np.arange(len(r))
        self.group[r] = (k * groups // len(r) if layout == "blocks" else k % groups).astype(np.int16)
        return r

    def region(self, name: str) -> np.ndarray:
        """Indices of living voxels with role ``"input"``, ``"output"`` or ``"hidden"``."""
        if name not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {name!r}")
        return np.flatnonzero((self.role == ROLES.index(name)) & self.alive)

    @property
    def clamped(self) -> np.ndarray:
        """Boolean mask of voxels that are not integrated: inputs and dead voxels."""
        return (self.role == INPUT) | ~self.alive

    # --------------------------------------------------------------- damage
    def kill(self, region) -> np.ndarray:
        """Kill the neurons in ``region``: remove their synapses, zero their bias.
        Returns the indices that were alive and are now dead."""
        r = self._region(region)
        # isolate dead voxels of the region too: a synapse added to a dead voxel
        # (Synapses knows nothing of ``alive``) must not survive a kill
        for i in r.tolist():
            self.syn.isolate(i)
        self.bias[r] = 0
        r = r[self.alive[r]]
        self.alive[r] = False
        return r

    # -------------------------------------------------------------- exports
    def to_scipy(self):
        """Symmetric ``scipy.sparse.csr_matrix`` of weights (N x N)."""
        return self.syn.to_scipy()

    def to_networkx(self):
        """A ``networkx.Graph`` of the living neurons: nodes carry ``x, y, z``
        (voxel coordinates), ``role`` and ``bias``; edges carry ``weight``."""
        import networkx as nx

        g = nx.Graph()
        alive = np.flatnonzero(self.alive)
        c = self.lattice.coords(alive)
        for idx, (x, y, z) in zip(alive.tolist(), c.tolist()):
            g.add_node(idx, x=x, y=y, z=z, role=ROLES[self.role[idx]], bias=float(self.bias[idx]))
        i, j, w = self.syn.edges()
        g.add_weighted_edges_from(zip(i.tolist(), j.tolist(), w.astype(float).tolist()))
        return g
