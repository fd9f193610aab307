"""Settling-step throughput of the engine's kernels against scipy.sparse CSR, and the memory bandwidth.

For each lattice size (26-neighbour stencil, float32, hard sigmoid, T = 0) and
each batch size B, in the same run:

* **table**: ``dynamics.kernels.langevin_step`` on the padded synapse table;
* **stencil**: ``dynamics.stencil.stencil_step`` on the stencil view of the
  same table (DIA weights of the 13 positive offsets, each synapse once);
* **ours**: what ``Langevin._run`` does per step: the kernel that
  ``dynamics.stencil.choose`` picks for this B, plus (stencil) the view build
  amortised over a settle of ``--settle-steps`` steps;
* **scipy**: the same Euler step with a float32 CSR matrix from
  ``tissue.to_scipy()``: ``s_new = clip(s + dt * (-s + W @ s + b), 0, 1)``
  (matrix-vector for B = 1, matrix-matrix ``(N, B)`` otherwise; the
  elementwise part in place with NumPy); the sparse product alone is timed too;
* **settle**: ``Langevin.settle`` for ``--settle-steps`` steps, per step
  (includes the view build, the Python loop, the convergence bookkeeping, the
  initial state and the final energy).

The kernels are called directly with the buffers ``Langevin._run`` allocates
(``dynamics.stencil.Stepper``). Every update is checked against a float64
reference (max abs difference ~ float32 rounding). All updates of one (size, B)
are timed interleaved (one sample of each in turn) after a warm-up; the
median is the figure, the best sample is shown too. The view build is timed
separately (median of several builds). The memory bandwidth of the machine is
measured in the same run (STREAM-style copy and triad: NumPy single thread,
Numba ``prange`` with 1 and 2 threads). The machine may be shared: the CPU
time taken by other processes during each measurement is recorded, and the
script waits (up to ``--max-wait`` s) for a quiet machine before each
measurement.

Usage::

    NUMBA_NUM_THREADS=2 python bench/bench_settle.py [--sizes 32 64 128] [--trials 1 16]
        [--repeats N] [--settle-steps S] [--out docs/benchmarks.md] [--no-write]

Results go to stdout and to a section of ``--out`` delimited by
``<!-- bench_settle:begin -->`` / ``<!-- bench_settle:end -->`` (replaced on
each run; the rest of the file is kept).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import math
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from numba import njit, prange  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dynamics import kernels as K  # noqa: E402
from dynamics import stencil as ST  # noqa: E402
from dynamics.langevin import Langevin  # noqa: E402
from tissue import Tissue  # noqa: E402

BEGIN, END = "<!-- bench_settle:begin -->", "<!-- bench_settle:end -->"
DT = 0.1  # time step of the timed update (the work does not depend on it)
GB = 1e9


# ----------------------------------------------------------------- machine
def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical, {usable} usable",
        "memory": mem,
        "numba threads": numba.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
    }


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


# ------------------------------------------------------- background load
class CpuLoad:
    """CPU time used by *other* processes, as a fraction of the whole machine.

    The benchmark may share the machine; a 2-thread kernel whose second
    thread is descheduled waits at every barrier, so a busy neighbour can make
    it several times slower. Each timed block records this figure.
    """

    @staticmethod
    def snapshot():
        try:
            vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            total = sum(vals[:8])
            busy = total - vals[3] - vals[4]  # minus idle and iowait
            st = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
            mine = int(st[11]) + int(st[12])  # utime + stime, clock ticks like /proc/stat
            return total, busy, mine
        except (OSError, IndexError, ValueError):  # pragma: no cover - not Linux
            return None

    @staticmethod
    def others(a, b) -> float:
        if a is None or b is None or b[0] <= a[0]:
            return float("nan")
        return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / (b[0] - a[0]))


def wait_idle(log, threshold=0.10, max_wait=120.0, window=1.0):
    """Wait (up to ``max_wait`` s) until other processes use < ``threshold`` of the CPUs."""
    t_end = time.perf_counter() + max_wait
    told = False
    while True:
        a = CpuLoad.snapshot()
        time.sleep(window)
        load = CpuLoad.others(a, CpuLoad.snapshot())
        if not load >= threshold:  # also when unknown (nan)
            return load
        if time.perf_counter() > t_end:
            log(f"  (machine still busy: other processes use {100 * load:.0f}% of the CPUs; measuring anyway)")
            return load
        if not told:
            log(f"  waiting for a quiet machine (other processes use {100 * load:.0f}% of the CPUs) ...")
            told = True


# --------------------------------------------------------------- bandwidth
@njit(parallel=True)
def _triad(a, b, c, q):
    for i in prange(a.shape[0]):
        a[i] = b[i] + q * c[i]


@njit(parallel=True)
def _copy(a, b):
    for i in prange(a.shape[0]):
        a[i] = b[i]


def _best(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def measure_bandwidth(n_elem: int = 2**25, repeats: int = 10) -> dict:
    """STREAM-style bandwidth in GB/s (1e9 B/s), best of ``repeats``.

    Bytes are counted as STREAM does: copy 16 B per float64 element (read +
    write), triad 24 B (two reads, one write); write-allocate traffic is not
    counted, the same convention as the kernel figures. NumPy's triad is two
    passes (``a = q*c; a += b``: 40 B moved, 24 B counted), so it understates
    the bandwidth; the Numba triad is one pass.
    """
    a = np.zeros(n_elem)
    b = np.ones(n_elem)
    c = np.full(n_elem, 2.0)
    q = 3.0
    out = {}

    def np_triad():
        np.multiply(c, q, out=a)
        np.add(a, b, out=a)

    out["numpy copy (1 thread)"] = 16 * n_elem / _best(lambda: np.copyto(a, b), repeats) / GB
    out["numpy triad (1 thread, 2 passes)"] = 24 * n_elem / _best(np_triad, repeats) / GB
    nt = numba.get_num_threads()
    for threads in sorted({1, nt}):
        numba.set_num_threads(threads)
        tag = f"{threads} thread{'s' * (threads > 1)}"
        out[f"numba copy ({tag})"] = 16 * n_elem / _best(lambda: _copy(a, b), repeats) / GB
        out[f"numba triad ({tag})"] = 24 * n_elem / _best(lambda: _triad(a, b, c, q), repeats) / GB
    numba.set_num_threads(nt)
    if not np.all(a == 7.0):
        raise AssertionError("triad computed a wrong result")
    return out


# ----------------------------------------------------------------- timing
def _calibrate(fn, min_time):
    fn()
    t0 = time.perf_counter()
    fn()
    est = time.perf_counter() - t0
    return max(1, int(math.ceil(min_time / max(est, 1e-9))))


def time_interleaved(fns: dict, repeats: int, min_time: float = 0.02):
    """``({label: (median, best)}, load)``: seconds per call of each function,
    one sample of each in turn; a sample averages enough calls to last
    ``min_time``; ``load`` is the CPU share of other processes meanwhile."""
    inner = {k: _calibrate(f, min_time) for k, f in fns.items()}
    samples = {k: [] for k in fns}
    a = CpuLoad.snapshot()
    for _ in range(repeats):
        for k, f in fns.items():
            m = inner[k]
            t0 = time.perf_counter()
            for _ in range(m):
                f()
            samples[k].append((time.perf_counter() - t0) / m)
    load = CpuLoad.others(a, CpuLoad.snapshot())
    return {k: (statistics.median(v), min(v)) for k, v in samples.items()}, load


# ------------------------------------------------------------- the updates
class KernelStep:
    """One settling step through a :class:`dynamics.stencil.Stepper` (the
    table or the stencil view) with the buffers ``Langevin._run`` allocates
    (hard sigmoid, T = 0, ``write_v`` False)."""

    def __init__(self, tissue, s0, stepper):
        n, nb = s0.shape
        self.step = stepper
        self.s = s0
        self.s_out = np.empty_like(s0)
        self.vpart = np.zeros((K.n_chunks(n), nb))
        self.spart = np.zeros((K.n_chunks(n), nb))
        self.args = (tissue.bias, tissue.clamped.astype(np.uint8), self.s, self.s, self.s_out, self.s_out,
                     np.zeros((1, 1), s0.dtype), np.ones(nb, s0.dtype), s0.dtype.type(DT), 0.0, np.uint64(0),
                     K.ACT_CODES[tissue.activation], False, self.vpart, self.spart,
                     np.full(n, -1, np.int32), np.zeros((1, nb), s0.dtype), 0.0)

    def __call__(self):
        self.step(*self.args)
        return self.s_out


class ScipyStep:
    """``s_new = clip(s + dt * (-s + W @ s + b), 0, 1)`` with a float32 CSR ``W``."""

    def __init__(self, csr, bias, s0):
        self.W = csr
        self.x = np.ascontiguousarray(s0[:, 0]) if s0.shape[1] == 1 else s0
        self.b = bias if self.x.ndim == 1 else bias[:, None]
        self.dt = s0.dtype.type(DT)

    def matvec(self):
        return self.W @ self.x

    def __call__(self):
        h = self.W @ self.x
        h += self.b
        h -= self.x
        h *= self.dt
        h += self.x
        np.clip(h, 0, 1, out=h)
        return h


# ------------------------------------------------------------------ bytes
def bytes_table(n, k, nb, itemsize=4):
    """Compulsory traffic of one table step: the whole padded table (nbr int32
    + w per slot), bias, frozen (uint8), deg (int32), one read of the state
    and one write of the new state (neighbour re-reads assumed to hit the cache)."""
    return n * k * (4 + itemsize) + n * (itemsize + 1 + 4) + 2 * n * nb * itemsize


def bytes_stencil(n, nk, nb, n_res=0, itemsize=4):
    """Compulsory traffic of one stencil step: the DIA weights once (``nk``
    per neuron; the backward reads ``wT[k, i - d]`` assumed to hit the cache),
    the residual (index + weight per entry, and its row pointers when there
    is one), bias, frozen, one read and one write of the state."""
    res = n_res * (4 + itemsize) + (8 * (n + 1) if n_res else 0)
    return n * nk * itemsize + res + n * (itemsize + 1) + 2 * n * nb * itemsize


def bytes_scipy(n, nnz, nb, itemsize=4):
    """indices (int32) + data per nonzero, indptr, bias, state read and write."""
    return nnz * (4 + itemsize) + (n + 1) * 4 + n * itemsize + 2 * n * nb * itemsize


# ------------------------------------------------------------------- run
def median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts)


def run_size(side, trials, repeats, settle_steps, log, idle):
    n = side**3
    gc.collect()
    t0 = time.perf_counter()
    tissue = Tissue.cube(side, stencil=26, seed=0)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    tissue.bias[:] = rng.uniform(-0.1, 0.1, n).astype(tissue.dtype)
    t0 = time.perf_counter()
    csr = tissue.to_scipy()
    csr_build = time.perf_counter() - t0
    if not (csr.dtype == np.float32 and csr.indices.dtype == np.int32):
        raise AssertionError(f"CSR is {csr.dtype}/{csr.indices.dtype}, expected float32/int32")
    kslots = tissue.syn.width
    nnz = csr.nnz
    # the stencil view, as Langevin._run builds it (plan + DIA pass), timed alone
    ST.stepper(tissue, 1, 10**6)  # warm-up (compiles the builder)
    idle()
    view_t, view_best = median_time(lambda: ST.stepper(tissue, 1, 10**6), 5)
    plan_t, _ = median_time(lambda: ST.plan(tissue.syn, tissue.lattice.shape), 5)
    view = ST.build_view(tissue.syn, tissue.lattice.shape)
    nk = len(view.d)
    log(f"{side}^3: N={n:,} K={kslots} nnz={nnz:,}; Tissue.cube {build:.1f} s, to_scipy {csr_build:.1f} s, "
        f"view build {view_t * 1e3:.1f} ms (plan {plan_t * 1e3:.1f} ms), {nk} offsets, "
        f"{view.n_residual} residual synapses; peak RSS {peak_rss_gb():.2f} GB")
    size_row = dict(side=side, n=n, k=kslots, nnz=nnz, build_s=build, csr_s=csr_build, rss_gb=peak_rss_gb(),
                    view=view_t, view_best=view_best, plan=plan_t, nk=nk, n_res=len(view.ridx))
    rows = []
    for nb in trials:
        s0 = rng.uniform(0, 1, (n, nb)).astype(np.float32)
        kind = ST.choose(nb, settle_steps, view.cover)
        table = KernelStep(tissue, s0, ST.Stepper(tissue.syn))
        stencil = KernelStep(tissue, s0, ST.Stepper(tissue.syn, view))
        sci = ScipyStep(csr, tissue.bias, s0)
        ref64 = np.clip(s0 + DT * (-s0 + csr.astype(np.float64) @ s0.astype(np.float64)
                                  + tissue.bias[:, None].astype(np.float64)), 0, 1)
        err = {}
        for name, fn in (("table", table), ("stencil", stencil), ("scipy", sci)):
            err[name] = float(np.abs(fn().reshape(n, nb) - ref64).max())
        del ref64
        if max(err.values()) > 1e-5:
            raise AssertionError(f"{side}^3 B={nb}: max abs error vs float64 {err}")
        idle()
        t, load = time_interleaved({"table": table, "stencil": stencil, "scipy": sci, "scipy_mv": sci.matvec},
                                   repeats)
        # Langevin.settle per step (reference; includes the view build)
        eng = Langevin(dt=DT, temperature=0.0, tol=1e-12, max_steps=settle_steps)
        init = s0.T
        eng.settle(tissue, init=init, steps=2)  # warm-up (compiles the energy kernel)
        idle()
        st = []
        for _ in range(3):
            t0 = time.perf_counter()
            res = eng.settle(tissue, init=init, steps=settle_steps)
            st.append((time.perf_counter() - t0) / settle_steps)
        if int(res.steps.max()) != settle_steps:
            raise AssertionError("settle converged early; raise --settle-steps or lower tol")
        amort = view_t / settle_steps if kind == "stencil" else 0.0
        ours, ours_best = t[kind][0] + amort, t[kind][1] + amort
        row = dict(side=side, n=n, nb=nb, nnz=nnz, k=kslots, kind=kind, ours=ours, ours_best=ours_best,
                   table=t["table"][0], table_best=t["table"][1], stencil=t["stencil"][0],
                   stencil_best=t["stencil"][1], scipy=t["scipy"][0], scipy_best=t["scipy"][1],
                   scipy_mv=t["scipy_mv"][0], load=load, settle=statistics.median(st), err=err,
                   b_table=bytes_table(n, kslots, nb), b_stencil=bytes_stencil(n, nk, nb, len(view.ridx)),
                   b_scipy=bytes_scipy(n, nnz, nb))
        rows.append(row)
        log(f"  B={nb:>2}: ours ({kind}) {ours * 1e3:8.3f} ms  table {t['table'][0] * 1e3:8.3f} "
            f"(best {t['table'][1] * 1e3:.3f})  stencil {t['stencil'][0] * 1e3:8.3f} "
            f"(best {t['stencil'][1] * 1e3:.3f})  scipy {t['scipy'][0] * 1e3:8.3f} (best {t['scipy'][1] * 1e3:.3f}, "
            f"matvec {t['scipy_mv'][0] * 1e3:.3f})  ours x{t['scipy'][0] / ours:.2f}  "
            f"settle/step {row['settle'] * 1e3:.3f} ms  (other processes: {100 * load:.0f}% CPU)")
        del table, stencil, sci, s0
        gc.collect()
    del tissue, csr, view
    gc.collect()
    return size_row, rows


# ----------------------------------------------------------------- report
def tables(sizes, rows, bw, bw_load, settle_steps):
    nt = numba.get_num_threads()
    bw_n = bw.get(f"numba triad ({nt} threads)", bw.get("numba triad (1 thread)"))
    bw_1 = bw.get("numba triad (1 thread)", bw_n)
    b1 = {r["side"]: r["table"] for r in rows if r["nb"] == 1}
    L = ["#### Build (26 neighbours, float32)\n",
         "*view build*: what `Langevin._run` does at the start of every settle (`dynamics.stencil.stepper`: "
         "plan the offsets on sampled rows, fill the DIA weights in one parallel pass over the table), "
         "median of 5 (best); in table steps at B = 1 (same run).\n",
         "| lattice | N | slots K | nnz (synapses x 2) | Tissue.cube | to_scipy | view build | of which plan | "
         "= table steps (B = 1) | DIA offsets | residual entries | peak RSS so far |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in sizes:
        steps = f"{s['view'] / b1[s['side']]:.1f}" if s["side"] in b1 else "-"
        L.append(f"| {s['side']}^3 | {s['n']:,} | {s['k']} | {s['nnz']:,} | {s['build_s']:.1f} s | "
                 f"{s['csr_s']:.1f} s | {s['view'] * 1e3:.1f} ms ({s['view_best'] * 1e3:.1f}) | "
                 f"{s['plan'] * 1e3:.1f} ms | {steps} | {s['nk']} | {s['n_res']} | {s['rss_gb']:.2f} GB |")
    L += ["", "#### Throughput of one settling step\n",
          f"Median of the interleaved samples (best sample in parentheses). *ours* = the kernel "
          f"`dynamics.stencil.choose` picks, plus the view build / {settle_steps} (a settle of "
          f"{settle_steps} steps). Speed-ups are scipy's time over ours.\n",
          "| lattice | B | kernel | ours ms/step | table ms/step | stencil ms/step | scipy ms/step | "
          "scipy matvec only | **ours vs scipy** | table vs scipy | ours neuron-upd/s | ours synapse-upd/s | "
          "scipy neuron-upd/s | settle ms/step | max abs err vs float64 (table, stencil, scipy) | other load |",
          "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        nu, su = r["n"] * r["nb"], r["nnz"] * r["nb"]
        e = r["err"]
        L.append(
            f"| {r['side']}^3 | {r['nb']} | {r['kind']} | {r['ours'] * 1e3:.3f} ({r['ours_best'] * 1e3:.3f}) | "
            f"{r['table'] * 1e3:.3f} ({r['table_best'] * 1e3:.3f}) | "
            f"{r['stencil'] * 1e3:.3f} ({r['stencil_best'] * 1e3:.3f}) | "
            f"{r['scipy'] * 1e3:.3f} ({r['scipy_best'] * 1e3:.3f}) | {r['scipy_mv'] * 1e3:.3f} | "
            f"**{r['scipy'] / r['ours']:.2f}x** ({r['scipy_best'] / r['ours_best']:.2f}x) | "
            f"{r['scipy'] / r['table']:.2f}x | {nu / r['ours']:.3g} | {su / r['ours']:.3g} | "
            f"{nu / r['scipy']:.3g} | {r['settle'] * 1e3:.3f} | "
            f"{e['table']:.1e}, {e['stencil']:.1e}, {e['scipy']:.1e} | {100 * r['load']:.0f}% |")
    L += ["", "#### Effective memory bandwidth (compulsory bytes / median kernel time)\n",
          f"Reference: Numba triad {bw_n:.1f} GB/s on {nt} threads, {bw_1:.1f} GB/s on 1 thread "
          "(scipy is single-threaded). *table* counts the whole padded table (nbr int32 + w float32 per "
          "slot), bias, frozen, deg, one state read and one state write; *stencil* the DIA weights once "
          "(13 floats per neuron), bias, frozen, one state read and one write; scipy indices + data per "
          "nonzero, indptr, bias, one state read and one write.\n",
          f"| lattice | B | table MB/step | table GB/s | stencil MB/step | stencil GB/s | "
          f"stencil % of {nt}-thread triad | scipy MB/step | scipy GB/s (matvec only) | "
          "matvec % of 1-thread triad |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        gt, gs = r["b_table"] / r["table"] / GB, r["b_stencil"] / r["stencil"] / GB
        gm = r["b_scipy"] / r["scipy_mv"] / GB
        L.append(f"| {r['side']}^3 | {r['nb']} | {r['b_table'] / 1e6:.1f} | {gt:.1f} | "
                 f"{r['b_stencil'] / 1e6:.1f} | {gs:.1f} | {100 * gs / bw_n:.0f}% | "
                 f"{r['b_scipy'] / 1e6:.1f} | {gm:.1f} | {100 * gm / bw_1:.0f}% |")
    L += ["", "#### Machine bandwidth (STREAM-style, best of 10, 3 x 256 MiB float64 arrays; "
          f"other processes {100 * bw_load:.0f}% CPU)\n", "| kernel | GB/s |", "|---|---:|"]
    L += [f"| {k} | {v:.1f} |" for k, v in bw.items()]
    L.append("")
    return "\n".join(L)


def targets(rows):
    out = []
    for r in rows:
        need = 2.0 if r["nb"] == 1 else 3.0
        ratio = r["scipy"] / r["ours"]
        out.append(f"{r['side']}^3 B={r['nb']}: {ratio:.2f}x (target {need:g}x) {'met' if ratio >= need else 'MISSED'}")
    for r in rows:
        if r["side"] == 128 and r["nb"] == 16:
            nu = r["n"] * r["nb"] / r["ours"]
            out.append(f"128^3 B=16: {nu:.3g} neuron-updates/s (target 1e8) {'met' if nu >= 1e8 else 'MISSED'}")
    return out


def write_section(path: Path, body: str):
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nFigures recorded by the scripts in `bench/`; rerun with `make bench`.\n\n")
    section = f"{BEGIN}\n{body}\n{END}"
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        text = pre + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128], help="lattice sides (cubes)")
    p.add_argument("--trials", type=int, nargs="+", default=[1, 16], help="batch sizes B")
    p.add_argument("--repeats", type=int, default=15, help="timing samples per update (median taken)")
    p.add_argument("--settle-steps", type=int, default=100,
                   help="steps of the Langevin.settle reference, and of the settle the view build is amortised over")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--no-write", action="store_true", help="print only; do not touch --out")
    p.add_argument("--idle-threshold", type=float, default=0.10,
                   help="wait until other processes use less than this share of the CPUs (0: never wait)")
    p.add_argument("--max-wait", type=float, default=120.0, help="longest wait for a quiet machine, s")
    args = p.parse_args(argv)
    if min(args.sizes) < 3 or min(args.trials) < 1 or args.repeats < 1 or args.settle_steps < 1:
        p.error("sizes must be >= 3, trials >= 1, repeats >= 1, settle-steps >= 1")

    def log(msg):
        print(msg, flush=True)

    def idle():
        if args.idle_threshold > 0:
            wait_idle(log, args.idle_threshold, args.max_wait)

    info = machine_info()
    argv_s = " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    cmd = f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS')} python bench/bench_settle.py {argv_s}".strip()
    log("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    sizes, rows = [], []
    t_start = time.perf_counter()
    for side in args.sizes:
        s, r = run_size(side, args.trials, args.repeats, args.settle_steps, log, idle)
        sizes.append(s)
        rows += r
    log("measuring memory bandwidth ...")
    idle()
    a = CpuLoad.snapshot()
    bw = measure_bandwidth()
    bw_load = CpuLoad.others(a, CpuLoad.snapshot())
    for k, v in bw.items():
        log(f"  {k:<34s} {v:6.1f} GB/s")
    log(f"  (other processes: {100 * bw_load:.0f}% CPU)")
    try:
        info["threading layer"] = numba.threading_layer()
    except ValueError:  # pragma: no cover - no parallel region ran
        pass
    body = [
        f"### Settling step: Numba kernels vs scipy.sparse ({_dt.date.today().isoformat()})\n",
        f"Command: `{cmd}` (wall time {time.perf_counter() - t_start:.0f} s)\n",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + "\n",
        "Update timed: one Euler step of the projected hard sigmoid at T = 0, "
        "`s_new = clip(s + dt (-s + W s + b), 0, 1)`, float32, 26-neighbour cube, random weights "
        "(uniform, scale 1/sqrt(26)), random bias and state. *table* = `dynamics.kernels.langevin_step` on "
        "the padded synapse table; *stencil* = `dynamics.stencil.stencil_step` on the stencil view; both "
        "called with the buffers `Langevin._run` allocates. *scipy* = float32 `csr_matrix` from "
        "`tissue.to_scipy()`, `W @ s` (a vector for B = 1, an `(N, B)` matrix otherwise) plus the in-place "
        "NumPy update; *settle* = `Langevin.settle(..., steps=S)` wall time / S "
        f"(S = {args.settle_steps}, including the view build, set-up and the final energy). {args.repeats} "
        "interleaved samples after a warm-up. *other load*: CPU share used by other processes during the "
        "timing (the machine is shared; a 2-thread kernel slows down sharply when a neighbour takes "
        "a core, so figures with a high load are pessimistic, the best sample less so).\n",
        tables(sizes, rows, bw, bw_load, args.settle_steps),
        "Targets (issue 2): " + "; ".join(targets(rows)) + ".\n",
    ]
    text = "\n".join(body)
    log("\n" + text)
    if not args.no_write:
        write_section(args.out, text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
