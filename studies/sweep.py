"""Parameter sweeps on ``dask.distributed``: ``tissue sweep SWEEP.toml --out DIR``.

A sweep file names a base run config and a grid of values for some of its keys::

    base = "learn-digits.toml"            # a run config, relative to this file

    [grid]                                # dotted config keys -> lists of values
    "tissue.shape" = [[16, 16, 3], [16, 16, 5]]
    seed = [0, 1, 2]

    [overrides]                           # optional: dotted keys -> one value, in every job
    "learning.epochs" = 2

    [dims]                                # optional: a readable dim for a grid key
    "tissue.shape" = {name = "depth", values = [2, 4]}

Every job is the base config with the overrides and one combination of grid
values (the cartesian product, in the order of ``[grid]``). Everything is
validated before any work starts: the sweep keys against the run-config schema
(:mod:`studies.config`) and every job's config through
:func:`~studies.config.load_config`; the first problem raises
:class:`SweepError`, one line naming the key (and the job's coordinates when
the problem is a combination).

A grid key's dim is named by ``[dims]`` or, by default, after the last part of
the key (``seed`` -> ``seed``, ``learning.lr`` -> ``lr``; the whole key with
``_`` for ``.`` when two keys end alike); its coordinates are the ``[dims]``
values or the grid values (lists and tables as compact JSON text).

Layout of ``DIR``::

    sweep.json            the resolved sweep (base config, grid, overrides, dims)
    jobs/<name>.zarr      one run store per job (studies.run.run); <name> encodes the
                          job's coordinates, e.g. "depth=2_seed=0"
    sweep.zarr            the combined Dataset (see combine)

Execution (:func:`run_sweep`): a job whose store is complete is skipped, an
interrupted one resumes (``run(..., resume=True)``), so rerunning a finished
sweep does no work and an interrupted sweep continues where it stopped. The
jobs run as one ``dask.distributed`` task each (``pure=False``,
``retries=2``), on a :class:`distributed.LocalCluster` of single-threaded worker
processes (:func:`local_cluster`) or on an existing cluster given by its
scheduler address; a worker that dies takes its job with it and the scheduler
runs it again elsewhere, resuming its store. Workers must see ``DIR`` (a
shared filesystem for a remote cluster).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
import shutil
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .config import ConfigError, RunConfig, _check, _Key, _fmt, load_config
from .run import RunRefused

__all__ = ["GridDim", "Job", "SweepError", "SweepSpec", "SweepSummary", "combine", "finished_jobs", "jobs",
           "load_sweep", "local_cluster", "run_sweep", "table"]

TOP_KEYS = ("base", "grid", "overrides", "dims")
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1"}
# dims and variables of run stores (studies.run, studies.learn): a grid dim may not take these names
RESERVED = frozenset({"epoch", "sample", "blend", "nudging", "beta", "slab", "baseline", "time", "step", "trial",
                      "x", "y", "z", "pattern", "job", "complete"})
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SweepError(ConfigError):
    """An invalid sweep file; ``str(err)`` is one line starting ``sweep error:``.

    A :class:`~studies.config.ConfigError`, so ``tissue`` exits with status 2.
    """

    def __init__(self, message: str):
        message = " ".join(str(message).split())
        ValueError.__init__(self, message if message.startswith("sweep error:") else f"sweep error: {message}")


# ------------------------------------------------------------------ the spec
@dataclass(frozen=True)
class GridDim:
    """One grid key: its config values and the dim they become."""

    key: str          # dotted config key, e.g. "tissue.shape"
    name: str         # dim name, e.g. "depth"
    values: tuple     # config values, in order
    coords: tuple     # coordinate values, in order


@dataclass(frozen=True)
class Job:
    """One point of the grid."""

    name: str                 # file-safe, deterministic in the coordinates
    index: tuple              # position in the grid
    coords: dict              # dim name -> coordinate
    values: dict              # dotted key -> config value
    config: RunConfig

    def label(self) -> str:
        """``depth=2 seed=0``: the coordinates, for messages."""
        return _label(self.coords)


def _label(coords: dict) -> str:
    return " ".join(f"{k}={v if isinstance(v, str) else _fmt(v)}" for k, v in coords.items())


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: see the module doc. ``jobs`` is the cartesian product."""

    base: str | None                      # the base config's path (for the record)
    base_config: dict                     # its TOML content
    grid: tuple                           # GridDim, in [grid] order
    overrides: dict
    jobs: tuple = field(repr=False, default=())
    source: str | None = None             # the sweep file

    @property
    def dims(self) -> tuple:
        return tuple(g.name for g in self.grid)

    @property
    def shape(self) -> tuple:
        return tuple(len(g.values) for g in self.grid)

    def to_dict(self) -> dict:
        """A JSON-able record of the sweep; :func:`load_sweep` takes it back."""
        return {"source": self.source, "base": self.base, "base_config": self.base_config,
                "grid": {g.key: list(g.values) for g in self.grid}, "overrides": dict(self.overrides),
                "dims": {g.key: {"name": g.name, "values": list(g.coords)} for g in self.grid}}


def load_sweep(source, root=None) -> SweepSpec:
    """Validate a sweep: a TOML path, or a dict (``base`` relative to ``root``, default the cwd).

    A dict may give the base config itself as ``base_config`` (as
    :meth:`SweepSpec.to_dict` does) instead of a ``base`` path.

    Raises
    ------
    SweepError
        One line naming the key (and the job, for a bad combination).
    """
    if isinstance(source, Mapping):
        doc, where = dict(source), None
        root = Path(root) if root is not None else Path.cwd()
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise SweepError(f"cannot read {path}: {reason}") from None
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise SweepError(f"{path}: invalid TOML: {err}") from None
        where, root = str(path), path.parent
    allowed = TOP_KEYS + (("base_config", "source") if isinstance(source, Mapping) else ())
    for k in doc:
        if k not in allowed:
            raise _unknown_key(None, k, TOP_KEYS)
    if "base_config" in doc:
        base_raw, base = doc["base_config"], doc.get("base")
        if not isinstance(base_raw, Mapping):
            raise SweepError(f"base_config = {_fmt(base_raw)}: must be a table (a run config)")
        where = doc.get("source", where)
    else:
        base_raw, base = _read_base(doc.get("base"), root)
    return _parse(doc, dict(base_raw), base, where)


def _read_base(base, root: Path) -> tuple[dict, str]:
    if base is None:
        raise SweepError('base is required: the path of a run config, relative to the sweep file '
                         '(e.g. base = "learn-digits.toml")')
    if not isinstance(base, str):
        raise SweepError(f"base = {_fmt(base)}: must be a string, the path of a run config")
    path = (root / base).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SweepError(f"base = {_fmt(base)}: cannot read {path}: {reason}") from None
    try:
        return tomllib.loads(text), str(path)
    except tomllib.TOMLDecodeError as err:
        raise SweepError(f"base = {_fmt(base)}: {path}: invalid TOML: {err}") from None


def _unknown_key(section: str | None, name: str, allowed) -> SweepError:
    import difflib

    close = difflib.get_close_matches(name, list(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = f"[{section}] " if section else ""
    return SweepError(f"{where}unknown key {name!r}{hint}; allowed: {', '.join(allowed)}")


def _q(key: str) -> str:
    return json.dumps(key)


def _leaf_spec(key: str, table: str):
    """The :class:`~studies.config.Spec` of the dotted config key ``key`` (a key, not a section)."""
    import difflib

    parts = key.split(".")
    cls, trail = RunConfig, []
    for i, part in enumerate(parts):
        specs = {f.name: f.metadata["spec"] for f in fields(cls)}
        here = "[" + ".".join(trail) + "]" if trail else "the top level"
        if part not in specs:
            close = difflib.get_close_matches(part, list(specs), n=1)
            hint = f" (did you mean {'.'.join(trail + [close[0]])!r}?)" if close else ""
            raise SweepError(f"[{table}] {_q(key)}: unknown config key {part!r} in {here}{hint}; "
                             f"allowed: {', '.join(specs)}")
        spec = specs[part]
        trail.append(part)
        if i == len(parts) - 1:
            if spec.kind == "section":
                inner = ", ".join(f.name for f in fields(spec.cls))
                raise SweepError(f"[{table}] {_q(key)}: names the section [{key}], not a key; "
                                 f"give a key inside it ({inner})")
            return spec
        if spec.kind != "section":
            raise SweepError(f"[{table}] {_q(key)}: {'.'.join(trail)!r} is a key, not a section")
        cls = spec.cls
    raise AssertionError(key)


def _is_section(key: str) -> bool:
    cls = RunConfig
    for part in key.split("."):
        specs = {f.name: f.metadata["spec"] for f in fields(cls)}
        if part not in specs or specs[part].kind != "section":
            return False
        cls = specs[part].cls
    return True


def _flatten(table, name: str) -> dict:
    """``{"tissue": {"shape": v}}`` and ``{"tissue.shape": v}`` -> ``{"tissue.shape": v}``."""
    if not isinstance(table, Mapping):
        raise SweepError(f"{name} = {_fmt(table)}: must be a table [{name}] of dotted config keys")
    out = {}

    def walk(d, prefix):
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, Mapping) and _is_section(key):
                walk(v, key + ".")
            elif key in out:
                raise SweepError(f"[{name}] {_q(key)}: given twice")
            else:
                out[key] = v
    walk(table, "")
    return out


def _check_value(key: str, value, table: str, what: str = "") -> None:
    spec = _leaf_spec(key, table)
    parts = key.split(".")
    k = _Key(".".join(parts[:-1]) if len(parts) > 1 else None, parts[-1])
    try:
        _check(spec, value, k)
    except ConfigError as err:
        msg = str(err).removeprefix("config error: ")
        raise SweepError(f"[{table}] {_q(key)}{what}: {msg}") from None


def _canon(v) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def _is_scalar(v) -> bool:
    return isinstance(v, (bool, int, float, str))


def _parse(doc: Mapping, base_raw: dict, base: str | None, source: str | None) -> SweepSpec:
    grid = _flatten(doc.get("grid", {}), "grid")
    if not grid:
        raise SweepError('[grid] is required: dotted config keys -> lists of values, '
                         'e.g. seed = [0, 1, 2]')
    for key, values in grid.items():
        _leaf_spec(key, "grid")
        if not isinstance(values, list) or not values:
            raise SweepError(f"[grid] {_q(key)} = {_fmt(values)}: must be a non-empty list of values "
                             f"(one per job), e.g. {_q(key)} = [a, b]")
        seen = set()
        for i, v in enumerate(values):
            _check_value(key, v, "grid", f" value {i}")
            c = _canon(v)
            if c in seen:
                raise SweepError(f"[grid] {_q(key)} = {_fmt(values)}: value {_fmt(v)} is given twice")
            seen.add(c)
    overrides = _flatten(doc.get("overrides", {}), "overrides")
    for key, v in overrides.items():
        if key in grid:
            raise SweepError(f"[overrides] {_q(key)}: also in [grid]; give it in one of them")
        _check_value(key, v, "overrides")
    dims_doc = doc.get("dims", {})
    if not isinstance(dims_doc, Mapping):
        raise SweepError(f"dims = {_fmt(dims_doc)}: must be a table [dims] of grid keys")
    dims_doc = {k: v for k, v in dims_doc.items()}
    for key in dims_doc:
        if key not in grid:
            raise SweepError(f"[dims] {_q(key)}: not a [grid] key; [dims] names the dims of "
                             f"{', '.join(_q(k) for k in grid)}")
    tails = [k.rsplit(".", 1)[-1] for k in grid]
    dims = []
    for key, values in grid.items():
        d = dims_doc.get(key, {})
        if isinstance(d, str):
            d = {"name": d}
        if not isinstance(d, Mapping):
            raise SweepError(f"[dims] {_q(key)} = {_fmt(d)}: must be a table {{name = \"...\", values = [...]}}")
        for k in d:
            if k not in ("name", "values"):
                raise _unknown_key(f"dims.{_q(key)}", k, ("name", "values"))
        tail = key.rsplit(".", 1)[-1]
        name = d.get("name", tail if tails.count(tail) == 1 else key.replace(".", "_"))
        if not (isinstance(name, str) and _IDENT.match(name)):
            raise SweepError(f"[dims] {_q(key)} name = {_fmt(name)}: must be an identifier "
                             f"(letters, digits, _), e.g. \"depth\"")
        if name in RESERVED:
            raise SweepError(f"[dims] {_q(key)} name = {_fmt(name)}: taken by the run stores "
                             f"({', '.join(sorted(RESERVED))}); choose another name")
        if "values" in d:
            coords = d["values"]
            if not (isinstance(coords, list) and len(coords) == len(values)
                    and all(_is_scalar(c) for c in coords) and len({_canon(c) for c in coords}) == len(coords)):
                raise SweepError(f"[dims] {_q(key)} values = {_fmt(coords)}: must be {len(values)} distinct "
                                 f"numbers or strings, one per value of [grid] {_q(key)}")
        elif all(_is_scalar(v) for v in values):
            coords = list(values)
        else:
            coords = [_canon(v) for v in values]
        dims.append(GridDim(key, name, tuple(values), tuple(coords)))
    names = [g.name for g in dims]
    for n in names:
        if names.count(n) > 1:
            raise SweepError(f"[dims]: two grid keys have the dim name {n!r}; name them in [dims]")
    spec = SweepSpec(base, base_raw, tuple(dims), dict(overrides), source=source)
    return SweepSpec(base, base_raw, tuple(dims), dict(overrides), tuple(_make_jobs(spec)), source)


def _set(raw: dict, key: str, value) -> None:
    parts = key.split(".")
    d = raw
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = copy.deepcopy(value)


def _token(value, coord) -> str:
    if isinstance(value, list) and value and all(_is_scalar(v) and not isinstance(v, bool) for v in value) \
            and coord == _canon(value):
        return "x".join(_token(v, v) for v in value)
    if isinstance(coord, bool):
        return "true" if coord else "false"
    if isinstance(coord, float):
        return repr(coord)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(coord)).strip("-") or "-"


def _make_jobs(spec: SweepSpec) -> list[Job]:
    out, names = [], {}
    for index in itertools.product(*(range(len(g.values)) for g in spec.grid)):
        coords = {g.name: g.coords[i] for g, i in zip(spec.grid, index)}
        values = {g.key: g.values[i] for g, i in zip(spec.grid, index)}
        name = "_".join(f"{g.name}={_token(g.values[i], g.coords[i])}" for g, i in zip(spec.grid, index))
        if len(name) > 180:
            name = name[:160] + "-" + hashlib.sha1(name.encode()).hexdigest()[:12]
        raw = copy.deepcopy(spec.base_config)
        for k, v in list(spec.overrides.items()) + list(values.items()):
            _set(raw, k, v)
        label = _label(coords)
        try:
            cfg = load_config(raw)
        except ConfigError as err:
            raise SweepError(f"job {label}: {err}") from None
        if name in names:
            raise SweepError(f"jobs {names[name]} and {label} get the same name {name!r}; "
                             f"give distinct [dims] values")
        names[name] = label
        out.append(Job(name, index, coords, values, cfg))
    return out


def jobs(spec) -> list[Job]:
    """The jobs of a sweep (a :class:`SweepSpec`, or anything :func:`load_sweep` takes)."""
    spec = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    return list(spec.jobs)


def job_path(out, job: Job) -> Path:
    return Path(out) / "jobs" / f"{job.name}.zarr"


def finished_jobs(out) -> list[tuple[Path, dict, dict]]:
    """Every complete job store of the sweep directory ``out``, by name: ``(path, root attributes,
    config)`` (for reading figures across sweeps, e.g. ``bench/replicate_stats.py``)."""
    import zarr

    found = []
    for path in sorted((Path(out) / "jobs").glob("*.zarr")):
        attrs = dict(zarr.open_group(path, mode="r").attrs)
        if attrs.get("status") == "complete":
            cfg = attrs.get("config")
            found.append((path, attrs, json.loads(cfg) if isinstance(cfg, str) else cfg))
    return found


# ------------------------------------------------------------------ running
def local_cluster(workers: int = 2, **kwargs):
    """A :class:`distributed.LocalCluster` of ``workers`` single-threaded processes with
    ``NUMBA_NUM_THREADS=1`` (and BLAS at 1 thread), so they do not oversubscribe the cores."""
    from distributed import LocalCluster

    opts = dict(n_workers=int(workers), threads_per_worker=1, processes=True, env=dict(WORKER_ENV),
                dashboard_address=None)
    opts.update(kwargs)
    return LocalCluster(**opts)


def _run_job(config: dict, path: str, threads: int = 1) -> dict:
    """The task of one job, run on a worker: run or resume its store."""
    import numba

    from dynamics import SimulationDiverged

    from .run import run

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    p = Path(path)
    if p.is_dir() and _stored_config(p) is None:
        shutil.rmtree(p)   # killed before its config was written: nothing to keep
    t0 = time.perf_counter()
    try:
        s = run(config, p, resume=True, progress=False)
    except SimulationDiverged as err:
        return {"status": "diverged", "message": str(err)}
    except RunRefused as err:
        return {"status": "refused", "message": str(err)}
    return {"status": "complete" if s.status in ("complete", "already complete") else s.status,
            "message": "", "resumed": getattr(s, "resumed_from", None) is not None, "seconds": time.perf_counter() - t0,
            "pid": os.getpid()}


def _stored_config(path: Path):
    """The canonical config stored in a job store's attributes, or None."""
    import zarr

    if not (path / "zarr.json").is_file():
        return None
    try:
        attrs = dict(zarr.open_group(path, mode="r").attrs)
    except Exception:
        return None
    cfg = attrs.get("config")
    return json.loads(cfg) if isinstance(cfg, str) else cfg


def _same_config(stored, job: Job) -> bool:
    """Whether a store's config is the job's: equal canonical forms, the stored one read with
    today's defaults (a key added to the schema since, at its default, is no difference)."""
    given = json.loads(json.dumps(job.config.to_dict()))
    if stored == given:
        return True
    try:
        return json.loads(json.dumps(load_config(stored).to_dict())) == given
    except (ConfigError, TypeError):
        return False


def _store_status(path: Path) -> str | None:
    import zarr

    return dict(zarr.open_group(path, mode="r").attrs).get("status")


@dataclass
class SweepSummary:
    """What :func:`run_sweep` did."""

    out: Path
    n_jobs: int
    skipped: list = field(default_factory=list)    # complete before this call
    to_run: list = field(default_factory=list)     # submitted (new or resumed)
    ran: list = field(default_factory=list)        # completed by this call
    resumed: list = field(default_factory=list)    # ... of which continued a partial store
    failed: dict = field(default_factory=dict)     # name -> "status: message"
    dataset: Path | None = None
    table: list = field(default_factory=list)
    wall_time: float = 0.0

    @property
    def n_run(self) -> int:
        return len(self.to_run)

    def lines(self) -> list[str]:
        out = [f"{self.out}: {self.n_jobs} jobs, {len(self.skipped)} already complete, "
               f"{len(self.ran)} run now" + (f" ({len(self.resumed)} resumed)" if self.resumed else "")
               + (f", {len(self.failed)} failed" if self.failed else "")]
        if self.dataset is not None:
            out.append(f"  combined: {self.dataset}")
        out += ["  " + line for line in self.table]
        out.append(f"  wall time {self.wall_time:.1f} s")
        return out


def _plan(spec: SweepSpec, out: Path) -> tuple[list, list, dict]:
    """Sort the jobs into (skip, run, failed) from their stores; refuse stores of other configs."""
    skip, todo, failed = [], [], {}
    for job in spec.jobs:
        p = job_path(out, job)
        if not p.exists():
            todo.append(job)
            continue
        if not p.is_dir():
            raise RunRefused(f"{p} is not a run store; remove it")
        stored = _stored_config(p)
        if stored is None:
            todo.append(job)          # an empty or half-created store: the job starts it again
            continue
        if not _same_config(stored, job):
            from .run import _first_difference

            given = json.loads(json.dumps(job.config.to_dict()))
            raise RunRefused(f"{p} holds another config than job {job.label()} (differs at "
                             f"{_first_difference(stored, given)}); use another --out for a changed sweep")
        status = _store_status(p)
        if status == "complete":
            skip.append(job)
        elif status == "diverged":
            failed[job.name] = "diverged (earlier run; remove its store to try again)"
        else:
            todo.append(job)
    return skip, todo, failed


def run_sweep(spec, out, scheduler: str | None = None, workers: int = 2, progress: bool = True,
              echo=None, threads: int = 1, combine_results: bool = True) -> SweepSummary:
    """Run every unfinished job of a sweep on dask.distributed, then :func:`combine` them.

    Parameters
    ----------
    spec : SweepSpec, str, Path or dict
        A validated sweep, or anything :func:`load_sweep` takes.
    out : str or Path
        The sweep directory (see the module doc).
    scheduler : str, optional
        Address of an existing cluster's scheduler (``tcp://host:8786``), or a
        :class:`distributed.Client`/cluster object; default: a
        :func:`local_cluster` of ``workers`` processes, closed at the end.
    workers : int
        Worker processes of the local cluster.
    progress : bool
        A tqdm bar over the finished jobs.
    echo : callable, optional
        Called with a line of text as the sweep starts.
    threads : int
        Numba threads per job (``numba.set_num_threads`` in the task).

    Returns
    -------
    SweepSummary
        ``n_run`` is 0 when every job was complete already (then nothing is
        submitted, no cluster is started and ``sweep.zarr`` is only rewritten
        if it is missing or stale).

    Raises
    ------
    studies.run.RunRefused
        ``out`` is not a sweep directory, a job store holds another config, or
        the scheduler cannot be reached.

    Notes
    -----
    The local cluster spawns its worker processes, which import the main
    module again: in a script, call this under ``if __name__ == "__main__":``.
    """
    t0 = time.perf_counter()
    spec = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise RunRefused(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "sweep.json").is_file():
        raise RunRefused(f"{out} exists and is not a sweep directory (no sweep.json); choose another --out")
    skip, todo, failed = _plan(spec, out)          # refuses job stores of other configs
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    record = _canon(spec.to_dict())
    (out / "sweep.json").write_text(json.dumps(spec.to_dict(), indent=1) + "\n", encoding="utf-8")
    summary = SweepSummary(out, len(spec.jobs), skipped=[j.name for j in skip], to_run=[j.name for j in todo],
                           failed=failed)
    if echo is not None:
        where = (f"the cluster at {scheduler}" if isinstance(scheduler, str)
                 else "a given cluster" if scheduler is not None else f"a local cluster of {workers} workers")
        echo(f"sweep: {len(spec.jobs)} jobs ({' x '.join(f'{len(g.values)} {g.name}' for g in spec.grid)}), "
             f"{len(skip)} complete, {len(todo)} to run" + (f" on {where}" if todo else "")
             + (f", {len(failed)} failed before" if failed else ""))
    if todo:
        results = _execute(todo, out, scheduler, workers, progress, threads)
        for job in todo:
            r = results[job.name]
            if r.get("status") == "complete":
                summary.ran.append(job.name)
                if r.get("resumed"):
                    summary.resumed.append(job.name)
            else:
                summary.failed[job.name] = f"{r.get('status')}: {r.get('message', '')}"
    if combine_results and len(summary.failed) < len(spec.jobs):
        target = out / "sweep.zarr"
        if todo or not _up_to_date(target, record, len(skip) == len(spec.jobs)):
            ds = combine(out, spec)
            summary.table = table(ds)
            ds.close()
        else:
            ds = _open(target)
            summary.table = table(ds)
            ds.close()
        summary.dataset = target
    summary.wall_time = time.perf_counter() - t0
    return summary


def _open(path: Path):
    import xarray as xr

    return xr.open_zarr(path, consolidated=False)


def _up_to_date(target: Path, record: str, all_complete: bool) -> bool:
    """``sweep.zarr`` exists, was combined from this very sweep with every job complete."""
    if not (target / "zarr.json").is_file() or not all_complete:
        return False
    import zarr

    attrs = dict(zarr.open_group(target, mode="r").attrs)
    return attrs.get("sweep") == record and attrs.get("incomplete_jobs") == "[]"


def _execute(todo: list, out: Path, scheduler, workers: int, progress: bool, threads: int) -> dict:
    """Submit one task per job, collect ``{name: result dict}`` as they finish."""
    from distributed import Client, as_completed

    cluster = client = None
    own_client = True
    if scheduler is None:
        cluster = local_cluster(workers)
        client = Client(cluster)
    elif isinstance(scheduler, Client):
        client, own_client = scheduler, False
    else:
        try:
            client = Client(scheduler)   # an address or a cluster object
        except (OSError, TimeoutError) as err:
            raise RunRefused(f"cannot connect to the dask scheduler at {scheduler}: {err}") from None
    bar = None
    try:
        futures = {}
        for job in todo:
            fut = client.submit(_run_job, job.config.to_dict(), str(job_path(out, job)), threads,
                                pure=False, retries=2, key=f"tissue-job-{job.name}-{os.urandom(4).hex()}")
            futures[fut] = job
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc="jobs", unit="job")
        results = {}
        for fut in as_completed(list(futures)):
            job = futures[fut]
            try:
                results[job.name] = fut.result()
            except Exception as err:   # the task raised three times, or its worker kept dying
                results[job.name] = {"status": "failed", "message": f"{type(err).__name__}: {err}"}
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{job.name}: {results[job.name]['status']}")
        return results
    finally:
        if bar is not None:
            bar.close()
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


# ------------------------------------------------------------------ combining
def _attr_units(name: str) -> str:
    if name.endswith("_per_s"):
        return "s-1"
    if name.endswith("_s") or name.endswith("_seconds"):
        return "s"
    return "1"


def _read_spec(out: Path) -> SweepSpec:
    path = out / "sweep.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RunRefused(f"{out} is not a sweep directory: cannot read {path}: {err.strerror}") from None
    return load_sweep(doc)


def combine(out, spec: SweepSpec | None = None):
    """Combine the complete job stores of ``DIR`` into ``DIR/sweep.zarr`` and return the Dataset.

    The Dataset has the grid dims (coordinates as in the sweep) followed by the
    job stores' own dims (e.g. ``epoch``), for every data variable present with
    the same dims in every complete job (the jobs' coordinates joined outer:
    NaN where a job lacks one), plus every numeric root attribute of the job
    stores (``test_accuracy``, ``auroc_misclassified``, ...) as a variable over
    the grid dims (named ``final_<name>`` when a data variable has its name),
    ``complete`` (bool, grid dims) and NaN for the jobs that are not complete.
    Units and long names are kept; ``attrs["sweep"]`` holds the sweep as JSON.

    Raises
    ------
    studies.run.RunRefused
        No job is complete, or a store holds another config than its job.
    """
    import dask
    import xarray as xr
    import zarr

    from tissue import open_run
    from tissue.records import _jsonable, package_version

    out = Path(out).resolve()
    spec = spec if spec is not None else _read_spec(out)
    grid_dims = spec.dims
    done = {}
    for job in spec.jobs:
        p = job_path(out, job)
        if not (p / "zarr.json").is_file():
            continue
        attrs = dict(zarr.open_group(p, mode="r").attrs)
        if attrs.get("status") != "complete":
            continue
        stored = attrs.get("config")
        stored = json.loads(stored) if isinstance(stored, str) else stored
        if not _same_config(stored, job):
            raise RunRefused(f"{p} holds another config than job {job.label()}")
        done[job.name] = (job, open_run(p), attrs)
    if not done:
        raise RunRefused(f"{out}: no complete job to combine")
    items = list(done.values())
    first = items[0][1]
    def fits(v):
        """Numbers only (text cannot be NaN-filled for a missing job), the same dims in every job, and
        the same size along dims without coordinates (e.g. x, y, z of tissues of different depths)."""
        if first[v].dtype.kind not in "biuf":
            return False
        for _, ds, _ in items:
            if v not in ds.data_vars or ds[v].dims != first[v].dims:
                return False
            if any(d not in first.coords and ds.sizes[d] != first.sizes[d] for d in first[v].dims):
                return False
        return True

    names = [v for v in first.data_vars if fits(v)]
    job_dims = {d for _, ds, _ in items for v in names for d in ds[v].dims}
    clash = set(grid_dims) & (job_dims | set(names) | {c for _, ds, _ in items for c in ds.coords})
    if clash:
        raise SweepError(f"[dims] {sorted(clash)[0]!r}: also a dim or variable of the job stores; "
                         f"rename it in [dims]")
    template = first[names].where(False) if names else None
    by_name = {job.name: ds for job, ds, _ in items}

    def leaf(job: Job):
        ds = by_name.get(job.name)
        if ds is None:
            ds = template
        else:
            ds = ds[names]
        return ds.expand_dims({d: [job.coords[d]] for d in reversed(grid_dims)})

    if names:
        flat = {job.index: job for job in spec.jobs}

        def nest(prefix):
            if len(prefix) == len(spec.grid):
                return leaf(flat[prefix])
            return [nest(prefix + (i,)) for i in range(spec.shape[len(prefix)])]

        combined = xr.combine_nested(nest(()), concat_dim=list(grid_dims), join="outer", coords="different",
                                     compat="no_conflicts", combine_attrs="drop", data_vars="all")
        combined = combined.transpose(*grid_dims, ...)
        for v in names:                                   # units and long names of the jobs' variables
            combined[v].attrs = dict(first[v].attrs)
        for c in combined.coords:
            if c in first.coords:
                combined[c].attrs = dict(first[c].attrs)
    else:
        combined = xr.Dataset()
    # strings as object arrays: zarr stores them as variable-length strings
    coords = {g.name: np.array(g.coords, dtype=object) if any(isinstance(c, str) for c in g.coords)
              else list(g.coords) for g in spec.grid}
    combined = combined.assign_coords(coords)
    shape = spec.shape
    complete = np.zeros(shape, dtype=bool)
    for job, _, _ in items:
        complete[job.index] = True
    combined["complete"] = (grid_dims, complete, {"long_name": "the job's run is complete"})
    # numeric root attributes of the job stores, as variables over the grid dims
    skip = set(grid_dims) | set(combined.coords) | {"seed", "name"}
    keys = [k for k in items[0][2]
            if all(k in a and _is_number(a[k]) for _, _, a in items) and k not in skip]
    for k in keys:
        arr = np.full(shape, np.nan)
        for job, _, a in items:
            arr[job.index] = float(a[k])
        name = f"final_{k}" if k in combined.data_vars else k
        combined[name] = (grid_dims, arr, {
            "long_name": f"{k} at the end of the job's run (run store attribute)", "units": _attr_units(k)})
    for c, g in zip(grid_dims, spec.grid):
        combined[c].attrs.update({"long_name": f"sweep dim over {g.key}", "config_key": g.key,
                                  "config_values": _canon(list(g.values))})
    for v in combined.variables.values():
        v.encoding = {}
    for v in list(combined.data_vars):                # uniform chunks: one job per chunk along the grid
        var = combined[v]
        if var.chunks is not None or any(d not in grid_dims for d in var.dims):
            ch = {d: 1 for d in grid_dims}
            for d in var.dims:
                if d not in grid_dims:
                    fc = first[v].chunksizes.get(d) if v in first else None
                    ch[d] = max(fc) if fc else -1
            combined[v] = var.chunk(ch)
    incomplete = [job.name for job in spec.jobs if job.name not in done]
    combined.attrs = _jsonable({
        "title": "neural-tissue sweep", "package": "neural-tissue", "package_version": package_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "grid_dims": list(grid_dims), "jobs": [j.name for j in spec.jobs], "incomplete_jobs": incomplete,
    })
    combined.attrs["sweep"] = _canon(spec.to_dict())
    target = out / "sweep.zarr"
    tmp = out / "sweep.zarr.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    with dask.config.set(scheduler="threads"):
        combined.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
    for _, ds, _ in items:
        ds.close()
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return _open(target)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def table(ds, metric: str | None = None) -> list[str]:
    """Lines of text: the final ``metric`` (its last value along the jobs' own dims),
    mean and standard deviation over ``seed`` (when a dim) per other grid coordinate.
    By default ``test_accuracy`` (learning runs); for damage runs the share of the lost
    accuracy won back by the first recovery arm after its last epoch
    (``<arm>_recovered_epoch<E>``), or ``A1`` when no arm recovered."""
    if metric is None:
        metric = "test_accuracy" if "test_accuracy" in ds else _recovery_headline(ds)
    if metric not in ds:
        return []
    grid = json.loads(ds.attrs.get("grid_dims", "[]")) if isinstance(ds.attrs.get("grid_dims"), str) \
        else list(ds.attrs.get("grid_dims", []))
    da = ds[metric]
    da = da.isel({d: -1 for d in da.dims if d not in grid}).load()
    rows = [d for d in grid if d != "seed"]
    over = "seed" in grid
    head = f"final {metric}" + (f", mean ± sd over {ds.sizes['seed']} seeds" if over else "")
    if not rows:
        vals = da.values.ravel()
        return [f"{head}: {_mean_sd(vals)}"]
    width = [max(len(d), *(len(_cell(c)) for c in ds[d].values)) for d in rows]
    lines = ["  ".join(d.rjust(w) for d, w in zip(rows, width)) + f"  {head}"]
    for combo in itertools.product(*(range(ds.sizes[d]) for d in rows)):
        sel = da.isel(dict(zip(rows, combo)))
        cells = [_cell(ds[d].values[i]).rjust(w) for d, i, w in zip(rows, combo, width)]
        lines.append("  ".join(cells) + "  " + _mean_sd(np.asarray(sel.values).ravel()))
    return lines


def _recovery_headline(ds) -> str:
    from .damage_config import ARMS

    found = [(m.group(1), int(m.group(2))) for v in ds.data_vars
             if (m := re.fullmatch(rf"({'|'.join(ARMS)})_recovered_epoch(\d+)", str(v)))]
    if not found:
        return "A1"
    arm = min((a for a, _ in found), key=ARMS.index)
    return f"{arm}_recovered_epoch{max(e for a, e in found if a == arm)}"


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v.item() if hasattr(v, "item") else v)


def _mean_sd(vals) -> str:
    vals = np.asarray(vals, dtype=float)
    ok = vals[np.isfinite(vals)]
    if not len(ok):
        return "n/a"
    s = f"{ok.mean():.3f}"
    if len(ok) > 1:
        s += f" ± {ok.std(ddof=1):.3f}"
    if len(ok) < len(vals):
        s += f" ({len(ok)} of {len(vals)} jobs)"
    return s
