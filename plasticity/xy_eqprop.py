"""Learning with phases: Equilibrium Propagation on the XY energy.

Every living neuron carries a phase ``theta_i``. The energy of the tissue is::

    E(theta) = -sum_{i<j} W_ij cos(theta_i - theta_j) - sum_i Re(conj(b_i) exp(i theta_i))

with the symmetric couplings ``W`` of the tissue's synapse table and a complex
bias field ``b_i = h_i exp(i psi_i)`` per neuron (``-h_i cos(theta_i - psi_i)``).
Inputs are pacemakers: their phases are clamped to the data. The loss of an
example is a cost on the output phases at the free minimum::

    C(theta) = sum_o w_o (1 - cos(theta_o - tau_o))

(``tau_o`` the target phase of output voxel ``o``: ``target_on`` for the voxels
of the correct class's group, ``target_off`` for the others, which weigh
``w_o = off_weight``, by default ``1 / (n_classes - 1)``). The prediction is
the group whose mean ``cos(theta_o - target_on)`` is largest.

Settling (:class:`XYSettler`) is the phase gradient flow ``dtheta/dt = -dF/dtheta``
of ``F = E + beta C`` (the :class:`dynamics.Kuramoto` model with ``omega = 0``
and a static complex drive ``b + beta exp(i tau)`` on the outputs; a negative
``beta`` nudges away), integrated with RK4 until ``max |dtheta/dt| < tol``.

EqProp (:class:`XYEqProp`, the interface of :class:`plasticity.EqProp`:
``train_step``, ``evaluate``, ``fit_epoch``) uses ``dE/dW_ij = -cos(theta_i -
theta_j)`` and ``dE/db_i = -exp(i theta_i)`` (as ``d/d Re b + i d/d Im b``)::

    dW_ij = lr / (2 beta) [cos(theta_i - theta_j)]^{+beta}_{-beta}
    db_i  = lr_field / (2 beta) [exp(i theta_i)]^{+beta}_{-beta}

(one-sided: the free phase in place of ``-beta`` and ``1 / beta``).

:func:`exact_xy_gradient` is the independent reference: implicit
differentiation at the free minimum with the Hessian of ``E`` over the free
phases (scipy.sparse)::

    H_ii = sum_j W_ij cos(theta_i - theta_j) + Re(conj(b_i) exp(i theta_i)),
    H_ij = -W_ij cos(theta_i - theta_j)        (i, j free),
    H lambda = dC/dtheta,
    dL/dW_ij = -(lambda_i - lambda_j) sin(theta_i - theta_j),
    dL/db_i  = -lambda_i sin(theta_i) + i lambda_i cos(theta_i)     (lambda = 0 on inputs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from tissue import INPUT

__all__ = ["XYEqProp", "XYSettleResult", "XYSettler", "exact_xy_gradient", "xy_cost", "xy_hessian",
           "xy_scores", "xy_targets"]


# ------------------------------------------------------------------ read-out
def xy_targets(y, tissue, on: float = 0.0, off: float = math.pi, off_weight: float | None = None) -> np.ndarray:
    """Weighted targets ``T_o = w_o exp(i tau_o)`` ``(B, n_out)`` (complex) in
    ``tissue.region("output")`` order: ``exp(i on)`` on the voxels of group ``y[b]``,
    ``off_weight * exp(i off)`` elsewhere. ``off_weight=None`` balances the classes:
    ``1 / (n_groups - 1)``, so that all-on and all-off outputs cost the same."""
    from .readout import one_hot_targets

    hot = one_hot_targets(y, tissue, 1.0, 0.0)
    if off_weight is None:
        off_weight = 1.0 / max(int(tissue.group.max()), 1)
    return np.where(hot > 0, np.exp(1j * float(on)), float(off_weight) * np.exp(1j * float(off)))


def _as_target(target) -> np.ndarray:
    """Complex weighted targets from phases (weight 1) or complex ``w exp(i tau)``."""
    t = np.asarray(target)
    return t.astype(complex) if np.iscomplexobj(t) else np.exp(1j * t.astype(np.float64))


def xy_scores(theta, tissue, on: float = 0.0) -> np.ndarray:
    """Mean ``cos(theta_o - on)`` of each output group: ``(B, n_groups)``."""
    from .readout import group_means

    return group_means(np.cos(np.asarray(theta, dtype=np.float64) - on), tissue)


def xy_cost(theta, tissue, target) -> np.ndarray:
    """``C = sum_o w_o (1 - cos(theta_o - tau_o))`` per trial; ``target`` ``(B, n_out)``:
    phases ``tau`` (``w = 1``) or complex ``w exp(i tau)``."""
    out = tissue.region("output")
    t = _as_target(target)
    return (np.abs(t) - (np.conj(t) * np.exp(1j * np.asarray(theta)[:, out])).real).sum(axis=1)


# ------------------------------------------------------------------ settling
@dataclass
class XYSettleResult:
    """Outcome of :meth:`XYSettler.settle` (arrays trial-major)."""

    state: np.ndarray        # (B, N) phases (unwrapped)
    steps: np.ndarray        # (B,) steps until max |dtheta/dt| < tol (the cap if never)
    converged: np.ndarray    # (B,)
    energy: np.ndarray       # (B,) E (without the nudge)
    cost: np.ndarray | None  # (B,) C when a target was given
    speed: np.ndarray        # (B,) final max |dtheta/dt| over free neurons


@dataclass
class XYSettler:
    """Settle phases to a minimum of ``F = E + beta C`` by RK4 gradient flow.

    Parameters
    ----------
    dt : float
        Time step (RK4 is stable for ``dt`` below about ``2.8 / lambda_max`` of the Hessian).
    tol : float
        Converged when ``max |dtheta/dt|`` over the free neurons is below ``tol``.
    max_steps : int
        Step cap.
    check_every : int
        Steps between convergence checks.
    newton : bool
        After every ``check_every`` flow steps, try to finish each unconverged
        trial by damped Newton steps on ``F`` (dense Cholesky of the Hessian over
        the free phases; only where it is positive definite, i.e. inside the
        basin of a minimum, with a backtracking line search on ``F``). It finds
        the same minimum the flow is heading to, in far fewer steps. Skipped for
        more than ``newton_max_free`` free neurons.
    newton_iters : int
        Newton steps per attempt.
    newton_from : float
        Attempt Newton only once ``max |dtheta/dt|`` has fallen below this (near a
        minimum, where the Hessian is positive definite and Newton converges in a
        few steps).
    """

    dt: float = 0.2
    tol: float = 1e-4
    max_steps: int = 3000
    check_every: int = 25
    newton: bool = True
    newton_iters: int = 6
    newton_max_free: int = 4000
    newton_from: float = 0.02

    def __post_init__(self):
        for key, val in (("dt", self.dt), ("tol", self.tol)):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
                raise ValueError(f"XYSettler {key} must be a finite number > 0, got {val!r}")
        for key, val in (("max_steps", self.max_steps), ("check_every", self.check_every)):
            if int(val) != val or val < 1:
                raise ValueError(f"XYSettler {key} must be an integer >= 1, got {val!r}")

    def settle(self, tissue, inputs=None, init=None, target=None, beta: float = 0.0, field=None,
               steps: int | None = None) -> XYSettleResult:
        """Settle a batch.

        Parameters
        ----------
        tissue : Tissue
            Couplings ``W`` (``syn.w``), inputs (``role``), outputs and groups.
        inputs : array (B, n_in), optional
            Phases of ``tissue.region("input")`` (clamped).
        init : array (B, N), optional
            Initial phases (default 0); input columns are overwritten by ``inputs``.
        target : array (B, n_out), optional
            Target phases of ``tissue.region("output")`` (for the nudge and the cost), or
            complex weighted targets ``w exp(i tau)`` (see :func:`xy_targets`).
        beta : float
            Nudge strength (``< 0`` nudges away from the target).
        field : complex array (N,), optional
            The bias field ``b`` (default 0).
        steps : int, optional
            Step cap for this call (default ``max_steps``).
        """
        from dynamics.oscillators import (
            Drive,
            Integrator,
            Kuramoto,
            Network,
            drift,
            xy_energy,
        )

        net = Network.from_tissue(tissue, weights=np.asarray(tissue.syn.w, dtype=np.float64))
        n = tissue.n
        inp, out = tissue.region("input"), tissue.region("output")
        sizes = [len(a) for a in (inputs, init, target) if a is not None]
        nb = sizes[0] if sizes else 1
        theta = np.zeros((nb, n)) if init is None else np.array(init, dtype=np.float64, copy=True)
        if theta.shape != (nb, n):
            raise ValueError(f"init must have shape ({nb}, {n}), got {theta.shape}")
        if inputs is not None:
            x = np.asarray(inputs, dtype=np.float64)
            if x.shape != (nb, len(inp)):
                raise ValueError(f"inputs must have shape ({nb}, {len(inp)}) (trials, input voxels), got {x.shape}")
            theta[:, inp] = x
        b = np.zeros(n, complex) if field is None else np.asarray(field, dtype=complex)
        if b.shape != (n,):
            raise ValueError(f"field must have shape ({n},), got {b.shape}")
        amp = np.broadcast_to(b, (nb, n)).astype(complex)
        if target is not None:
            tau = _as_target(target)
            if tau.shape != (nb, len(out)):
                raise ValueError(f"target must have shape ({nb}, {len(out)}), got {tau.shape}")
            if beta != 0:
                amp = amp.copy()
                amp[:, out] += beta * tau
        elif beta != 0:
            raise ValueError("a nudge (beta != 0) needs a target")
        model = Kuramoto(omega=0.0, coupling=1.0, drive=Drive(amplitude=amp, frequency=0.0, phase=0.0))
        integ = Integrator(dt=self.dt, method="rk4")
        free = (~tissue.clamped) & tissue.alive
        cap = self.max_steps if steps is None else int(steps)
        taken = np.full(nb, cap, dtype=np.int64)
        conv = np.zeros(nb, bool)
        done = 0
        speed = np.abs(drift(model, net, theta)[:, free]).max(axis=1, initial=0.0)
        conv = speed < self.tol
        taken[conv] = 0
        use_newton = self.newton and 0 < free.sum() <= self.newton_max_free
        while done < cap and not conv.all():
            k = min(self.check_every, cap - done)
            theta = integ.run(model, net, k, init=theta).state
            done += k
            speed = np.abs(drift(model, net, theta)[:, free]).max(axis=1, initial=0.0)
            if use_newton:
                for bi in np.flatnonzero((speed >= self.tol) & (speed < self.newton_from) & ~conv):
                    theta[bi], speed[bi] = _newton_polish(tissue, theta[bi], amp[bi], free, self.tol,
                                                          self.newton_iters)
            new = (speed < self.tol) & ~conv
            taken[new] = done
            conv |= new
        energy = xy_energy(net, theta, 1.0, b, 0.0)
        cost = None if target is None else xy_cost(theta, tissue, tau)
        return XYSettleResult(theta, taken, conv, energy, cost, speed)


def _xy_f_grad(tissue, th, b):
    """``F`` and ``dF/dtheta`` (N,) of one state for the effective field ``b`` (N,) complex."""
    syn = tissue.syn
    occ = syn.nbr >= 0
    j = np.where(occ, syn.nbr, 0)
    d = th[:, None] - th[j]
    w = np.where(occ, syn.w, 0.0)
    e = np.exp(1j * th)
    f = -0.5 * (w * np.cos(d)).sum() - (np.conj(b) * e).real[tissue.alive].sum()
    g = (w * np.sin(d)).sum(axis=1) + (np.conj(b) * e).imag
    return f, g


def _newton_polish(tissue, th, b, free, tol, iters):
    """Damped Newton on ``F`` over the free phases (see ``XYSettler.newton``): returns
    ``(theta, max |dF/dtheta|)``; stops (leaving the state to the flow) where the
    Hessian is not positive definite or no step lowers ``F``."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):      # small dense factorisations: threads only add contention
        return _newton_loop(tissue, th, b, free, tol, iters, LinAlgError, cho_factor, cho_solve)


def _newton_loop(tissue, th, b, free, tol, iters, LinAlgError, cho_factor, cho_solve):
    th = th.copy()
    f, g = _xy_f_grad(tissue, th, b)
    gmax = np.abs(g[free]).max()
    for _ in range(int(iters)):
        if gmax < tol:
            break
        h, idx = xy_hessian(tissue, th, b)
        try:
            c = cho_factor(h.toarray(), check_finite=False)
        except LinAlgError:
            break
        step = -cho_solve(c, g[idx], check_finite=False)
        slope = g[idx] @ step
        a = 1.0
        for _ls in range(10):
            trial = th.copy()
            trial[idx] += a * step
            f2, g2 = _xy_f_grad(tissue, trial, b)
            if f2 <= f + 1e-4 * a * slope:
                break
            a *= 0.5
        else:
            break
        th, f, g = trial, f2, g2
        gmax = np.abs(g[free]).max()
    return th, gmax


# ------------------------------------------------------------------ exact gradient
def xy_hessian(tissue, theta, field=None):
    """The Hessian of ``E`` over the free phases at ``theta`` ``(N,)``: ``(H (csr), free index)``."""
    import scipy.sparse as sp

    th = np.asarray(theta, dtype=np.float64)
    syn = tissue.syn
    n = tissue.n
    b = np.zeros(n, complex) if field is None else np.asarray(field, dtype=complex)
    occ = np.arange(syn.width)[None, :] < syn.degree[:, None]
    i, k = np.nonzero(occ)
    j = syn.nbr[i, k].astype(np.int64)
    w = syn.w[i, k].astype(np.float64)
    c = w * np.cos(th[i] - th[j])
    diag = np.bincount(i, weights=c, minlength=n) + (np.conj(b) * np.exp(1j * th)).real
    free = np.flatnonzero((~tissue.clamped) & tissue.alive)
    pos = np.full(n, -1)
    pos[free] = np.arange(len(free))
    keep = (pos[i] >= 0) & (pos[j] >= 0)
    m = len(free)
    h = sp.coo_matrix((-c[keep], (pos[i[keep]], pos[j[keep]])), shape=(m, m)).tocsr()
    h = h + sp.diags(diag[free])
    return h.tocsr(), free


def exact_xy_gradient(tissue, theta, target, field=None):
    """The exact gradient of ``L = C(theta*)`` at a free minimum ``theta`` by implicit differentiation.

    Parameters
    ----------
    tissue : Tissue
    theta : array (N,) or (B, N)
        Free minima (e.g. ``XYSettler.settle(...).state``).
    target : array (n_out,) or (B, n_out)
        Target phases of the outputs (or complex weighted targets, see :func:`xy_targets`).
    field : complex array (N,), optional

    Returns
    -------
    (gW, gb) : ``dL/dW`` per slot ``(N, K)`` (both slots of a synapse hold it) and
    ``dL/db`` ``(N,)`` complex (``dL/d Re b + i dL/d Im b``), means over the trials.
    """
    from scipy.sparse.linalg import spsolve

    th = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    tau = np.atleast_2d(_as_target(target))
    syn = tissue.syn
    out = tissue.region("output")
    occ = syn.nbr >= 0
    j = np.where(occ, syn.nbr, 0)
    gw = np.zeros(syn.w.shape)
    gb = np.zeros(tissue.n, complex)
    for b in range(len(th)):
        h, free = xy_hessian(tissue, th[b], field)
        dc = np.zeros(tissue.n)
        dc[out] = (np.conj(tau[b]) * np.exp(1j * th[b, out])).imag    # dC/dtheta_o = w sin(theta - tau)
        lam = np.zeros(tissue.n)
        lam[free] = spsolve(h.tocsc(), dc[free])
        d = th[b][:, None] - th[b][j]
        gw += np.where(occ, -(lam[:, None] - lam[j]) * np.sin(d), 0.0)
        gb += -lam * np.sin(th[b]) + 1j * lam * np.cos(th[b])
    return gw / len(th), gb / len(th)


# ------------------------------------------------------------------ trainer
@dataclass
class XYStepReport:
    """What one training step measured (means over the mini-batch)."""

    loss: float
    correct: int
    free_steps: np.ndarray
    free_converged: np.ndarray
    nudged_steps: np.ndarray
    update_norm: float
    free_state: np.ndarray = field(repr=False, default=None)


@dataclass
class XYEqProp:
    """Equilibrium Propagation on the XY energy, with the interface of :class:`plasticity.EqProp`.

    The trainable parameters are the tissue's couplings ``syn.w`` and the complex
    bias field :attr:`field` ``(N,)`` held here (0 on inputs; it starts at
    ``tissue.bias``, real). ``engine`` in every method is an :class:`XYSettler`.

    Parameters
    ----------
    beta : float
        Nudge strength (> 0).
    symmetric : bool
        ``+beta`` and ``-beta`` (O(beta^2) estimate) or free and ``+beta``.
    lr, lr_field : float
        Learning rates of the couplings and of the field (default ``lr``).
    optimizer : {"sgd", "adam"}
    batch_size : int
    target_on, target_off : float
        Target phases of the correct and the other output groups.
    off_weight : float, optional
        Weight of the other groups' voxels in the cost (default ``1 / (n_classes - 1)``).
    weight_clip : float, optional
        Clip couplings to ``[-c, c]`` after each update.
    seed : int
        Seeds the order of examples.
    """

    beta: float = 0.1
    symmetric: bool = True
    lr: float = 0.05
    lr_field: float | None = None
    optimizer: str = "adam"
    batch_size: int = 32
    target_on: float = 0.0
    target_off: float = math.pi
    off_weight: float | None = None
    weight_clip: float | None = None
    seed: int = 0
    field: np.ndarray | None = None

    def __post_init__(self):
        for key, val, ok, allowed in (("beta", self.beta, lambda v: v > 0, "> 0"),
                                      ("lr", self.lr, lambda v: v >= 0, ">= 0")):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and ok(val)):
                raise ValueError(f"XYEqProp {key} must be a finite number {allowed}, got {val!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"XYEqProp optimizer must be one of ('sgd', 'adam'), got {self.optimizer!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"XYEqProp batch_size must be >= 1, got {self.batch_size!r}")
        self._opt = {"t": 0}

    # ----------------------------------------------------------- set-up
    def _prepare(self, tissue):
        free = (tissue.role != INPUT) & tissue.alive
        if self.field is None or self.field.shape != (tissue.n,):
            self.field = np.where(free, np.asarray(tissue.bias, dtype=np.float64), 0.0).astype(complex)
        self._free = free

    def export_state(self) -> dict:
        """The field and the optimizer's arrays, for a checkpoint."""
        out = {"xy_field": np.stack([self.field.real, self.field.imag]) if self.field is not None else None,
               "opt_t": np.array([self._opt["t"]], dtype=np.int64)}
        for k in ("m", "v", "mb", "vb"):
            if k in self._opt:
                out[f"opt_{k}"] = self._opt[k]
        return {k: v for k, v in out.items() if v is not None}

    def import_state(self, tissue, arrays: dict) -> None:
        """Restore what :meth:`export_state` gave."""
        if "xy_field" in arrays:
            f = np.asarray(arrays["xy_field"])
            self.field = f[0] + 1j * f[1]
        self._prepare(tissue)
        self._opt["t"] = int(np.asarray(arrays.get("opt_t", [0]))[0])
        for k in ("m", "v", "mb", "vb"):
            if f"opt_{k}" in arrays:
                self._opt[k] = np.array(arrays[f"opt_{k}"])

    # ----------------------------------------------------------- phases
    def targets(self, tissue, y) -> np.ndarray:
        """Complex weighted targets ``(B, n_out)`` of labels ``y`` (see :func:`xy_targets`)."""
        return xy_targets(y, tissue, self.target_on, self.target_off, self.off_weight)

    def phases(self, tissue, engine: XYSettler, x, y, init=None):
        """Settle free and nudged: ``(free, plus, minus)`` results (``minus`` is ``free`` when one-sided)."""
        self._prepare(tissue)
        tau = self.targets(tissue, y)
        free = engine.settle(tissue, inputs=x, init=init, target=tau, beta=0.0, field=self.field)
        plus = engine.settle(tissue, inputs=x, init=free.state, target=tau, beta=self.beta, field=self.field)
        minus = (engine.settle(tissue, inputs=x, init=free.state, target=tau, beta=-self.beta, field=self.field)
                 if self.symmetric else free)
        return free, plus, minus

    def gradient(self, tissue, free, plus, minus):
        """EqProp estimate of ``-dL/dW`` per slot ``(N, K)`` and ``-dL/db`` ``(N,)`` complex."""
        syn = tissue.syn
        occ = syn.nbr >= 0
        j = np.where(occ, syn.nbr, 0)
        scale = 1.0 / (2.0 * self.beta) if self.symmetric else 1.0 / self.beta

        def corr(theta):
            z = np.exp(1j * theta)                     # (B, N)
            c = np.einsum("bi,bik->ik", z.real, z.real[:, j]) + np.einsum("bi,bik->ik", z.imag, z.imag[:, j])
            return c / len(theta), z.mean(axis=0)

        cp, zp = corr(plus.state)
        cm, zm = corr(minus.state)
        g = np.where(occ, (cp - cm) * scale, 0.0)
        g = 0.5 * (g + np.where(occ, g[j, np.where(occ, syn.rev, 0)], 0.0))   # exactly symmetric
        gb = np.where(self._free, (zp - zm) * scale, 0.0)
        return g, gb

    def apply(self, tissue, g, gb) -> None:
        """Move the couplings and the field along ``g`` / ``gb`` (ascent on ``-L``)."""
        st = self._opt
        if self.optimizer == "adam":
            st["t"] += 1
            t = st["t"]
            gr = np.stack([gb.real, gb.imag])
            for key, arr in (("m", g), ("mb", gr)):
                if key not in st or st[key].shape != arr.shape:
                    st[key] = np.zeros_like(arr)
                    st["v" + key[1:]] = np.zeros_like(arr)
            out = []
            for key, arr in (("m", g), ("mb", gr)):
                m, v = st[key], st["v" + key[1:]]
                m *= 0.9
                m += 0.1 * arr
                v *= 0.999
                v += 0.001 * arr * arr
                out.append((m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8))
            g = out[0]
            gb = out[1][0] + 1j * out[1][1]
        lr_f = self.lr if self.lr_field is None else self.lr_field
        w = tissue.syn.w
        w += (self.lr * np.where(tissue.syn.nbr >= 0, g, 0.0)).astype(w.dtype)
        if self.weight_clip is not None:
            np.clip(w, -self.weight_clip, self.weight_clip, out=w)
        self.field = self.field + lr_f * np.where(self._free, gb, 0.0)

    def predict(self, tissue, theta) -> np.ndarray:
        """The class of each trial: the output group with the largest mean ``cos(theta_o - target_on)``."""
        s = xy_scores(theta, tissue, self.target_on)
        return np.argmax(np.where(np.isnan(s), -np.inf, s), axis=1)

    def train_step(self, tissue, engine: XYSettler, x, y, index=None) -> XYStepReport:
        """One mini-batch: settle free, settle nudged (+beta, -beta), update."""
        free, plus, minus = self.phases(tissue, engine, x, y)
        g, gb = self.gradient(tissue, free, plus, minus)
        self.apply(tissue, g, gb)
        pred = self.predict(tissue, free.state)
        return XYStepReport(loss=float(np.mean(free.cost)), correct=int((pred == np.asarray(y)).sum()),
                            free_steps=free.steps, free_converged=free.converged, nudged_steps=plus.steps,
                            update_norm=float(np.sqrt((g ** 2).sum() + (np.abs(gb) ** 2).sum())),
                            free_state=free.state)

    def evaluate(self, tissue, engine: XYSettler, x, y, batch_size: int | None = None) -> dict:
        """Free-phase predictions: ``dict(accuracy, loss, pred, steps, converged)``."""
        self._prepare(tissue)
        bs = batch_size or max(int(self.batch_size), 64)
        preds, steps, conv, costs = [], [], [], []
        for lo in range(0, len(x), bs):
            xb, yb = x[lo:lo + bs], y[lo:lo + bs]
            res = engine.settle(tissue, inputs=xb, target=self.targets(tissue, yb), field=self.field)
            preds.append(self.predict(tissue, res.state))
            steps.append(res.steps)
            conv.append(res.converged)
            costs.append(res.cost)
        pred = np.concatenate(preds)
        return {"accuracy": float(np.mean(pred == np.asarray(y))), "loss": float(np.mean(np.concatenate(costs))),
                "pred": pred, "steps": np.concatenate(steps), "converged": np.concatenate(conv)}

    def fit_epoch(self, tissue, engine: XYSettler, x, y, epoch: int = 0, progress: bool = False,
                  epochs: int | None = None) -> dict:
        """One pass over ``(x, y)`` in a seeded random order: ``dict(loss, accuracy, seconds)``."""
        self._prepare(tissue)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(x))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(x), desc=f"epoch {epoch}", unit="ex", leave=False)
        loss = correct = 0.0
        t0 = time.perf_counter()
        for lo in range(0, len(x), int(self.batch_size)):
            idx = order[lo:lo + int(self.batch_size)]
            rep = self.train_step(tissue, engine, x[idx], y[idx], index=idx)
            loss += rep.loss * len(idx)
            correct += rep.correct
            if bar is not None:
                bar.update(len(idx))
                bar.set_postfix(loss=f"{loss / (lo + len(idx)):.3f}", acc=f"{correct / (lo + len(idx)):.3f}")
        if bar is not None:
            bar.close()
        return {"loss": loss / len(x), "accuracy": correct / len(x), "seconds": time.perf_counter() - t0}
