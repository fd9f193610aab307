"""Event-driven settling: keep every neuron's input field, propagate only the changes.

The clocked engine (:class:`dynamics.Langevin`) recomputes every field
``h_i = b_i + sum_j W_ij rho(s_j)`` at every step, however little moved. The
:class:`EventEngine` solves the same T = 0 fixed-point equations,

    s_i = argmin over the box of F along s_i   (hard sigmoid: s_i = clip(h_i, 0, 1))
    h_i = b_i + sum_j W_ij rho(s_j) - beta (rho(s_i) - y_i)   (the nudge on output voxels)

(inputs clamped, dead voxels at rest), by asynchronous coordinate relaxation
driven by a worklist:

- every neuron keeps its field ``H_i = b_i + sum_j W_ij rb_j`` computed from
  the rates ``rb_j`` its neighbours last *broadcast*;
- a neuron is *scheduled* when its field changes and its drift speed
  ``|v_i|`` (exactly the clocked engine's measure, below) is at least
  ``theta * tol``; when it is processed it jumps to its local solution (the
  exact minimiser of ``F`` along ``s_i``: ``clip((H + beta y) / (1 + beta), 0, 1)``
  for the hard sigmoid, the same without the clip for the linear rate);
- when a neuron's rate has moved by more than ``epsilon`` since it last
  broadcast, it pushes the weighted change ``W_ji (rho_i - rb_i)`` into the
  fields of its neighbours (one *synapse operation* per synapse) and
  schedules them;
- when the worklist is empty, the changes smaller than ``epsilon`` that no one
  has heard yet are broadcast exactly (a *flush*), the neighbours they reach
  are checked, and the loop goes on until nothing is left to check. Then every
  field is exact (up to float64 rounding of the increments) and every
  neuron's drift speed is below ``tol``.

Convergence uses the clocked engine's measure, so both engines stop "at the
same tolerance": the drift speed of neuron ``i`` at the state is

    v_i = (clip(s_i + dt (h_i - s_i), 0, 1) - s_i) / dt     (hard sigmoid, projected)
    v_i = h_i - s_i                                          (linear)

and a settle has converged when ``max_i |v_i| < tol`` (``speed``). It is
measured exactly at the end (an O(N) pass over the kept fields, no synapse
operation).

Ordering: ``order="fifo"`` (a ring buffer) or ``"residual"`` (an indexed max-heap
on ``|x_i - s_i|``, the distance of a neuron to its local solution: Southwell's
rule, the largest residual first).

Work accounting (``EventResult.synapse_ops``): one multiply-add of a weight into
a field is one synapse operation: the initial field (one per synapse slot of
every living neuron, as a clocked step), every broadcast (the row's degree)
and every flush. The clocked engine does one per synapse slot and step.
``SettleResult.steps`` is the *sweep equivalent* ``synapse_ops / slots`` (float),
so the settling-time read-outs of the learning study keep their meaning.

Streams: ``settle(..., warm=previous_result)`` starts from the previous
equilibrium *and its fields*: only the inputs (and biases, and the nudge) that
changed are broadcast, so a frame that changes little costs little. The
caller guarantees that the weights did not change since ``previous_result``
(biases may: their change is applied to the fields, O(N)).

Same equations, not always the same attractor: every state the engine returns
is a fixed point of the clocked engine to ``tol`` (its speed is measured the same
way), and in a tissue with one fixed point (a contracting one) both engines
land on it (tested: ``max |ds| <= 10 tol``). A trained tissue can have many;
asynchronous full jumps then sometimes end in another basin than gradient flow
from the same start (``relax < 1`` follows the flow more closely).

Batches: each trial is one serial worklist (deterministic: the same numbers for
any thread count); trials run in parallel (``prange``).

Activations: ``hard_sigmoid`` and ``linear`` (their local solution is closed
form); ``sigmoid`` and ``tanh`` are refused with a ValueError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from . import kernels as K
from .langevin import Langevin, SettleResult, SimulationDiverged, nudge_arrays

ORDERS = ("fifo", "residual")
_ACTS = ("hard_sigmoid", "linear")

# per-trial statistics (columns of ``stats``)
_OPS, _UPD, _BC, _FLUSH, _STATUS = 0, 1, 2, 3, 4
# status: 0 ok, 1 synapse-operation cap reached, 2 diverged


# ------------------------------------------------------------------ kernels
@njit(inline="always", cache=True)
def _local(Hi, si, yi, beta, nudged, act, dt):
    """``(x, v)``: the local solution of neuron ``i`` and its drift speed at ``si``."""
    if nudged:
        x = (Hi + beta * yi) / (1.0 + beta)
        h = Hi - beta * (si - yi)      # rho(s) = s inside the box (and linear)
    else:
        x = Hi
        h = Hi
    if act == K.HARD_SIGMOID:
        x = min(max(x, 0.0), 1.0)
        y = min(max(si + dt * (h - si), 0.0), 1.0)
        v = (y - si) / dt
    else:
        v = h - si
    return x, v


@njit(inline="always", cache=True)
def _rate(x, act):
    if act == K.HARD_SIGMOID:
        return min(max(x, 0.0), 1.0)
    return x


@njit(inline="always", cache=True)
def _heap_up(heap, pos, prio, p):
    j = heap[p]
    pj = prio[j]
    while p > 0:
        q = (p - 1) >> 1
        k = heap[q]
        if prio[k] > pj or (prio[k] == pj and k < j):
            break
        heap[p] = k
        pos[k] = p
        p = q
    heap[p] = j
    pos[j] = p


@njit(inline="always", cache=True)
def _heap_down(heap, pos, prio, p, size):
    j = heap[p]
    pj = prio[j]
    while True:
        c = 2 * p + 1
        if c >= size:
            break
        k = heap[c]
        if c + 1 < size:
            k2 = heap[c + 1]
            if prio[k2] > prio[k] or (prio[k2] == prio[k] and k2 < k):
                c += 1
                k = k2
        if pj > prio[k] or (pj == prio[k] and j < k):
            break
        heap[p] = k
        pos[k] = p
        p = c
    heap[p] = j
    pos[j] = p


@njit(inline="always", cache=True)
def _push(j, pr, residual, queue, pos, prio, inq, qh, qn, n):
    """Schedule ``j`` (priority ``pr`` in heap order); returns the new length."""
    if residual:
        if inq[j]:
            old = prio[j]
            prio[j] = pr
            if pr > old:
                _heap_up(queue, pos, prio, pos[j])
            elif pr < old:
                _heap_down(queue, pos, prio, pos[j], qn)
            return qn
        inq[j] = 1
        prio[j] = pr
        queue[qn] = j
        pos[j] = qn
        _heap_up(queue, pos, prio, qn)
        return qn + 1
    if inq[j]:
        return qn
    inq[j] = 1
    t = qh + qn
    queue[t - n if t >= n else t] = j
    return qn + 1


@njit(cache=True)
def _settle_trial(nbr, deg, w, frozen, ypos, Yb, beta, act, dt, s, H, rb, bcast, sched, eps, vtol,
                  max_ops, residual, blowup, relax, stats, queue, pos, inq, prio, pend, pflag, chk, cflag):
    """Relax one trial in place (``s``, ``H``, ``rb``: float64 rows of length N).

    ``bcast``: neurons whose present rate may differ from the rate the fields
    of their neighbours hold (``rb``): broadcast first. ``sched``: neurons whose
    field or nudge changed: checked first. ``vtol``: a neuron is processed when
    its drift speed is at least this. ``residual``: heap order (else FIFO).
    ``stats`` receives ops, updates, broadcasts, flushes and the status.
    Scratch rows (length N): ``queue``/``pos``/``pend``/``chk`` int64,
    ``inq``/``pflag``/``cflag`` uint8 (zero on entry, zero on exit), ``prio`` float64.
    """
    n = s.shape[0]
    ops = np.int64(0)
    upd = np.int64(0)
    nbc = np.int64(0)
    nfl = np.int64(0)
    status = 0
    qh = 0      # FIFO head
    qn = 0      # entries (FIFO) or heap size
    npend = 0
    nchk = 0
    nud = beta != 0.0
    # -- the initial broadcasts (inputs and other changed rates)
    for t in range(bcast.shape[0]):
        i = bcast[t]
        d = _rate(s[i], act) - rb[i]
        if d != 0.0:
            for k in range(deg[i]):
                j = nbr[i, k]
                H[j] += w[i, k] * d
                if cflag[j] == 0 and frozen[j] == 0:
                    cflag[j] = 1
                    chk[nchk] = j
                    nchk += 1
            ops += deg[i]
            rb[i] += d
            nbc += 1
    for t in range(sched.shape[0]):
        j = sched[t]
        if cflag[j] == 0 and frozen[j] == 0:
            cflag[j] = 1
            chk[nchk] = j
            nchk += 1
    while True:
        # -- check the neurons whose field changed: schedule those that move
        for t in range(nchk):
            j = chk[t]
            cflag[j] = 0
            p = ypos[j]
            x, v = _local(H[j], s[j], Yb[p] if p >= 0 else 0.0, beta, nud and p >= 0, act, dt)
            if abs(v) >= vtol:
                qn = _push(j, abs(x - s[j]), residual, queue, pos, prio, inq, qh, qn, n)
        nchk = 0
        if qn == 0:
            break
        # -- drain the worklist
        while qn > 0:
            if residual:
                i = queue[0]
                qn -= 1
                if qn > 0:
                    queue[0] = queue[qn]
                    pos[queue[0]] = 0
                    _heap_down(queue, pos, prio, 0, qn)
            else:
                i = queue[qh]
                qh += 1
                if qh == n:
                    qh = 0
                qn -= 1
            inq[i] = 0
            p = ypos[i]
            x, v = _local(H[i], s[i], Yb[p] if p >= 0 else 0.0, beta, nud and p >= 0, act, dt)
            if abs(v) < vtol:
                continue
            if relax != 1.0:
                x = s[i] + relax * (x - s[i])
            if not (abs(x) <= blowup):
                s[i] = x
                status = 2
                break
            s[i] = x
            upd += 1
            r = _rate(x, act)
            d = r - rb[i]
            if abs(d) > eps:
                for k in range(deg[i]):
                    j = nbr[i, k]
                    H[j] += w[i, k] * d
                    if frozen[j] == 0 and (residual or inq[j] == 0):
                        pj = ypos[j]
                        xj, vj = _local(H[j], s[j], Yb[pj] if pj >= 0 else 0.0, beta, nud and pj >= 0, act, dt)
                        if abs(vj) >= vtol:
                            qn = _push(j, abs(xj - s[j]), residual, queue, pos, prio, inq, qh, qn, n)
                ops += deg[i]
                rb[i] = r
                nbc += 1
            elif d != 0.0 and pflag[i] == 0:
                pflag[i] = 1
                pend[npend] = i
                npend += 1
            if ops > max_ops:
                status = 1
                break
        if status != 0:
            break
        # -- flush the changes nobody has heard yet; check whom they reach
        for t in range(npend):
            i = pend[t]
            pflag[i] = 0
            d = _rate(s[i], act) - rb[i]
            if d != 0.0:
                for k in range(deg[i]):
                    j = nbr[i, k]
                    H[j] += w[i, k] * d
                    if cflag[j] == 0 and frozen[j] == 0:
                        cflag[j] = 1
                        chk[nchk] = j
                        nchk += 1
                ops += deg[i]
                rb[i] += d
                nfl += 1
        npend = 0
        if nchk == 0:
            break
    # leave the scratch rows clean (a capped or diverged run stops mid-way)
    for t in range(nchk):
        cflag[chk[t]] = 0
    for t in range(npend):
        pflag[pend[t]] = 0
    if residual:
        for t in range(qn):
            inq[queue[t]] = 0
    else:
        while qn > 0:
            inq[queue[qh]] = 0
            qh += 1
            if qh == n:
                qh = 0
            qn -= 1
    stats[_OPS] = ops
    stats[_UPD] = upd
    stats[_BC] = nbc
    stats[_FLUSH] = nfl
    stats[_STATUS] = status


@njit(inline="always", cache=True)
def _one_trial(b, nbr, deg, w, frozen, ypos, Y, beta, act, dt, S, H, RB, bcast, nbcast, todo, ntodo, eps, vtol,
               max_ops, residual, blowup, relax, stats):
    n = S.shape[1]
    Yb = np.ascontiguousarray(Y[:, b])
    queue = np.empty(n, np.int64)
    pos = np.empty(n, np.int64)
    pend = np.empty(n, np.int64)
    chk = np.empty(n, np.int64)
    inq = np.zeros(n, np.uint8)
    pflag = np.zeros(n, np.uint8)
    cflag = np.zeros(n, np.uint8)
    prio = np.zeros(n, np.float64)
    _settle_trial(nbr, deg, w, frozen, ypos, Yb, beta, act, dt, S[b], H[b], RB[b], bcast[b, :nbcast[b]],
                  todo[b, :ntodo[b]], eps, vtol, max_ops, residual, blowup, relax, stats[b], queue, pos, inq, prio,
                  pend, pflag, chk, cflag)


@njit(parallel=True, cache=True)
def _settle_batch(nbr, deg, w, frozen, ypos, Y, beta, act, dt, S, H, RB, bcast, nbcast, todo, ntodo, eps, vtol,
                  max_ops, residual, blowup, relax, stats):
    """:func:`_settle_trial` for every trial ``b`` (rows ``S[b]``, ``H[b]``, ``RB[b]``;
    lists ``bcast[b, :nbcast[b]]``, ``todo[b, :ntodo[b]]`` (the ``sched`` list); targets
    ``Y[:, b]``), one trial per task (serial inside a trial: deterministic)."""
    for b in prange(S.shape[0]):
        _one_trial(b, nbr, deg, w, frozen, ypos, Y, beta, act, dt, S, H, RB, bcast, nbcast, todo, ntodo, eps,
                   vtol, max_ops, residual, blowup, relax, stats)


@njit(cache=True)
def _settle_batch_serial(nbr, deg, w, frozen, ypos, Y, beta, act, dt, S, H, RB, bcast, nbcast, todo, ntodo, eps,
                         vtol, max_ops, residual, blowup, relax, stats):
    """:func:`_settle_batch` without a thread launch (one trial)."""
    for b in range(S.shape[0]):
        _one_trial(b, nbr, deg, w, frozen, ypos, Y, beta, act, dt, S, H, RB, bcast, nbcast, todo, ntodo, eps,
                   vtol, max_ops, residual, blowup, relax, stats)


@njit(inline="always", cache=True)
def _field_row(b, nbr, deg, w, bias, alive, R, H):
    for i in range(R.shape[1]):
        if not alive[i]:
            H[b, i] = 0.0
            continue
        acc = np.float64(bias[i])
        for k in range(deg[i]):
            acc += np.float64(w[i, k]) * R[b, nbr[i, k]]
        H[b, i] = acc


@njit(parallel=True, cache=True)
def _fields(nbr, deg, w, bias, alive, R, H):
    """``H[b, i] = b_i + sum_k w[i, k] R[b, nbr[i, k]]`` for living neurons (0 elsewhere), float64."""
    for b in prange(R.shape[0]):
        _field_row(b, nbr, deg, w, bias, alive, R, H)


@njit(cache=True)
def _fields_serial(nbr, deg, w, bias, alive, R, H):
    for b in range(R.shape[0]):
        _field_row(b, nbr, deg, w, bias, alive, R, H)


@njit(inline="always", cache=True)
def _speed_energy_row(b, S, H, bias, alive, frozen, ypos, Y, beta, act, dt, speed, energy):
    n = S.shape[1]
    nud = beta != 0.0
    vmax = 0.0
    e = 0.0
    for i in range(n):
        if not alive[i]:
            continue
        x = S[b, i]
        r = _rate(x, act)
        bi = np.float64(bias[i])
        e += 0.5 * x * x - 0.5 * r * (H[b, i] - bi) - bi * r
        if frozen[i]:
            continue
        p = ypos[i]
        _, v = _local(H[b, i], x, Y[p, b] if p >= 0 else 0.0, beta, nud and p >= 0, act, dt)
        if not (abs(v) <= vmax):
            vmax = abs(v)
    speed[b] = vmax
    energy[b] = e


@njit(parallel=True, cache=True)
def _speed_energy(S, H, bias, alive, frozen, ypos, Y, beta, act, dt, speed, energy):
    """Per trial: the largest drift speed over free neurons (NaN-propagating), and the
    energy ``E = sum_i [s_i^2 / 2 - r_i (H_i - b_i) / 2 - b_i r_i]`` from exact fields."""
    for b in prange(S.shape[0]):
        _speed_energy_row(b, S, H, bias, alive, frozen, ypos, Y, beta, act, dt, speed, energy)


@njit(cache=True)
def _speed_energy_serial(S, H, bias, alive, frozen, ypos, Y, beta, act, dt, speed, energy):
    for b in range(S.shape[0]):
        _speed_energy_row(b, S, H, bias, alive, frozen, ypos, Y, beta, act, dt, speed, energy)


# ------------------------------------------------------------------ engine
@dataclass
class EventResult(SettleResult):
    """A :class:`dynamics.SettleResult` with the event engine's accounting.

    ``steps`` is the sweep equivalent ``synapse_ops / slots`` (float64; ``slots``:
    synapse slots of the living neurons, what one clocked step reads).
    """

    synapse_ops: np.ndarray | None = None   # (B,) int64 multiply-adds into fields
    updates: np.ndarray | None = None       # (B,) neuron updates (local solves applied)
    broadcasts: np.ndarray | None = None    # (B,) broadcasts (epsilon exceeded) and flushes
    input_field: np.ndarray | None = field(repr=False, default=None)   # (B, N) float64 exact fields (warm starts)
    state64: np.ndarray | None = field(repr=False, default=None)  # (B, N) float64 state the fields belong to
    bias_used: np.ndarray | None = field(repr=False, default=None)  # (N,) the biases the fields hold
    slots: int = 0                          # synapse slots of one sweep


@dataclass
class EventEngine:
    """Event-driven T = 0 settling with the contract of :meth:`dynamics.Langevin.settle`.

    Parameters
    ----------
    tol : float
        Convergence: the largest drift speed ``max_i |v_i|`` (the clocked
        engine's measure with step ``dt``) below this.
    epsilon : float, optional
        A neuron broadcasts when its rate moved by more than this since its
        last broadcast (default ``tol / 4``). Smaller changes are flushed
        exactly when the worklist runs dry, so ``epsilon`` trades broadcasts
        against flushes, never accuracy.
    theta : float
        A neuron is processed only when its drift speed is at least
        ``theta * tol`` (in (0, 1]; smaller settles closer to the fixed point).
    order : {"fifo", "residual"}
        Worklist order: first in first out, or the largest distance to the
        local solution first (an indexed heap).
    dt : float
        The step of the drift-speed measure (as the clocked engine's ``dt``;
        the event engine itself takes no time steps).
    max_steps : int
        Cap in sweep equivalents: a trial stops after ``max_steps * slots``
        synapse operations (``converged`` False).
    blowup : float
        ``|s|`` beyond which the run has diverged (linear rates).
    temperature : float
        Must be 0 (kept for the ``Langevin`` interface).
    seed : int
        Unused (T = 0); kept for the ``Langevin`` interface.
    max_relinearise : int
        With a ``cost`` other than the squared error: passes of re-linearising
        the cost at the present rates (each pass relaxes the outputs whose
        target moved) before giving up on ``tol``.
    relax : float
        Under-relaxation in (0, 1]: a processed neuron moves this fraction of
        the way to its local solution (1: the whole way). Smaller values follow
        gradient flow more closely (the same fixed points; in a multistable
        tissue more often the same attractor as the clocked engine from the same
        start) at the price of more updates.
    """

    tol: float = 1e-4
    epsilon: float | None = None
    theta: float = 0.5
    order: str = "fifo"
    dt: float = 0.5
    max_steps: int = 10_000
    blowup: float = 1e6
    temperature: float = 0.0
    seed: int = 0
    max_relinearise: int = 100
    relax: float = 1.0

    def __post_init__(self):
        for key, val, ok, allowed in (
            ("tol", self.tol, lambda v: v > 0, "> 0"),
            ("theta", self.theta, lambda v: 0 < v <= 1, "in (0, 1]"),
            ("dt", self.dt, lambda v: v > 0, "> 0"),
            ("blowup", self.blowup, lambda v: v > 0, "> 0"),
        ):
            if not (isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val) and ok(val)):
                raise ValueError(f"EventEngine {key} must be a finite number {allowed}, got {val!r}")
        if self.epsilon is not None and not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon)
                                             and self.epsilon >= 0):
            raise ValueError(f"EventEngine epsilon must be a finite number >= 0 (or None), got {self.epsilon!r}")
        if self.order not in ORDERS:
            raise ValueError(f"EventEngine order must be one of {ORDERS}, got {self.order!r}")
        if int(self.max_steps) < 1:
            raise ValueError(f"EventEngine max_steps must be >= 1, got {self.max_steps!r}")
        if not (isinstance(self.relax, (int, float)) and 0 < self.relax <= 1):
            raise ValueError(f"EventEngine relax must be a number in (0, 1], got {self.relax!r}")
        if isinstance(self.max_relinearise, bool) or int(self.max_relinearise) < 1:
            raise ValueError(f"EventEngine max_relinearise must be >= 1, got {self.max_relinearise!r}")
        if self.temperature != 0:
            raise ValueError(f"EventEngine settles at temperature 0 only, got temperature={self.temperature!r} "
                             f"(use dynamics.Langevin for T > 0)")

    @property
    def eps(self) -> float:
        return self.tol / 4 if self.epsilon is None else float(self.epsilon)

    # the Langevin helpers work unchanged
    initial_state = staticmethod(Langevin.initial_state)
    energy = staticmethod(Langevin.energy)
    force = staticmethod(Langevin.force)
    cost = staticmethod(Langevin.cost)

    @staticmethod
    def slots(tissue) -> int:
        """Synapse slots of the living neurons: the multiply-adds of one clocked step (one trial)."""
        return int(tissue.syn.deg[tissue.alive].sum())

    def settle(self, tissue, inputs=None, init=None, n_trials=None, steps=None, record=None, start_step: int = 0,
               progress: bool = False, carry=None, target=None, beta: float = 0.0, cost=None,
               warm: EventResult | None = None) -> EventResult:
        """Settle a batch of trials to ``max |v| < tol`` (see the module docstring).

        Parameters are those of :meth:`dynamics.Langevin.settle` (``record``,
        ``carry`` and ``progress`` are not supported: a settle has no time
        axis), plus

        warm : EventResult, optional
            A previous result of this engine on the same tissue with the same
            weights: start from its state (unless ``init`` is given) and its
            fields, broadcasting only what changed (inputs, biases, ``init``).

        Returns
        -------
        EventResult
            ``steps`` in sweep equivalents, ``synapse_ops`` per trial.

        Raises
        ------
        ValueError
            Unsupported activation, ``beta <= -1``, ``record``/``carry`` given,
            or a ``warm`` result that does not fit.
        SimulationDiverged
            When a state leaves ``[-blowup, blowup]`` (linear rates).
        """
        if tissue.activation not in _ACTS:
            raise ValueError(f"EventEngine supports activation in {_ACTS}, got {tissue.activation!r}")
        if record not in (None, False) or carry is not None:
            raise ValueError("EventEngine.settle does not record trajectories or resume (record, carry): "
                             "use dynamics.Langevin")
        act = K.ACT_CODES[tissue.activation]
        n = tissue.n
        if warm is not None:
            if warm.input_field is None or warm.input_field.shape[1] != n:
                raise ValueError("warm must be an EventResult of this engine on the same tissue")
            if init is None:
                init = warm.state
        s0 = self.initial_state(tissue, n_trials, inputs, init)      # (N, B), tissue dtype
        nb = s0.shape[1]
        S = np.ascontiguousarray(s0.T, dtype=np.float64)
        if warm is not None and warm.input_field.shape[0] not in (1, nb):
            raise ValueError(f"warm has {warm.input_field.shape[0]} trials, expected {nb}")
        if cost is not None and target is None:
            target = np.zeros((nb, len(tissue.region("output"))))
        ypos, Y, beta = nudge_arrays(tissue, target, beta, nb, np.float64)
        if beta <= -1.0:
            raise ValueError(f"EventEngine needs beta > -1 (the local problem is then convex), got {beta!r}")
        out_idx = tissue.region("output")
        use_cost = cost is not None and beta != 0.0
        Y = np.ascontiguousarray(Y, dtype=np.float64)
        syn = tissue.syn
        alive = tissue.alive
        frozen = tissue.clamped.astype(np.uint8)
        bias = tissue.bias
        free_idx = np.flatnonzero(alive & (frozen == 0)).astype(np.int64)
        slots = self.slots(tissue)
        rho = (lambda x: np.clip(x, 0.0, 1.0)) if act == K.HARD_SIGMOID else (lambda x: x)
        # one trial: the serial kernels (a parallel launch costs more than a small settle)
        fields_k, settle_k, speed_k = ((_fields, _settle_batch, _speed_energy) if nb > 1 else
                                       (_fields_serial, _settle_batch_serial, _speed_energy_serial))
        dt = float(self.dt)
        ops0 = np.zeros(nb, dtype=np.int64)
        if warm is None:
            RB = np.array(rho(S), dtype=np.float64)          # a copy (rho is the identity for linear rates)
            H = np.empty((nb, n))
            fields_k(syn.nbr, syn.deg, syn.w, bias, alive, RB, H)
            ops0[:] = slots
            bl = [np.zeros(0, np.int64)] * nb
            sl = [free_idx] * nb
        else:
            w64 = np.broadcast_to(warm.state64, (nb, n))
            # unchanged voxels continue from the warm state's float64 values (those the fields hold)
            S = np.where(S == np.broadcast_to(warm.state, (nb, n)).astype(np.float64), w64, S)
            RB = np.array(rho(w64), dtype=np.float64)        # a copy: never the warm result's own array
            H = np.array(np.broadcast_to(warm.input_field, (nb, n)), dtype=np.float64)
            db = bias.astype(np.float64) - warm.bias_used
            changed_b = np.flatnonzero(db != 0)
            H[:, changed_b] += db[changed_b]
            diff = rho(S) != RB
            bl = [np.flatnonzero(diff[b]).astype(np.int64) for b in range(nb)]
            # the nudge may differ from the warm settle's: the output voxels are checked again (O(n_out))
            sl = [np.union1d(changed_b, out_idx).astype(np.int64)] * nb
        if use_cost:
            cost.kernel_target(rho(S[:, out_idx]).T, Y)
        cap = int(self.max_steps if steps is None else steps)
        if cap < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        max_ops = np.int64(min(cap * max(slots, 1), 2**62))
        stats = np.zeros((nb, 5), dtype=np.int64)
        tot = np.zeros((nb, 5), dtype=np.int64)
        speed = np.zeros(nb)
        energy = np.zeros(nb)
        vtol = self.theta * self.tol
        for it in range(self.max_relinearise if use_cost else 1):
            bc, nbc = _pad(bl)
            sc, nsc = _pad(sl)
            budget = np.int64(max(0, max_ops - int((tot[:, _OPS] + ops0).max())))
            settle_k(syn.nbr, syn.deg, syn.w, frozen, ypos, Y, beta, act, dt, S, H, RB, bc, nbc,
                          sc, nsc, float(self.eps), vtol, budget, self.order == "residual", float(self.blowup),
                     float(self.relax), stats)
            tot[:, :4] += stats[:, :4]
            tot[:, 4] = np.maximum(tot[:, 4], stats[:, 4])
            if np.any(stats[:, _STATUS] == 2):
                bad = int(np.flatnonzero(stats[:, _STATUS] == 2)[0])
                raise SimulationDiverged(f"simulation diverged (trial {bad}: |s| > blowup {self.blowup:g}); "
                                         f"lower the weights or enable homeostasis",
                                         S.astype(tissue.dtype), start_step)
            if not use_cost:
                break
            # re-linearise the cost at the present rates; the outputs whose target moved are checked again
            Y_new = np.empty_like(Y)
            cost.kernel_target(rho(S[:, out_idx]).T, Y_new)
            speed_k(S, H, bias, alive, frozen, ypos, Y_new, beta, act, dt, speed, energy)
            Y[...] = Y_new
            if np.all(speed < self.tol) or np.any(tot[:, _STATUS] == 1):
                break
            bl = [np.zeros(0, np.int64)] * nb
            sl = [out_idx.astype(np.int64)] * nb
        speed_k(S, H, bias, alive, frozen, ypos, Y, beta, act, dt, speed, energy)
        ops = tot[:, _OPS] + ops0
        sweeps = ops / max(slots, 1)
        state = S.astype(tissue.dtype)
        res = EventResult(
            state=state, rates=rho(state), steps=sweeps, converged=speed < self.tol, energy=energy, speed=speed,
            step_end=int(start_step + math.ceil(sweeps.max(initial=0.0))), lattice=tissue.lattice,
            alive=alive.copy(), synapse_ops=ops, state64=S, updates=tot[:, _UPD].copy(),
            broadcasts=tot[:, _BC] + tot[:, _FLUSH], input_field=H, bias_used=bias.astype(np.float64), slots=slots)
        if cost is not None:
            res.cost = cost.value(res.rates[:, out_idx])
        elif target is not None:
            res.cost = self.cost(tissue, res.state, target)
        return res


def _pad(lists) -> tuple[np.ndarray, np.ndarray]:
    """Ragged int64 lists as a padded ``(B, max)`` array and the lengths."""
    nb = len(lists)
    m = max((len(x) for x in lists), default=0)
    out = np.zeros((nb, max(m, 1)), dtype=np.int64)
    ln = np.zeros(nb, dtype=np.int64)
    for b, x in enumerate(lists):
        out[b, :len(x)] = x
        ln[b] = len(x)
    return out, ln


def clocked_synapse_ops(tissue, result) -> int:
    """Multiply-adds of a clocked :meth:`Langevin.settle` of one trial started at step 0:
    every kernel call (the steps taken, the step that found convergence, and the
    final speed measurement: ``step_end + 1`` calls) reads every synapse slot of
    every living neuron (the stencil view computes every field)."""
    return (int(result.step_end) + 1) * EventEngine.slots(tissue)

