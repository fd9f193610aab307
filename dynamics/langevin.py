"""Overdamped Langevin settling of a tissue on its energy.

    ds = -dE/ds dt + sqrt(2 T dt) xi          (Euler-Maruyama; T = 0 is gradient flow)

:class:`Langevin` integrates a batch of trials until every trial's largest
drift speed ``max_i |ds_i/dt|`` falls below ``tol`` (at ``T = 0``) or the step
cap is reached, optionally streaming the trajectory to a recorder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import kernels as K
from . import stencil


class SimulationDiverged(RuntimeError):
    """The state left the finite range; ``state`` holds the last finite state ``(B, N)``."""

    def __init__(self, message: str, state: np.ndarray, step: int):
        super().__init__(message)
        self.state = state
        self.step = step


@dataclass
class SettleResult:
    """The outcome of :meth:`Langevin.settle`; arrays are trial-major ``(B, ...)``."""

    state: np.ndarray        # (B, N) membrane states
    rates: np.ndarray        # (B, N) rho(state)
    steps: np.ndarray        # (B,) steps taken by each trial
    converged: np.ndarray    # (B,) max |ds/dt| < tol reached
    energy: np.ndarray       # (B,) final energy E (without the nudge)
    speed: np.ndarray        # (B,) final max |ds/dt|
    step_end: int            # global step counter after the run (for chaining runs)
    lattice: object = field(repr=False, default=None)
    alive: np.ndarray | None = field(repr=False, default=None)
    trajectory: object = field(repr=False, default=None)  # xarray.Dataset when recorded
    cost: np.ndarray | None = None  # (B,) cost C on the output region when a target was given

    def to_dataset(self):
        """The final states as an ``xarray.Dataset`` with dims ``(trial, x, y, z)``."""
        import xarray as xr

        nx, ny, nz = self.lattice.shape
        b = self.state.shape[0]
        grid = lambda a: a.reshape(b, nx, ny, nz)  # noqa: E731
        dims = ("trial", "x", "y", "z")
        return xr.Dataset(
            {
                "state": (dims, grid(self.state), {"long_name": "membrane state s", "units": "1"}),
                "activation": (dims, grid(self.rates), {"long_name": "firing rate rho(s)", "units": "1"}),
                "steps": ("trial", self.steps, {"long_name": "settling steps", "units": "1"}),
                "converged": ("trial", self.converged, {"long_name": "max |ds/dt| < tol reached"}),
                "energy": ("trial", self.energy, {"long_name": "energy E(s)", "units": "1"}),
                "alive": (("x", "y", "z"), self.alive.reshape(nx, ny, nz), {"long_name": "living neuron"}),
            },
            coords={"trial": np.arange(b), "x": np.arange(nx), "y": np.arange(ny), "z": np.arange(nz)},
        )


@dataclass
class Langevin:
    """Euler-Maruyama integrator of ``ds = -dE/ds dt + sqrt(2 T dt) xi``.

    Parameters
    ----------
    dt : float
        Time step (in membrane time constants); gradient flow is stable for
        ``dt < 2 / L`` with ``L`` the largest curvature of the energy.
    temperature : float
        ``T >= 0``; 0 gives deterministic gradient flow.
    tol : float
        Convergence threshold on ``max_i |ds_i/dt|`` (drift only).
    max_steps : int
        Step cap of :meth:`settle`.
    seed : int
        Seeds the counter-based noise stream.
    blowup : float
        ``max |s|`` beyond which the run is declared diverged.
    """

    dt: float = 0.5
    temperature: float = 0.0
    tol: float = 1e-4
    max_steps: int = 10_000
    seed: int = 0
    blowup: float = 1e6

    def __post_init__(self):
        for key, val, ok, allowed in (
            ("dt", self.dt, lambda v: v > 0, "> 0"),
            ("temperature", self.temperature, lambda v: v >= 0, ">= 0"),
            ("tol", self.tol, lambda v: v > 0, "> 0"),
            ("blowup", self.blowup, lambda v: v > 0, "> 0"),
        ):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and ok(val)):
                raise ValueError(f"Langevin {key} must be a finite number {allowed}, got {val!r}")
        if int(self.max_steps) < 1:
            raise ValueError(f"Langevin max_steps must be >= 1, got {self.max_steps!r}")

    # ------------------------------------------------------------------ state
    @staticmethod
    def initial_state(tissue, n_trials: int | None = None, inputs=None, init=None) -> np.ndarray:
        """Build the internal ``(N, B)`` state: ``init`` (``(B, N)`` or ``(N,)``,
        default rest 0), inputs clamped to ``inputs`` (``(B, n_inputs)``), dead
        voxels at rest."""
        n = tissue.n
        dtype = tissue.dtype
        in_idx = tissue.region("input")
        if inputs is not None:
            inputs = np.asarray(inputs, dtype=float)
            if inputs.ndim == 1:
                inputs = inputs[None, :]
            if inputs.shape[1] != len(in_idx):
                raise ValueError(f"inputs have {inputs.shape[1]} columns but the tissue has "
                                 f"{len(in_idx)} input voxels")
            n_trials = inputs.shape[0] if n_trials is None else n_trials
        if init is not None:
            init = np.asarray(init, dtype=float)
            if init.ndim == 1:
                init = np.broadcast_to(init, (n_trials or 1, n))
            if init.shape[1] != n:
                raise ValueError(f"init must have {n} columns (one per voxel), got {init.shape[1]}")
            n_trials = init.shape[0] if n_trials is None else n_trials
        n_trials = 1 if n_trials is None else int(n_trials)
        s = np.zeros((n, n_trials), dtype=dtype)
        if init is not None:
            if init.shape[0] != n_trials:
                raise ValueError(f"init has {init.shape[0]} trials, expected {n_trials}")
            s[:] = init.T
        if inputs is not None:
            if inputs.shape[0] != n_trials:
                raise ValueError(f"inputs have {inputs.shape[0]} trials, expected {n_trials}")
            s[in_idx] = inputs.T
        if tissue.activation == "hard_sigmoid":
            np.clip(s, 0, 1, out=s)
        s[~tissue.alive] = 0
        if not np.all(np.isfinite(s)):
            raise ValueError("initial state or inputs contain NaN or inf")
        return s

    # ----------------------------------------------------------------- energy
    @staticmethod
    def energy(tissue, state) -> np.ndarray:
        """Energy per trial of a ``(B, N)`` state (float64)."""
        s = np.ascontiguousarray(np.atleast_2d(state).T)
        epart = np.zeros((K.n_chunks(tissue.n), s.shape[1]))
        return K.energy(tissue.syn.nbr, tissue.syn.deg, tissue.syn.w, tissue.bias, tissue.alive, s,
                        K.ACT_CODES[tissue.activation], epart)

    @staticmethod
    def force(tissue, state, target=None, beta: float = 0.0, cost=None) -> np.ndarray:
        """Force ``-dF/ds`` of a ``(B, N)`` state (0 on clamped and dead voxels), float64,
        with ``F = E + beta C`` (see :meth:`settle` for ``target`` and ``beta``)."""
        s = np.ascontiguousarray(np.atleast_2d(state).T)
        out = np.zeros(s.shape)
        if cost is not None:
            out_idx = tissue.region("output")
            target = np.zeros((s.shape[1], len(out_idx)))
            K.rates(s, K.ACT_CODES[tissue.activation], out)
            cost.kernel_target(out[out_idx], target.T)
        ypos, Y, beta = nudge_arrays(tissue, target, beta, s.shape[1], s.dtype)
        K.force(tissue.syn.nbr, tissue.syn.deg, tissue.syn.w, tissue.bias, tissue.clamped.astype(np.uint8), s,
                K.ACT_CODES[tissue.activation], out, ypos, Y, beta)
        return out.T

    @staticmethod
    def cost(tissue, state, target) -> np.ndarray:
        """Cost ``C = 1/2 sum_o (rho(s_o) - y_o)^2`` per trial over the output region (float64)."""
        out = tissue.region("output")
        s = np.atleast_2d(np.asarray(state, dtype=np.float64))[:, out]
        y = np.atleast_2d(np.asarray(target, dtype=np.float64))
        return 0.5 * ((rho_np(s, tissue.activation) - y) ** 2).sum(axis=1)

    # ----------------------------------------------------------------- settle
    def settle(self, tissue, inputs=None, init=None, n_trials=None, steps=None, record=None,
               start_step: int = 0, progress: bool = False, carry: dict | None = None,
               target=None, beta: float = 0.0, cost=None) -> SettleResult:
        """Settle a batch of trials.

        Parameters
        ----------
        tissue : Tissue
        inputs : array (B, n_inputs), optional
            Values clamped on the input region (``tissue.region("input")`` order).
        init : array (B, N) or (N,), optional
            Initial states (default: rest, 0).
        steps : int, optional
            Step cap (default ``max_steps``). At ``T > 0`` all steps are run.
        record : str, path, Recorder or True, optional
            Stream the trajectory: a zarr path, a configured
            :class:`tissue.Recorder`, or ``True`` for an in-memory Dataset.
        start_step : int
            Global step counter at the start (continues a noise stream).
        progress : bool
            Show a tqdm progress bar.
        carry : dict, optional
            Per-trial bookkeeping from a checkpoint (``active``, ``taken``,
            ``converged``) to continue an interrupted settle exactly.
        target : array (B, n_outputs), optional
            Targets of the output region (``tissue.region("output")`` order).
        beta : float
            Nudge strength: the dynamics descend ``F = E + beta C`` with the
            squared-error cost ``C = 1/2 sum_o (rho(s_o) - y_o)^2`` (negative
            ``beta`` nudges away from the target, as EqProp's ``-beta`` phase).
        cost : dynamics.costs.Cost, optional
            Another cost of the output rates (e.g. on the group means) in place
            of the squared error to ``target``; it is re-linearised before every
            step (see :mod:`dynamics.costs`).

        Returns
        -------
        SettleResult
            ``trajectory`` holds the recorded ``xarray.Dataset`` when recording.

        Raises
        ------
        SimulationDiverged
            When the state becomes non-finite or exceeds ``blowup``; the last
            finite state is recorded (and checkpointed) before raising.
        """
        from tissue.records import Recorder

        s = self.initial_state(tissue, n_trials, inputs, init)
        if cost is not None and target is None:
            target = np.zeros((s.shape[1], len(tissue.region("output"))))
        nudge = nudge_arrays(tissue, target, beta, s.shape[1], s.dtype)
        if cost is not None and nudge[2] != 0.0:
            nudge = nudge + (cost, tissue.region("output"))
        res = self._run(tissue, s, steps, record, start_step, progress, Recorder, carry, nudge)
        if cost is not None:
            res.cost = cost.value(res.rates[:, tissue.region("output")])
        elif target is not None:
            res.cost = self.cost(tissue, res.state, target)
        return res

    def _run(self, tissue, s, steps, record, start_step, progress, Recorder, carry=None, nudge=None):
        n, nb = s.shape
        ypos, Y, beta = (nudge if nudge is not None else nudge_arrays(tissue, None, 0.0, nb, s.dtype))[:3]
        cost, out_idx = nudge[3:] if nudge is not None and len(nudge) > 3 else (None, None)
        steps = self.max_steps if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        act = K.ACT_CODES[tissue.activation]
        separate_r = act in (K.SIGMOID, K.TANH)
        # the settling kernel: the table, or a stencil view of it built now (never
        # kept between settles: plasticity rewrites syn.w in place)
        step = stencil.stepper(tissue, nb, steps)
        frozen = tissue.clamped.astype(np.uint8)
        bias = tissue.bias
        dtype = s.dtype
        s_b = np.empty_like(s)
        if separate_r:
            r = np.empty_like(s)
            K.rates(s, act, r)
            r_b = np.empty_like(s)
        else:
            r, r_b = s, s_b
        rec = None
        if record is not None and record is not False:
            rec = record if isinstance(record, Recorder) else Recorder(None if record is True else record)
            rec.open(tissue, self, nb)
        write_v = rec is not None and "velocity" in rec.variables
        v = np.zeros_like(s) if write_v else np.zeros((1, 1), dtype)
        nch = K.n_chunks(n)
        vpart = np.zeros((nch, nb))
        spart = np.zeros((nch, nb))
        mask = np.ones(nb, dtype=dtype)
        stop_on_converge = self.temperature == 0
        noise = math.sqrt(2.0 * self.temperature * self.dt)
        taken = np.zeros(nb, dtype=np.int64)
        converged = np.zeros(nb, dtype=bool)
        if carry is not None:
            mask[:] = np.asarray(carry["active"], dtype=bool)
            taken[:] = carry["taken"]
            converged[:] = np.asarray(carry["converged"], dtype=bool)
        rec_e = rec is not None and "energy" in rec.variables

        def frame_energy(state):
            return self.energy(tissue, state.T) if rec_e else None

        def bookkeeping():
            return {"active": mask > 0, "taken": taken, "converged": converged}

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc="settle", unit="step", leave=False)
        t = start_step
        try:
            for it in range(steps):
                key = np.uint64(K.step_key(self.seed, t))
                rec_now = rec is not None and rec.due(t)
                if cost is not None:    # re-linearise the cost at the present rates
                    cost.kernel_target(r[out_idx], Y)
                step(bias, frozen, s, r, s_b, r_b, v, mask, dtype.type(self.dt), noise, key, act,
                     write_v and rec_now, vpart, spart, ypos, Y, beta)
                vmax = vpart.max(axis=0)
                smax = spart.max(axis=0)
                if not (np.all(np.isfinite(vmax)) and np.all(smax <= self.blowup)):
                    bad = int(np.flatnonzero(~(np.isfinite(vmax) & (smax <= self.blowup)))[0])
                    msg = (f"simulation diverged at step {t} (trial {bad}: max |s| = {smax[bad]:.3g}, "
                           f"max |ds/dt| = {vmax[bad]:.3g}, blowup limit {self.blowup:g}); "
                           f"lower dt or the weights, or enable homeostasis")
                    if rec is not None:
                        rec.write_frame(t, self.dt, s, r, None, frame_energy(s))
                        rec.checkpoint(t, s, status="diverged", message=msg, carry=bookkeeping())
                    raise SimulationDiverged(msg, s.T.copy(), t)
                active = mask > 0
                if rec_now:
                    rec.write_frame(t, self.dt, s, r, v if write_v else None, frame_energy(s))
                newly = active & (vmax < self.tol)
                converged[active] = vmax[active] < self.tol
                if stop_on_converge and newly.any():
                    # keep s_t (whose speed is below tol), not the step just taken from it
                    s_b[:, newly] = s[:, newly]
                    if separate_r:
                        r_b[:, newly] = r[:, newly]
                    mask[newly] = 0
                taken[active & ~(newly & stop_on_converge)] += 1
                s, s_b = s_b, s
                if separate_r:
                    r, r_b = r_b, r
                else:
                    r, r_b = s, s_b
                t += 1
                if bar is not None:
                    bar.update(1)
                if rec is not None and rec.checkpoint_due(t):
                    rec.checkpoint(t, s, carry=bookkeeping())
                if stop_on_converge and not mask.any():
                    break
            rates = r if separate_r else s
            e = self.energy(tissue, s.T)
            # the drift speed of the state returned (mask 0: nothing moves, no noise)
            if cost is not None:
                cost.kernel_target(r[out_idx], Y)
            step(bias, frozen, s, r, s_b, r_b, v, np.zeros_like(mask), dtype.type(self.dt), 0.0, np.uint64(0), act,
                 write_v, vpart, spart, ypos, Y, beta)
            speed = vpart.max(axis=0)
            converged = speed < self.tol
            if rec is not None:
                rec.finish(t, self.dt, s, rates, v if write_v else None, e, carry=bookkeeping())
        finally:
            if bar is not None:
                bar.close()
        return SettleResult(
            state=s.T.copy(), rates=rates.T.copy(), steps=taken, converged=converged, energy=e,
            speed=speed, step_end=t, lattice=tissue.lattice, alive=tissue.alive.copy(),
            trajectory=None if rec is None else rec.dataset(),
        )


def rho_np(s, activation: str):
    """``rho(s)`` in NumPy (float64)."""
    s = np.asarray(s, dtype=np.float64)
    if activation == "hard_sigmoid":
        return np.clip(s, 0.0, 1.0)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-s))
    if activation == "tanh":
        return np.tanh(s)
    return s


def nudge_arrays(tissue, target, beta, n_trials: int, dtype):
    """Kernel arrays of a nudge: ``ypos`` (N,) int32 (row of each output voxel in
    ``Y``, -1 elsewhere), ``Y`` (n_outputs, B) targets and ``beta`` (float)."""
    beta = float(beta)
    if not math.isfinite(beta):
        raise ValueError(f"beta must be finite, got {beta!r}")
    ypos = np.full(tissue.n, -1, dtype=np.int32)
    if target is None or beta == 0.0:
        return ypos, np.zeros((1, max(1, n_trials)), dtype=dtype), 0.0
    out = tissue.region("output")
    if len(out) == 0:
        raise ValueError("a nudge needs an output region (Tissue.set_output)")
    y = np.atleast_2d(np.asarray(target, dtype=np.float64))
    if y.shape != (n_trials, len(out)):
        raise ValueError(f"target must have shape (trials, outputs) = ({n_trials}, {len(out)}), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("target contains NaN or inf")
    ypos[out] = np.arange(len(out), dtype=np.int32)
    return ypos, np.ascontiguousarray(y.T, dtype=dtype), beta
