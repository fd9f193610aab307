"""Stencil view of the wiring: the lattice-regular synapses in DIA layout, and its settling kernel.

The synapse table (:class:`tissue.wiring.Synapses`) stores every synapse twice
(once per end) with an explicit neighbour index: 8 bytes per slot, 208 bytes
per neuron for a 26-neighbour stencil. Most synapses of a lattice tissue join
a voxel to ``voxel + o`` for a few fixed offsets ``o``, and weights are
symmetric, so the engine can read far fewer bytes. At the start of a settle it
builds a *view* of the table:

``offs`` ``(nk, 3)`` the "positive" half of the offsets that the tissue uses
         (lexicographically > 0, from the ``(2R+1)^3`` box, ``R = 2``), ``d`` their flat
         distances ``ox ny nz + oy nz + oz > 0``, ascending;
``wT``   ``(nk, N)`` DIA ("diagonal") weights: ``wT[k, i]`` is the weight of the
         synapse between ``i`` and the voxel at 3D displacement ``offs[k]`` from
         ``i`` (flat index ``i + d[k]``), 0 where there is none. Each such
         synapse is stored *once*;
``rptr, ridx, rw`` a CSR *residual* of every other synapse (small-world
         rewired, wider radius, later additions), both directions.

The field of neuron ``i`` is then

    h_i = b_i + sum_k ( wT[k, i] r[i + d_k] + wT[k, i - d_k] r[i - d_k] ) + sum_residual w r

which reads 4 bytes per synapse of weights, contiguous over neurons (no index,
no gather): 52 bytes per neuron for 26 neighbours instead of 208. A weight of
0 masks every non-neighbour (row ends, dead voxels); no index leaves
``[0, N)``: each offset's range is clipped at the ends of the array. (So a
non-finite state also reaches the non-neighbours in its diagonals, as
``0 * inf``; the engine stops at the first non-finite state anyway.)

One trial is bound by the bytes read and runs several times faster than the
table kernel; with many trials both are bound by arithmetic on the state
rows, and the view wins only up to ``MAX_TRIALS`` (see :func:`choose`).

The view is rebuilt at every settle (:func:`stepper`), since plasticity
rewrites ``syn.w`` in place between settles; the table stays the single
source of truth. The build is one parallel O(nnz) pass over the table (a
second one only when residual synapses exist).

:func:`stencil_step` has the contract of :func:`dynamics.kernels.langevin_step`
(same outputs, activations, noise stream, frozen neurons, masks, nudge, fixed
chunks of 1024 neurons: bit-identical for any thread count), with the view in
place of the table. Its sums run in another order, so it agrees with
``langevin_step`` to float rounding, not bit for bit.

Which kernel a settle uses is decided by :func:`choose` (see its docstring
and docs/benchmarks.md); ``KERNEL`` (or :func:`use_kernel`) forces one.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
from numba import carray, njit, prange, types, uint32
from numba.core import cgutils
from numba.extending import intrinsic

from ._llvm import TB, bitsf, fbits, izeros
from .kernels import CHUNK, HARD_SIGMOID, LINEAR, SIGMOID, TANH, _frozen_row, _general_row, langevin_step, rho

R = 2                # candidate offsets: the positive half of the (2R + 1)^3 box
MIN_SHARE = 0.25     # an offset joins the DIA when >= this share of rows holds it (both signs / 2)
SAMPLE = 1024        # rows sampled to choose the offsets
# fastmath without "reassoc": reassociation would chain the partial sums of a pass
# into one serial FMA chain, and no loop here needs a reassociated reduction
FM = {"contract", "arcp"}
KERNEL = "auto"      # "auto", "stencil" or "table": the kernel Langevin uses
MIN_STEPS = 4        # "auto" builds a view only for settles that may run at least this many steps
MIN_COVER = 0.5      # ... and when the DIA holds at least this share of the synapses
MAX_TRIALS = 16      # ... and for at most this many trials (beyond, the table kernel was as fast or faster)


# ------------------------------------------------------------------ the view
@dataclass
class StencilView:
    """The DIA + residual view of a synapse table (see the module docstring)."""

    offs: np.ndarray     # (nk, 3) int64 positive offsets
    d: np.ndarray        # (nk,) int64 flat distances, ascending, > 0
    wT: np.ndarray       # (nk, N) weights
    rptr: np.ndarray     # (N + 1,) int64
    ridx: np.ndarray     # (nr,) int32
    rw: np.ndarray       # (nr,) weights
    n_dia: int           # synapses (undirected) held by wT
    build_seconds: float = 0.0

    @property
    def n(self) -> int:
        return self.wT.shape[1]

    @property
    def n_residual(self) -> int:
        """Synapses (undirected) held by the residual."""
        return len(self.ridx) // 2

    @property
    def cover(self) -> float:
        """Share of the synapses held by the DIA part."""
        tot = self.n_dia + self.n_residual
        return self.n_dia / tot if tot else 1.0

    def to_scipy(self):
        """The weight matrix the view represents, as ``scipy.sparse.csr_matrix``
        (explicit zeros of ``wT`` are dropped: they are not synapses)."""
        import scipy.sparse as sp

        n = self.n
        rows, cols, vals = [np.repeat(np.arange(n), np.diff(self.rptr))], [self.ridx.astype(np.int64)], [self.rw]
        for k, dk in enumerate(self.d.tolist()):
            i = np.flatnonzero(self.wT[k])
            rows += [i, i + dk]
            cols += [i + dk, i]
            vals += [self.wT[k, i], self.wT[k, i]]
        m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        m.sort_indices()
        return m


def _half_box(r: int) -> np.ndarray:
    g = np.arange(-r, r + 1)
    o = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    pos = (o[:, 0] > 0) | ((o[:, 0] == 0) & ((o[:, 1] > 0) | ((o[:, 1] == 0) & (o[:, 2] > 0))))
    return o[pos]


@njit(cache=True)
def _offset_counts(nbr, deg, rows, nx, ny, nz, r):
    """Synapses of the given rows per displacement ``+-o`` (``o`` in the
    ``(2r+1)^3`` box, counted at the code of the positive one), and in all."""
    w = 2 * r + 1
    count = np.zeros(w**3, dtype=np.int64)
    total = 0
    for i in rows:
        xi, yi, zi = i // (ny * nz), (i // nz) % ny, i % nz
        for q in range(deg[i]):
            j = nbr[i, q]
            dx, dy, dz = j // (ny * nz) - xi, (j // nz) % ny - yi, j % nz - zi
            total += 1
            if abs(dx) > r or abs(dy) > r or abs(dz) > r:
                continue
            if dx < 0 or (dx == 0 and (dy < 0 or (dy == 0 and dz < 0))):
                dx, dy, dz = -dx, -dy, -dz
            count[((dx + r) * w + dy + r) * w + dz + r] += 1
    return count, total


def plan(syn, shape, sample: int = SAMPLE, min_share: float = MIN_SHARE, seed: int = 0) -> tuple[np.ndarray, float]:
    """``(offs, cover)``: the positive offsets (``(nk, 3)`` int64, by ascending
    flat distance) that at least ``min_share`` of the rows hold (``+o`` and
    ``-o`` counting half each), and the share of the synapses they hold, both
    estimated on ``sample`` rows drawn with a fixed seed (all rows of a small
    tissue). Only performance depends on this choice: the view is exact for
    any set of offsets."""
    nx, ny, nz = (int(a) for a in shape)
    n = syn.n
    rows = np.arange(n) if n <= sample else np.sort(np.random.default_rng(seed).integers(0, n, sample))
    count, total = _offset_counts(syn.nbr, syn.deg, rows, nx, ny, nz, R)
    if total == 0:
        return np.zeros((0, 3), np.int64), 1.0
    w = 2 * R + 1
    cand = _half_box(R)
    ccode = ((cand[:, 0] + R) * w + cand[:, 1] + R) * w + cand[:, 2] + R
    keep = count[ccode] >= min_share * 2 * len(rows)
    offs = cand[keep]
    cover = count[ccode[keep]].sum() / total
    d = offs[:, 0] * ny * nz + offs[:, 1] * nz + offs[:, 2]
    return offs[np.argsort(d, kind="stable")].astype(np.int64), float(cover)


@njit(inline="always", cache=True)
def _match(i, j, xi, yi, zi, inner, nx, ny, nz, offs, first, uniq):
    """Offset index ``k`` with ``coords(j) - coords(i) == +-offs[k]``, or -1.

    ``first[a] .. first[a + 1]`` are the offsets of flat distance ``a``;
    ``uniq[a]`` is that offset when it is the only one (-1: none, -2: several).
    On an ``inner`` row (at least ``max |offs|`` voxels from every face) every
    offset stays in the lattice, so a unique flat distance decides alone.
    """
    dd = np.int64(j) - i
    ad = abs(dd)
    if ad >= uniq.shape[0]:
        return -1
    if inner:
        u = uniq[ad]
        if u != -2:
            return u
    for k in range(first[ad], first[ad + 1]):
        s = 1 if dd > 0 else -1
        x = xi + s * offs[k, 0]
        y = yi + s * offs[k, 1]
        z = zi + s * offs[k, 2]
        # in bounds: the flat index is then exactly i +- d[k] (the map is one-to-one)
        if x >= 0 and x < nx and y >= 0 and y < ny and z >= 0 and z < nz:
            return k
    return -1


@njit(inline="always", cache=True)
def _next_voxel(xi, yi, zi, ny, nz):
    zi += 1
    if zi == nz:
        zi = 0
        yi += 1
        if yi == ny:
            yi = 0
            xi += 1
    return xi, yi, zi


@njit(parallel=True, cache=True)
def _build_dia(nbr, deg, w, nx, ny, nz, offs, first, uniq, wT, rcount, part):
    """Fill ``wT`` (every entry) and count residual slots per row; ``part[0, c]``
    and ``part[1, c]`` receive the DIA synapses and residual slots of chunk ``c``.

    Consecutive inner rows of a lattice usually hold the same relative
    neighbours (``nbr[i] - i``) in the same slots: such a row reuses the
    previous row's classification (a vectorised compare, then the stores).
    """
    n, kmax = nbr.shape
    nk = wT.shape[0]
    rad = 0
    for k in range(nk):
        rad = max(rad, abs(offs[k, 0]), abs(offs[k, 1]), abs(offs[k, 2]))
    for c in prange(part.shape[1]):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        wrow = np.empty(nk, dtype=wT.dtype)    # row i of the DIA, written once
        rel = np.empty(kmax, dtype=np.int64)   # the previous inner row: nbr - i,
        kpos = np.empty(kmax, dtype=np.int64)  # the offset of each slot (-1: none or j < i),
        pdeg = -1                              # its degree, residual count and DIA count
        prc = 0
        pcnt = 0
        cnt = 0
        rtot = 0
        xi = lo // (ny * nz)
        yi = (lo // nz) % ny
        zi = lo % nz
        for i in range(lo, hi):
            inner = (xi >= rad and xi < nx - rad and yi >= rad and yi < ny - rad and zi >= rad
                     and zi < nz - rad)
            dg = deg[i]
            for k in range(nk):
                wrow[k] = 0
            same = inner and dg == pdeg
            if same:
                diff = 0
                for q in range(dg):
                    diff |= (np.int64(nbr[i, q]) - i) ^ rel[q]
                same = diff == 0
            if same:
                for q in range(dg):
                    k = kpos[q]
                    if k >= 0:
                        wrow[k] = w[i, q]
                rcount[i] = prc
                rtot += prc
                cnt += pcnt
            else:
                rc = 0
                pc = 0
                for q in range(dg):
                    j = nbr[i, q]
                    k = _match(i, j, xi, yi, zi, inner, nx, ny, nz, offs, first, uniq)
                    rel[q] = np.int64(j) - i
                    kpos[q] = -1
                    if k < 0:
                        rc += 1
                    elif j > i:
                        wrow[k] = w[i, q]
                        kpos[q] = k
                        pc += 1
                rcount[i] = rc
                rtot += rc
                cnt += pc
                pdeg = dg if inner else -1
                prc = rc
                pcnt = pc
            for k in range(nk):
                wT[k, i] = wrow[k]
            xi, yi, zi = _next_voxel(xi, yi, zi, ny, nz)
        part[0, c] = cnt
        part[1, c] = rtot


@njit(parallel=True, cache=True)
def _build_residual(nbr, deg, w, nx, ny, nz, offs, first, uniq, rptr, ridx, rw):
    """Copy the slots that ``_match`` does not place in the DIA, row by row."""
    n = nbr.shape[0]
    for i in prange(n):
        p = rptr[i]
        if rptr[i + 1] == p:
            continue
        xi = i // (ny * nz)
        yi = (i // nz) % ny
        zi = i % nz
        for q in range(deg[i]):
            j = nbr[i, q]
            if _match(i, j, xi, yi, zi, False, nx, ny, nz, offs, first, uniq) < 0:
                ridx[p] = j
                rw[p] = w[i, q]
                p += 1


def build_view(syn, shape, offs: np.ndarray | None = None) -> StencilView:
    """Build the :class:`StencilView` of a synapse table on a lattice of ``shape``.

    ``offs`` (positive offsets, ``(nk, 3)``) defaults to those of :func:`plan`.
    Every synapse lands in exactly one of the DIA part and the residual, with
    its weight.
    """
    t0 = time.perf_counter()
    nx, ny, nz = (int(a) for a in shape)
    n = syn.n
    if n != nx * ny * nz:
        raise ValueError(f"table has {n} rows for a lattice of shape {shape}")
    if offs is None:
        offs = plan(syn, (nx, ny, nz))[0]
    offs = np.ascontiguousarray(np.asarray(offs, dtype=np.int64).reshape(-1, 3))
    d = offs[:, 0] * ny * nz + offs[:, 1] * nz + offs[:, 2]
    if np.any(d <= 0) or np.any(np.diff(d) < 0):
        raise ValueError("offsets must be lexicographically positive and sorted by flat distance")
    dmax = int(d[-1]) if len(d) else 0
    # first[a] .. first[a + 1]: the offsets whose flat distance is a; uniq[a]: the only one (-1 none, -2 several)
    first = np.searchsorted(d, np.arange(dmax + 2)).astype(np.int64)
    many = np.diff(first)
    uniq = np.where(many == 1, first[:-1], np.where(many == 0, -1, -2)).astype(np.int8)  # nk <= 62
    wT = np.empty((len(d), n), dtype=syn.w.dtype)
    rcount = np.empty(n, dtype=np.int64)
    part = np.zeros((2, (n + CHUNK - 1) // CHUNK), dtype=np.int64)
    _build_dia(syn.nbr, syn.deg, syn.w, nx, ny, nz, offs, first, uniq, wT, rcount, part)
    rptr = np.zeros(n + 1, dtype=np.int64)
    if part[1].any():
        np.cumsum(rcount, out=rptr[1:])
    nr = int(rptr[-1])
    ridx = np.empty(nr, dtype=np.int32)
    rw = np.empty(nr, dtype=syn.w.dtype)
    if nr:
        _build_residual(syn.nbr, syn.deg, syn.w, nx, ny, nz, offs, first, uniq, rptr, ridx, rw)
    return StencilView(offs, d, wT, rptr, ridx, rw, int(part[0].sum()), time.perf_counter() - t0)


# ---------------------------------------------------------------- the step
SB = 4096  # scalars in the field block of several trials (16 KiB in float32)


def _aligned_alloca(size):
    @intrinsic
    def buf(typingctx, like):
        if not isinstance(like, (types.Float, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            p = cgutils.alloca_once(builder, context.get_value_type(like),
                                    size=context.get_constant(types.intp, size))
            p.align = 64  # a 64-byte row never straddles two cache lines
            return p

        return types.CPointer(like)(like), codegen

    return buf


stack_row = _aligned_alloca(TB)    # TB scalars on the stack, 64-byte aligned
stack_block = _aligned_alloca(SB)  # SB scalars on the stack, 64-byte aligned


@njit(inline="always", cache=True, fastmath=FM)
def _chunk1(c, view, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key, act, write_v, vpart, spart,
            ypos, Y, beta, scratch):
    """One trial: the field of the whole chunk in ``hc``, four offsets per pass
    over contiguous slices (vectorised over neurons; four weight streams from
    memory at once), then one pass of updates. Neurons of the chunk that lack
    a partner of the pass (the ends of the array) add each existing one alone."""
    d, wT, rptr, ridx, rw = view
    hc, h, y, v, vloc, sloc = scratch
    n = s.shape[0]
    lo = c * CHUNK
    hi = min(n, lo + CHUNK)
    nk = d.shape[0]
    m = hi - lo
    zero = s.dtype.type(0.0)
    one = s.dtype.type(1.0)
    r1 = r.reshape(n)
    hs = hc[:m]
    bs = bias[lo:hi]
    for t in range(m):
        hs[t] = bs[t]
    n4 = nk // 4
    for ps in range(n4 + nk % 4):
        # four offsets per pass (four weight streams from memory at once), then
        # the nk % 4 left over one by one
        k = 4 * ps if ps < n4 else 3 * n4 + ps
        m4 = 4 if ps < n4 else 1
        dg = d[k + m4 - 1]       # the largest distance of the pass (d ascends)
        a = max(lo, dg)          # i >= d: every backward partner exists
        e = min(hi, n - dg)      # i < n - d: every forward partner exists
        if a < e:
            hh = hs[a - lo:e - lo]
            d0 = d[k]
            wf0 = wT[k, a:e]
            wb0 = wT[k, a - d0:e - d0]
            rf0 = r1[a + d0:e + d0]
            rb0 = r1[a - d0:e - d0]
            if m4 == 4:
                d1 = d[k + 1]
                d2 = d[k + 2]
                d3 = d[k + 3]
                wf1 = wT[k + 1, a:e]
                wf2 = wT[k + 2, a:e]
                wf3 = wT[k + 3, a:e]
                wb1 = wT[k + 1, a - d1:e - d1]
                wb2 = wT[k + 2, a - d2:e - d2]
                wb3 = wT[k + 3, a - d3:e - d3]
                rf1 = r1[a + d1:e + d1]
                rf2 = r1[a + d2:e + d2]
                rf3 = r1[a + d3:e + d3]
                rb1 = r1[a - d1:e - d1]
                rb2 = r1[a - d2:e - d2]
                rb3 = r1[a - d3:e - d3]
                for t in range(e - a):
                    hh[t] += ((wf0[t] * rf0[t] + wb0[t] * rb0[t]) + (wf1[t] * rf1[t] + wb1[t] * rb1[t])) + (
                        (wf2[t] * rf2[t] + wb2[t] * rb2[t]) + (wf3[t] * rf3[t] + wb3[t] * rb3[t]))
            else:
                for t in range(e - a):
                    hh[t] += wf0[t] * rf0[t] + wb0[t] * rb0[t]
        if a >= e:  # no neuron of the chunk has all the pass's partners: each one checked
            a = hi
            e = hi
        for kk in range(k, k + m4):
            dk = d[kk]
            wk = wT[kk]
            for i in range(lo, a):
                if i + dk < n:
                    hs[i - lo] += wk[i] * r1[i + dk]
                if i >= dk:
                    hs[i - lo] += wk[i - dk] * r1[i - dk]
            for i in range(e, hi):
                if i + dk < n:
                    hs[i - lo] += wk[i] * r1[i + dk]
                if i >= dk:
                    hs[i - lo] += wk[i - dk] * r1[i - dk]
    if rptr[hi] > rptr[lo]:
        for i in range(lo, hi):
            acc = zero
            for p in range(rptr[i], rptr[i + 1]):
                acc += rw[p] * r1[uint32(ridx[p])]
            hs[i - lo] += acc
    if beta != 0.0:
        bt = s.dtype.type(beta)
        for i in range(lo, hi):
            p = ypos[i]
            if p >= 0:
                hs[i - lo] -= bt * (r1[i] - Y[p, 0])
    if act == HARD_SIGMOID and not noise > 0.0 and not write_v:
        # one vectorisable pass: selects instead of branches, integer maxima
        idt = one / dt
        xs = s.reshape(n)[lo:hi]
        ys = s_out.reshape(n)[lo:hi]
        fs = frozen[lo:hi]
        m0 = mask[0]
        vl = fbits(zero)
        sl = fbits(zero)
        for t in range(m):
            x = xs[t]
            yy = min(max(x + dt * (hs[t] - x), zero), one)
            vv = (yy - x) * idt
            fz = fs[t] != 0
            yb = x if fz else x + m0 * (yy - x)
            vv = zero if fz else vv
            ys[t] = yb
            vl = max(vl, fbits(abs(vv)))
            sl = max(sl, fbits(abs(yb)))
        vpart[c, 0] = bitsf(vl)
        spart[c, 0] = bitsf(sl)
        return
    separate_r = act == SIGMOID or act == TANH
    vloc[0] = 0
    sloc[0] = 0
    for i in range(lo, hi):
        if frozen[i]:
            _frozen_row(i, 1, s, r, s_out, r_out, v_out, write_v, separate_r, sloc)
            continue
        h[0] = hs[i - lo]
        _general_row(i, 1, h, y, v, s, r, s_out, r_out, v_out, mask, dt, noise, key, act, write_v, vloc, sloc)
    vpart[c, 0] = bitsf(vloc[0])
    spart[c, 0] = bitsf(sloc[0])


@njit(inline="always", cache=True, fastmath=FM)
def _pass4(hs, bias, r, wT, d, k, m, a, e, first):
    """Add the synapses of offsets ``k .. k + m - 1`` (``1 <= m <= 4``) to the
    field rows ``hs`` of neurons ``a .. e - 1``; the ``first`` pass stores
    ``bias + sum`` instead. Always four offsets in the trial loop (a loop body
    of fewer would be vectorised for longer rows than B): missing ones read
    the neuron itself with weight 0."""
    nb = hs.shape[1]
    zero = hs.dtype.type(0.0)
    one = hs.dtype.type(1.0)
    k1 = k + min(1, m - 1)
    k2 = k + min(2, m - 1)
    k3 = k + min(3, m - 1)
    d0 = d[k]
    d1 = d[k1] if m > 1 else 0
    d2 = d[k2] if m > 2 else 0
    d3 = d[k3] if m > 3 else 0
    z1 = one if m > 1 else zero
    z2 = one if m > 2 else zero
    z3 = one if m > 3 else zero
    bs = bias[a:e]
    wf0 = wT[k, a:e]
    wf1 = wT[k1, a:e]
    wf2 = wT[k2, a:e]
    wf3 = wT[k3, a:e]
    wb0 = wT[k, a - d0:e - d0]
    wb1 = wT[k1, a - d1:e - d1]
    wb2 = wT[k2, a - d2:e - d2]
    wb3 = wT[k3, a - d3:e - d3]
    rf0 = r[a + d0:e + d0]
    rf1 = r[a + d1:e + d1]
    rf2 = r[a + d2:e + d2]
    rf3 = r[a + d3:e + d3]
    rb0 = r[a - d0:e - d0]
    rb1 = r[a - d1:e - d1]
    rb2 = r[a - d2:e - d2]
    rb3 = r[a - d3:e - d3]
    for t in range(e - a):
        f0 = wf0[t]
        f1 = z1 * wf1[t]
        f2 = z2 * wf2[t]
        f3 = z3 * wf3[t]
        g0 = wb0[t]
        g1 = z1 * wb1[t]
        g2 = z2 * wb2[t]
        g3 = z3 * wb3[t]
        if first:
            bt = bs[t]
            for b in range(nb):
                hs[t, b] = bt + (((f0 * rf0[t, b] + g0 * rb0[t, b]) + (f1 * rf1[t, b] + g1 * rb1[t, b])) + (
                    (f2 * rf2[t, b] + g2 * rb2[t, b]) + (f3 * rf3[t, b] + g3 * rb3[t, b])))
        else:
            for b in range(nb):
                hs[t, b] += ((f0 * rf0[t, b] + g0 * rb0[t, b]) + (f1 * rf1[t, b] + g1 * rb1[t, b])) + (
                    (f2 * rf2[t, b] + g2 * rb2[t, b]) + (f3 * rf3[t, b] + g3 * rb3[t, b]))


@njit(inline="always", cache=True, fastmath=FM)
def _chunkb(c, view, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key, act, write_v, vpart, spart,
            ypos, Y, beta, scratch):
    """Several trials: blocks of ``S = SB // B`` neurons; the field of a block
    (``hbuf``, ``(S, B)``) is summed four offsets (eight synapses) per pass
    (:func:`_pass4`; the first pass takes the ``nk % 4`` left over and the
    bias), neuron by neuron, each pass reading contiguous runs of weights and
    of neighbour rows; then the residual, the nudge and the update, neuron by
    neuron. Neurons within ``max(d)`` of the ends of the array check each
    partner instead."""
    d, wT, rptr, ridx, rw = view
    hbuf, y, v, vloc, sloc = scratch
    n, nb = s.shape
    lo = c * CHUNK
    hi = min(n, lo + CHUNK)
    nk = d.shape[0]
    dmax = 0
    for k in range(nk):
        dmax = max(dmax, d[k])
    ia = max(lo, dmax)      # interior: every partner index is in [0, n)
    ie = min(hi, n - dmax)
    if nk == 0:
        ia = hi
    m0 = nk % 4 if nk % 4 else 4  # offsets of the first pass
    nblk = max(1, hbuf.shape[0] // nb)
    has_res = rptr[hi] > rptr[lo]
    separate_r = act == SIGMOID or act == TANH
    zero = s.dtype.type(0.0)
    one = s.dtype.type(1.0)
    idt = one / dt
    fast = act == HARD_SIGMOID and not noise > 0.0 and not write_v
    bt = s.dtype.type(beta)
    for b in range(nb):
        vloc[b] = 0
        sloc[b] = 0
    for q in range(lo, hi, nblk):
        qe = min(hi, q + nblk)
        hb = hbuf[:(qe - q) * nb].reshape((qe - q, nb))
        a = max(q, ia)
        e = min(qe, ie)
        if a < e:
            hs = hb[a - q:e - q]
            _pass4(hs, bias, r, wT, d, 0, m0, a, e, True)
            for k in range(m0, nk, 4):
                _pass4(hs, bias, r, wT, d, k, 4, a, e, False)
        for i in range(q, qe):
            iq = uint32(i - q)
            if i < a or i >= e:  # near the ends of the array: each partner checked
                bi = bias[i]
                for b in range(nb):
                    hb[iq, b] = bi
                for k in range(nk):
                    dk = d[k]
                    if i + dk < n:
                        f0 = wT[k, i]
                        j = uint32(i + dk)
                        for b in range(nb):
                            hb[iq, b] += f0 * r[j, b]
                    if i >= dk:
                        g0 = wT[k, i - dk]
                        j = uint32(i - dk)
                        for b in range(nb):
                            hb[iq, b] += g0 * r[j, b]
            if frozen[i]:
                _frozen_row(i, nb, s, r, s_out, r_out, v_out, write_v, separate_r, sloc)
                continue
            h = hb[iq]
            if has_res:
                for p in range(rptr[i], rptr[i + 1]):
                    j = uint32(ridx[p])
                    wp = rw[p]
                    for b in range(nb):
                        h[b] += wp * r[j, b]
            if beta != 0.0 and ypos[i] >= 0:
                p = ypos[i]
                for b in range(nb):
                    h[b] -= bt * (r[i, b] - Y[p, b])
            if fast:  # hard sigmoid, deterministic: one fused trial loop
                for b in range(nb):
                    x = s[i, b]
                    yy = min(max(x + dt * (h[b] - x), zero), one)
                    vv = (yy - x) * idt
                    yb = x + mask[b] * (yy - x)
                    s_out[i, b] = yb
                    vloc[b] = max(vloc[b], fbits(abs(vv)))
                    sloc[b] = max(sloc[b], fbits(abs(yb)))
                continue
            _general_row(i, nb, h, y, v, s, r, s_out, r_out, v_out, mask, dt, noise, key, act, write_v, vloc, sloc)
    for b in range(nb):
        vpart[c, b] = bitsf(vloc[b])
        spart[c, b] = bitsf(sloc[b])


@njit(parallel=True, cache=True, fastmath=FM)
def stencil_step(d, wT, rptr, ridx, rw, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key, act,
                 write_v, vpart, spart, ypos, Y, beta):
    """One Euler-Maruyama step over a :class:`StencilView` (``d``, ``wT``,
    ``rptr``, ``ridx``, ``rw``).

    Every other argument and every output is that of
    :func:`dynamics.kernels.langevin_step` (``s_out``, ``r_out``, ``v_out`` when
    ``write_v``, ``vpart``/``spart`` per chunk of 1024 neurons, ``mask``,
    ``frozen``, the noise stream, the nudge ``ypos``/``Y``/``beta``). States
    must be C-contiguous ``(N, B)``. Scratch rows live on the stack (64-byte
    aligned; LLVM knows they alias no argument) up to ``B = TB``.
    """
    n, nb = s.shape
    nch = vpart.shape[0]
    zero = s.dtype.type(0.0)
    izero = fbits(zero)
    view = (d, wT, rptr, ridx, rw)
    for c in prange(nch):
        if nb == 1:
            _chunk1(c, view, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key, act, write_v, vpart,
                    spart, ypos, Y, beta, (carray(stack_block(zero), CHUNK), carray(stack_row(zero), 1),
                                           carray(stack_row(zero), 1), carray(stack_row(zero), 1),
                                           carray(stack_row(izero), 1), carray(stack_row(izero), 1)))
        elif nb <= TB:
            _chunkb(c, view, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key, act, write_v, vpart,
                    spart, ypos, Y, beta, (carray(stack_block(zero), SB), carray(stack_row(zero), nb),
                                           carray(stack_row(zero), nb), carray(stack_row(izero), nb),
                                           carray(stack_row(izero), nb)))
        else:
            _chunkb(c, view, bias, frozen, s, r, s_out, r_out, v_out, mask, dt, noise, key, act, write_v, vpart,
                    spart, ypos, Y, beta, (np.empty(max(SB, nb), dtype=s.dtype), np.empty(nb, dtype=s.dtype),
                                           np.empty(nb, dtype=s.dtype), izeros(nb, s), izeros(nb, s)))


# ------------------------------------------------------------ kernel choice
class Stepper:
    """The settling kernel of one settle, with the wiring arguments bound.

    Call it with the arguments of :func:`dynamics.kernels.langevin_step` that
    follow the wiring: ``(bias, frozen, s, r, s_out, r_out, v_out, mask, dt,
    noise, key, act, write_v, vpart, spart, ypos, Y, beta)``. ``kind`` is
    ``"stencil"`` or ``"table"``; ``view`` is the :class:`StencilView` (or None).
    """

    def __init__(self, syn, view: StencilView | None = None):
        self.view = view
        self.kind = "table" if view is None else "stencil"
        self._wiring = (syn.nbr, syn.deg, syn.w) if view is None else (view.d, view.wT, view.rptr, view.ridx,
                                                                        view.rw)
        self._kernel = langevin_step if view is None else stencil_step

    @property
    def build_seconds(self) -> float:
        return 0.0 if self.view is None else self.view.build_seconds

    def __call__(self, *args):
        return self._kernel(*self._wiring, *args)


def choose(n_trials: int, steps: int, cover: float) -> str:
    """The rule: ``"stencil"`` or ``"table"`` for a settle of ``n_trials``
    trials and at most ``steps`` steps, when the DIA part of the view would
    hold the share ``cover`` of the synapses.

    The stencil view reads 4 bytes of weights per synapse instead of 8 bytes
    per synapse and direction: with one trial the step is bound by those bytes
    and runs several times faster than the table's. With many trials the
    state rows dominate and both kernels are bound by arithmetic: the view
    was faster up to 16 trials, as fast or slower beyond (measured in
    ``bench/bench_settle.py``, docs/benchmarks.md). The view pays for its build
    (one pass over the table, about two table steps with one trial).

    So: ``"stencil"`` when the settle may run at least ``MIN_STEPS`` steps,
    ``n_trials <= MAX_TRIALS`` and ``cover >= MIN_COVER``; else ``"table"``.
    ``KERNEL`` forces a choice.
    """
    if KERNEL != "auto":
        if KERNEL not in ("stencil", "table"):
            raise ValueError(f"dynamics.stencil.KERNEL must be 'auto', 'stencil' or 'table', got {KERNEL!r}")
        return KERNEL
    ok = steps >= MIN_STEPS and n_trials <= MAX_TRIALS and cover >= MIN_COVER
    return "stencil" if ok else "table"


def stepper(tissue, n_trials: int, steps: int) -> Stepper:
    """The :class:`Stepper` of a settle: plans the view, applies :func:`choose`
    and builds the view when it is chosen."""
    if KERNEL == "table" or (KERNEL == "auto" and choose(n_trials, steps, 1.0) == "table"):
        return Stepper(tissue.syn)
    t0 = time.perf_counter()
    offs, cover = plan(tissue.syn, tissue.lattice.shape)
    if choose(n_trials, steps, cover) == "table":
        return Stepper(tissue.syn)
    view = build_view(tissue.syn, tissue.lattice.shape, offs)
    view.build_seconds = time.perf_counter() - t0
    return Stepper(tissue.syn, view)


@contextlib.contextmanager
def use_kernel(kind: str):
    """Force the kernel of every settle in the block: ``"stencil"``, ``"table"`` or ``"auto"``."""
    global KERNEL
    if kind not in ("auto", "stencil", "table"):
        raise ValueError(f"kernel must be 'auto', 'stencil' or 'table', got {kind!r}")
    old, KERNEL = KERNEL, kind
    try:
        yield
    finally:
        KERNEL = old
