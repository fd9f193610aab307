"""Trajectories as xarray Datasets streamed to zarr v3 stores.

A run store is a zarr v3 group laid out as::

    RUN.zarr/
        activation  (time, trial, x, y, z)  rho(s)                 float32
        velocity    (time, trial, x, y, z)  drift ds/dt            float32
        state       (time, trial, x, y, z)  membrane state s       float32 (optional)
        nudge       (time, trial, x, y, z)  rho(s) - rho(s_free)   float32 (optional: the
                    nudged minus the free fixed point's rates, see Recorder.reference)
        energy      (time, trial)           E(s)                   float64
        time, step  (time)                  model time, step count
        alive, role (x, y, z)               living mask, 0/1/2 role
        checkpoint/ state (N, B) and per-trial bookkeeping, double-buffered
                    (slots a/b) + attrs {step, status, slot}: where a run resumes
        tissue/     the wiring table, biases and masks (see save_tissue)

Frames are buffered and appended along ``time`` in chunks, so memory stays flat
however long the run. ``open_run(path)`` gives the Dataset back.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

VARIABLES = ("activation", "velocity", "state", "energy", "nudge")
_ATTRS = {
    "activation": {"long_name": "firing rate rho(s)", "units": "1"},
    "velocity": {"long_name": "settling velocity ds/dt (drift)", "units": "1",
                 "comment": "per membrane time constant"},
    "state": {"long_name": "membrane state s", "units": "1"},
    "energy": {"long_name": "energy E(s) of the tissue", "units": "1"},
    "nudge": {"long_name": "nudge: rate minus the free fixed point's rate", "units": "1",
              "comment": "0 in a free phase; rho(s) - rho(s_free) while nudged"},
    "time": {"long_name": "model time", "units": "1", "comment": "in membrane time constants (step * dt)"},
    "step": {"long_name": "integration step", "units": "1"},
    "alive": {"long_name": "living neuron", "units": "1"},
    "role": {"long_name": "role of the voxel", "units": "1", "flag_values": [0, 1, 2],
             "flag_meanings": "hidden input output"},
    "x": {"long_name": "voxel index along x", "units": "1"},
    "y": {"long_name": "voxel index along y", "units": "1"},
    "z": {"long_name": "voxel index along z", "units": "1"},
    "trial": {"long_name": "trial", "units": "1"},
}
CHUNK_BYTES = 16 * 2**20


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("neural-tissue")
    except Exception:  # pragma: no cover - running from a source tree
        return "0+unknown"


class Recorder:
    """Streams frames of a settling run into a zarr v3 store (or memory).

    Parameters
    ----------
    path : str or Path or None
        The store; ``None`` keeps the trajectory in memory.
    every : int
        Record a frame every ``every`` steps (and always the final state).
    variables : sequence of str
        Any of ``activation``, ``velocity``, ``state``, ``energy``, ``nudge``.
    region : array of voxel indices, optional
        Record only the bounding box of this region (all voxels by default).
    attrs : dict
        Extra attributes (e.g. ``config``: a dict stored as JSON).
    checkpoint_every : int, optional
        Steps between checkpoints (default: every flush of the frame buffer).
    resume : bool
        Append to an existing store after its last checkpoint.

    Attributes
    ----------
    reference : array (N, B) or None
        The free fixed point's rates; while set, the ``nudge`` variable records
        ``rho(s) - reference`` (EqProp's nudged minus free), otherwise zeros.
    """

    def __init__(self, path=None, every: int = 1, variables=("activation", "velocity", "energy"),
                 region=None, attrs: dict | None = None, checkpoint_every: int | None = None,
                 resume: bool = False):
        if int(every) < 1:
            raise ValueError(f"record every must be >= 1, got {every!r}")
        bad = [v for v in variables if v not in VARIABLES]
        if bad:
            raise ValueError(f"record variables must be among {VARIABLES}, got {bad}")
        self.path = None if path is None else Path(path)
        self.every = int(every)
        self.variables = tuple(variables)
        self.region = None if region is None else np.asarray(region, dtype=np.int64)
        self.attrs = dict(attrs or {})
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self._buf: list[xr.Dataset] = []
        self._mem: list[xr.Dataset] = []
        self._created = False
        self._last_step = None
        self.reference = None

    # ---------------------------------------------------------------- set-up
    def open(self, tissue, engine, n_trials: int) -> None:
        """Prepare for a run (idempotent: one recorder can serve several settles
        in a row, e.g. an annealing schedule, and their frames follow each other)."""
        if getattr(self, "_opened", False):
            return
        self._opened = True
        lat = tissue.lattice
        if self.region is None:
            lo, hi = (0, 0, 0), lat.shape
        else:
            lo, hi = lat.bounding_box(self.region)
        self._lo, self._hi = lo, hi
        self._sel = np.ix_(*(np.arange(a, b) for a, b in zip(lo, hi)))
        self._shape = lat.shape
        self._nb = n_trials
        frame_bytes = 4 * n_trials * int(np.prod(np.subtract(hi, lo)))
        n_grid = max(1, sum(v != "energy" for v in self.variables))
        self.chunk = int(max(1, min(256, CHUNK_BYTES // max(1, frame_bytes * n_grid))))
        self._trial_chunk = n_trials if frame_bytes <= CHUNK_BYTES else 1
        if self.checkpoint_every is None:
            self.checkpoint_every = self.every * self.chunk
        self.attrs.setdefault("package", "neural-tissue")
        self.attrs.setdefault("package_version", package_version())
        self.attrs.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self.attrs.setdefault("activation_function", tissue.activation)
        self.attrs.setdefault("dt", float(engine.dt))
        self.attrs.setdefault("temperature", float(engine.temperature))
        self.attrs.setdefault("noise_seed", int(engine.seed))
        self.attrs.setdefault("tissue_seed", -1 if tissue.seed is None else int(tissue.seed))
        self._static = xr.Dataset(
            {
                "alive": (("x", "y", "z"), lat.grid(tissue.alive)[self._sel].astype(np.uint8)),
                "role": (("x", "y", "z"), lat.grid(tissue.role)[self._sel]),
            },
            coords={a: np.arange(l, h) for a, l, h in zip("xyz", lo, hi)},
        )
        self._static = self._static.assign_coords(trial=np.arange(n_trials))
        if self.path is not None and self.resume and (self.path / "zarr.json").exists():
            self._created = True
            ck = read_checkpoint(self.path)
            if ck is not None:
                truncate_after(self.path, ck[0])
            root = zarr.open_group(self.path, mode="r")
            if "step" in root and root["step"].shape[0]:
                self._last_step = int(root["step"][-1])
        elif self.path is not None and self.path.exists():
            shutil.rmtree(self.path)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def checkpoint_due(self, step: int) -> bool:
        return self.path is not None and step % self.checkpoint_every == 0

    # ---------------------------------------------------------------- frames
    def write_frame(self, step, dt, s, r, v, energy, tissue=None) -> None:
        """Buffer the frame of step ``step`` from internal ``(N, B)`` arrays
        (``v`` None records zero velocity; ``energy`` is needed if recorded)."""
        if self._last_step is not None and step <= self._last_step:
            return  # already recorded (e.g. the final frame fell on a record step)
        self._last_step = step
        nb = s.shape[1]

        def grid(a):
            g = a.reshape(self._shape + (nb,))[self._sel]
            return np.moveaxis(g, -1, 0).astype(np.float32)

        frame = {"time": float(step) * dt, "step": int(step)}
        if "activation" in self.variables:
            frame["activation"] = grid(r)
        if "state" in self.variables:
            frame["state"] = grid(s)
        if "velocity" in self.variables:
            frame["velocity"] = grid(v) if v is not None else np.zeros(
                (nb,) + tuple(np.subtract(self._hi, self._lo)), np.float32)
        if "nudge" in self.variables:
            frame["nudge"] = (grid(r - self.reference) if self.reference is not None else np.zeros(
                (nb,) + tuple(np.subtract(self._hi, self._lo)), np.float32))
        if "energy" in self.variables:
            frame["energy"] = np.asarray(energy, np.float64)
        self._buf.append(frame)
        if len(self._buf) >= self.chunk:
            self.flush()

    def _buffered_dataset(self) -> xr.Dataset:
        buf, self._buf = self._buf, []
        dims = ("time", "trial", "x", "y", "z")
        data = {}
        for name in self.variables:
            arr = np.stack([f[name] for f in buf])
            data[name] = (dims if name != "energy" else ("time", "trial"), arr)
        coords = {"time": [f["time"] for f in buf], "step": ("time", [f["step"] for f in buf])}
        return xr.Dataset(data, coords=coords)

    def flush(self) -> None:
        if not self._buf:
            return
        ds = self._buffered_dataset()
        if self.path is None:
            self._mem.append(ds)
            return
        if not self._created:
            full = xr.merge([self._static, ds])
            full.attrs.update(_jsonable(self.attrs))
            for name, var in full.variables.items():
                var.attrs.update(_ATTRS.get(name, {}))
            enc = {}
            for name in full.data_vars:
                if "time" in full[name].dims:
                    ch = [self.chunk, self._trial_chunk] + list(full[name].shape[2:])
                    enc[name] = {"chunks": tuple(ch[: full[name].ndim])}
            enc["time"] = {"chunks": (1024,)}
            enc["step"] = {"chunks": (1024,)}
            full.to_zarr(self.path, mode="w", zarr_format=3, consolidated=False, encoding=enc)
            self._created = True
        else:
            ds.attrs.update(_jsonable(self.attrs))  # an xarray append rewrites the root attributes
            ds.to_zarr(self.path, append_dim="time", consolidated=False)

    # ------------------------------------------------------------ checkpoint
    def checkpoint(self, step: int, s: np.ndarray, status: str = "running", message: str = "",
                   carry: dict | None = None) -> None:
        """Flush frames, then save the ``(N, B)`` state of step ``step`` and the
        per-trial bookkeeping ``carry`` (order: frames, state, then the step
        attribute, so a kill at any point leaves a consistent checkpoint)."""
        self.flush()
        if self.path is None:
            return
        if not self._created:  # nothing recorded yet: create the store with the static part
            full = self._static.copy()
            full.attrs.update(_jsonable(self.attrs))
            full.to_zarr(self.path, mode="w", zarr_format=3, consolidated=False)
            self._created = True
        root = zarr.open_group(self.path, mode="a")
        g = root.require_group("checkpoint")
        arrays = {"state": s}
        for k, v in (carry or {}).items():
            arrays[k] = np.asarray(v, dtype=np.int64)
        # write into the spare slot, then flip the pointer: a kill mid-write keeps the old one
        slot = "b" if g.attrs.get("slot", "a") == "a" else "a"
        for name, arr in arrays.items():
            key = f"{slot}_{name}"
            if key in g and g[key].shape == arr.shape and g[key].dtype == arr.dtype:
                g[key][...] = arr
            else:
                a = g.create_array(key, shape=arr.shape, dtype=arr.dtype, overwrite=True)
                a[...] = arr
        g.update_attributes({"step": int(step), "status": status, "message": message, "slot": slot,
                             "carry": sorted(arrays)})

    def finish(self, step, dt, s, r, v, energy, carry=None) -> None:
        """Record the final state as the last frame, flush and checkpoint it."""
        self.write_frame(step, dt, s, r, v, energy)
        self.checkpoint(step, s, status="settled", carry=carry)

    def dataset(self) -> xr.Dataset:
        if self.path is not None:
            return open_run(self.path)
        ds = xr.concat(self._mem, dim="time") if len(self._mem) > 1 else self._mem[0]
        out = xr.merge([self._static, ds])
        out.attrs.update(_jsonable(self.attrs))
        for name, var in out.variables.items():
            var.attrs.update(_ATTRS.get(name, {}))
        return out


def _jsonable(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, (dict, list, tuple)):
            out[k] = json.dumps(v, sort_keys=True, default=_default)
        else:
            out[k] = v
    return out


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot store {type(o).__name__} in run attributes")


# ------------------------------------------------------------------- reading
def open_run(path) -> xr.Dataset:
    """Open a run store as an ``xarray.Dataset`` (lazily, from zarr)."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise FileNotFoundError(f"{path} is not a zarr run store (no zarr.json)")
    return xr.open_zarr(path, consolidated=False)


def read_checkpoint(path):
    """``(step, state (N, B), carry, attrs)`` of a store's checkpoint, or ``None``.

    ``carry`` holds the per-trial bookkeeping (``active``, ``taken``,
    ``converged``) to pass to :meth:`dynamics.Langevin.settle`.
    """
    root = zarr.open_group(Path(path), mode="r")
    if "checkpoint" not in root:
        return None
    g = root["checkpoint"]
    attrs = dict(g.attrs)
    if "slot" not in attrs:
        return None
    slot = attrs["slot"]
    state = np.asarray(g[f"{slot}_state"][...])
    carry = {k: np.asarray(g[f"{slot}_{k}"][...]) for k in attrs.get("carry", []) if k != "state"}
    return int(attrs["step"]), state, carry, attrs


def truncate_after(path, step: int) -> int:
    """Make every time-indexed array of an interrupted store end at checkpoint ``step``.

    A kill in the middle of an append can leave the arrays with different
    lengths and unwritten (fill-value) steps at the end. Every frame up to the
    checkpoint was complete before the checkpoint was written, so the valid
    frames are the increasing prefix of ``step`` up to ``step``; everything
    after it is cut (the resumed run writes it again). Returns the number of
    frames kept; raises ``RuntimeError`` if the store lacks frames the
    checkpoint needs (a damaged store).
    """
    root = zarr.open_group(Path(path), mode="a")
    if "step" not in root:
        return 0
    steps = np.asarray(root["step"][...])
    bad = np.flatnonzero(np.diff(steps) <= 0)
    valid = steps[: bad[0] + 1] if len(bad) else steps
    keep = int(np.searchsorted(valid, step, side="right"))
    for name in list(root.array_keys()):
        arr = root[name]
        dims = arr.metadata.dimension_names or ()
        if dims and dims[0] == "time" and arr.shape[0] != keep:
            if arr.shape[0] < keep:
                raise RuntimeError(f"{path}: {name} holds {arr.shape[0]} frames but the checkpoint "
                                   f"at step {step} needs {keep}; the store is damaged")
            arr.resize((keep,) + arr.shape[1:])
    return keep


def save_tissue(tissue, path, group: str = "tissue") -> None:
    """Store a tissue's wiring, biases, masks and lattice in ``path/group``."""
    root = zarr.open_group(Path(path), mode="a")
    if group in root:
        del root[group]
    g = root.create_group(group)
    for name, arr in (("nbr", tissue.syn.nbr), ("w", tissue.syn.w), ("rev", tissue.syn.rev),
                      ("bias", tissue.bias), ("alive", tissue.alive.astype(np.uint8)),
                      ("role", tissue.role), ("group", tissue.group)):
        a = g.create_array(name, shape=arr.shape, dtype=arr.dtype)
        a[...] = arr
    g.update_attributes({
        "shape": list(tissue.lattice.shape), "spacing": tissue.lattice.spacing,
        "activation": tissue.activation, "seed": -1 if tissue.seed is None else int(tissue.seed),
        "meta": json.dumps(tissue.meta, default=_default),
    })


def load_tissue(path, group: str = "tissue"):
    """Rebuild the :class:`~tissue.Tissue` stored by :func:`save_tissue`."""
    from .core import Tissue
    from .lattice import Lattice
    from .wiring import Synapses

    path = Path(path)
    root = zarr.open_group(path, mode="r")
    if group not in root:
        raise FileNotFoundError(f"{path} holds no stored tissue (group {group!r})")
    g = root[group]
    a = dict(g.attrs)
    syn = Synapses(g["nbr"][...], g["w"][...], g["rev"][...])
    t = Tissue(Lattice(tuple(a["shape"]), a["spacing"]), syn, g["bias"][...], a["activation"],
               alive=g["alive"][...].astype(bool), seed=None if a["seed"] < 0 else a["seed"],
               meta=json.loads(a["meta"]))
    t.role = np.asarray(g["role"][...])
    t.group = np.asarray(g["group"][...])
    return t


def remove_store(path) -> None:
    if os.path.exists(path):
        shutil.rmtree(path)
