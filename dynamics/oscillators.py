"""Limit-cycle tissue: Stuart-Landau oscillators and their phase reduction on the synapse table.

Two models share one wiring (a :class:`Network`: the tissue's padded table,
optionally with complex weights ``C_ij = W_ij exp(i alpha_ij)``)::

    StuartLandau   dz_i     = [(mu_i + i omega_i - |z_i|^2) z_i + K sum_j C_ij z_j
                               + F_i exp(i (Omega t + psi_i))] dt + sigma (dW1 + i dW2)
    Kuramoto       dtheta_i = [omega_i + K sum_j W_ij sin(theta_j - theta_i + alpha_ij)
                               + F_i sin(Omega t + psi_i - theta_i)] dt + sigma dW

With ``omega = 0``, a Hermitian ``C`` and a static drive (``Omega = 0``) the
phase model is the gradient flow of the XY energy (:func:`xy_energy`)::

    E = -1/2 K sum_ij W_ij cos(theta_i - theta_j - alpha_ij) - sum_i F_i cos(theta_i - psi_i)

:class:`Integrator` runs batches of trials with fixed ``dt``: classical RK4
(deterministic), stochastic Heun (predictor-corrector; strong order 1 for this
additive noise, order 2 without noise) or Euler(-Maruyama). Every parameter
may vary per neuron and the coupling ``K`` and drive frequency ``Omega`` per
trial, so one batch sweeps a coupling or a detuning.

Noise is a counter-based hash over a fine grid of ``dt / substeps``: the
increment of a step is the sum of its sub-steps' increments, so runs with
``dt`` and ``dt / 2`` (and ``substeps`` doubled for the first) follow the same
Brownian path, and a run resumed at ``start_step`` continues the stream. Time
is ``t = step * dt`` with the global step counter.

Clamped inputs (``tissue.clamped`` and alive) are *pacemakers*: they turn at
their own ``omega_i`` (``omega_i = 0`` holds them still) with their initial
amplitude, deaf to coupling, drive and noise. Dead voxels never move (their
Stuart-Landau state is 0).

Internally states are ``(N, B)``; public arrays are trial-major ``(B, N)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import osc_kernels as OK
from .langevin import SimulationDiverged

MODELS = ("stuart_landau", "kuramoto")
METHODS = ("auto", "rk4", "heun", "euler")
_SCHEMES = {"rk4": OK.RK4, "heun": OK.HEUN, "euler": OK.EULER}


# ------------------------------------------------------------------ network
class Network:
    """The wiring an oscillator integrator reads: a compact padded neighbour table.

    Parameters
    ----------
    nbr : int array (N, K)
        Presynaptic neuron of each slot (``-1`` in empty slots; rows compact).
    w : array (N, K), real or complex
        Weights ``W_ij``; a complex table is the coupling ``C_ij = W_ij exp(i alpha_ij)``
        (phase lags; Hermitian, ``C_ji = conj(C_ij)``, for an energy to exist).
    deg : int array (N,), optional
        Synapses per row (counted from ``nbr`` when omitted).
    alive : bool array (N,), optional
        Living neurons (default all); dead ones never move.
    clamped : bool array (N,), optional
        Clamped neurons; the living ones are pacemakers (see the module notes).
    lattice : tissue.Lattice, optional
        Gives records their ``(x, y, z)`` dims.
    """

    def __init__(self, nbr, w, deg=None, alive=None, clamped=None, lattice=None):
        self.nbr = np.ascontiguousarray(nbr, dtype=np.int32)
        w = np.asarray(w)
        if self.nbr.ndim != 2 or w.shape != self.nbr.shape:
            raise ValueError(f"nbr and w must be (N, K) arrays of one shape, got {self.nbr.shape} and {w.shape}")
        n = self.nbr.shape[0]
        self.deg = (np.ascontiguousarray(deg, dtype=np.int32) if deg is not None
                    else (self.nbr >= 0).sum(axis=1).astype(np.int32))
        if self.deg.shape != (n,):
            raise ValueError(f"deg must have shape ({n},), got {self.deg.shape}")
        occ = np.arange(self.nbr.shape[1])[None, :] < self.deg[:, None]
        if np.any(self.nbr[occ] < 0) or np.any(self.nbr[occ] >= n):
            raise ValueError("rows must be compact: slots 0 .. deg-1 hold neurons in [0, N)")
        self.cw = np.ascontiguousarray(np.where(occ, w.real, 0.0), dtype=np.float64)
        if np.iscomplexobj(w):
            self.sw = np.ascontiguousarray(np.where(occ, w.imag, 0.0), dtype=np.float64)
        else:
            self.sw = np.zeros((1, 1))
        self.has_lag = bool(np.iscomplexobj(w) and np.any(self.sw != 0))
        if not self.has_lag:
            self.sw = np.zeros((1, 1))
        if not (np.all(np.isfinite(self.cw)) and np.all(np.isfinite(self.sw))):
            raise ValueError("weights contain NaN or inf")
        self.alive = np.ones(n, bool) if alive is None else np.asarray(alive, bool).copy()
        self.clamped = ~self.alive if clamped is None else (np.asarray(clamped, bool) | ~self.alive)
        if self.alive.shape != (n,) or self.clamped.shape != (n,):
            raise ValueError(f"alive and clamped must have shape ({n},)")
        self.lattice = lattice
        if lattice is not None and lattice.size != n:
            raise ValueError(f"lattice has {lattice.size} voxels for a table of {n} rows")

    # ------------------------------------------------------------ builders
    @classmethod
    def from_synapses(cls, syn, weights=None, alive=None, clamped=None, lattice=None) -> "Network":
        """From a :class:`tissue.wiring.Synapses` table; ``weights`` (N, K), real or
        complex, replaces ``syn.w`` (e.g. a complex Hebbian coupling on the same slots)."""
        w = syn.w if weights is None else weights
        return cls(syn.nbr, w, syn.deg, alive, clamped, lattice)

    @classmethod
    def from_tissue(cls, tissue, weights=None) -> "Network":
        """The tissue's synapses, living mask, clamped inputs and lattice."""
        return cls.from_synapses(tissue.syn, weights, tissue.alive, tissue.clamped, tissue.lattice)

    @classmethod
    def complete(cls, n: int, weight: float | None = None) -> "Network":
        """All-to-all coupling of ``n`` neurons with weight ``weight`` (default ``1 / n``)."""
        from tissue.wiring import Synapses

        u, v = np.triu_indices(n, k=1)
        w = np.full(len(u), 1.0 / n if weight is None else float(weight))
        return cls.from_synapses(Synapses.from_edges(n, u, v, w, dtype=np.float64))

    @staticmethod
    def coerce(obj) -> "Network":
        """A :class:`Network` from a Network, a Tissue, a Synapses table or ``(nbr, w[, deg])``."""
        if isinstance(obj, Network):
            return obj
        if hasattr(obj, "syn") and hasattr(obj, "clamped"):
            return Network.from_tissue(obj)
        if hasattr(obj, "nbr") and hasattr(obj, "w"):
            return Network.from_synapses(obj)
        if isinstance(obj, tuple) and len(obj) in (2, 3):
            return Network(*obj)
        raise TypeError(f"expected a Network, Tissue, Synapses or (nbr, w[, deg]), got {type(obj).__name__}")

    # ------------------------------------------------------------ properties
    @property
    def n(self) -> int:
        return self.nbr.shape[0]

    @property
    def mode(self) -> np.ndarray:
        """Per neuron: 0 free, 1 pacemaker (clamped, alive), 2 frozen (dead)."""
        m = np.zeros(self.n, np.uint8)
        m[self.clamped] = OK.PACEMAKER
        m[~self.alive] = OK.FROZEN
        return m

    @property
    def weights(self) -> np.ndarray:
        """The coupling table (N, K): real ``W`` or complex ``C``."""
        return self.cw + 1j * self.sw if self.has_lag else self.cw

    def dense(self) -> np.ndarray:
        """The dense ``(N, N)`` coupling (complex when lagged); for tests and small nets."""
        c = np.zeros((self.n, self.n), complex if self.has_lag else float)
        i, k = np.nonzero(np.arange(self.nbr.shape[1])[None, :] < self.deg[:, None])
        np.add.at(c, (i, self.nbr[i, k]), self.weights[i, k])
        return c


# ------------------------------------------------------------------- models
@dataclass
class Drive:
    """A periodic drive ``F_i exp(i (Omega t + psi_i))`` (``F_i sin(Omega t + psi_i - theta_i)``
    in the phase model).

    Parameters
    ----------
    amplitude : float, (N,) or (B, N)
        ``F_i``; complex values are allowed (the drive is ``F_i exp(i psi_i)``
        either way, so a sum of fields of different phases is one complex ``F``).
    frequency : float or (B,)
        ``Omega`` (per trial: one batch can sweep the detuning).
    phase : float, (N,) or (B, N)
        ``psi_i``.
    region : int array, optional
        Only these neurons are driven (``F = 0`` elsewhere), e.g. an input face.
    """

    amplitude: object = 1.0
    frequency: object = 1.0
    phase: object = 0.0
    region: object = None


@dataclass
class StuartLandau:
    """``dz/dt = (mu + i omega - |z|^2) z + K sum_j C_ij z_j + drive``.

    ``mu`` and ``omega``: float, (N,) or (B, N); ``coupling`` ``K``: float or (B,).
    The uncoupled limit cycle is ``|z| = sqrt(mu)`` at angular frequency ``omega``.
    """

    mu: object = 1.0
    omega: object = 1.0
    coupling: object = 0.0
    drive: Drive | None = None
    name = "stuart_landau"


@dataclass
class Kuramoto:
    """``dtheta/dt = omega + K sum_j W_ij sin(theta_j - theta_i + alpha_ij) + F sin(Omega t + psi - theta)``.

    ``omega``: float, (N,) or (B, N); ``coupling`` ``K``: float or (B,). With
    ``omega = 0`` and a static drive this is the XY gradient flow.
    """

    omega: object = 0.0
    coupling: object = 1.0
    drive: Drive | None = None
    name = "kuramoto"


# --------------------------------------------------------- parameter arrays
def _per_neuron(x, n, nb, name, dtype=np.float64):
    """``(N, 1)`` or ``(N, B)`` arrays (C order) and the trial flag 0/1."""
    a = np.asarray(x)
    if np.iscomplexobj(a) and dtype is np.float64:
        raise ValueError(f"{name} must be real")
    a = a.astype(dtype)
    if a.ndim == 0:
        out, flag = np.full((n, 1), a[()], dtype=dtype), 0
    elif a.ndim == 1 and a.shape[0] == n:
        out, flag = a[:, None].copy(), 0
    elif a.ndim == 2 and a.shape == (nb, n):
        out, flag = np.ascontiguousarray(a.T), 1
    else:
        raise ValueError(f"{name} must be a number, ({n},) or (trials, neurons) = ({nb}, {n}), got shape {a.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or inf")
    return out, flag


def _per_trial(x, nb, name):
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        out, flag = np.full(1, float(a)), 0
    elif a.shape == (nb,):
        out, flag = a.copy(), 1
    else:
        raise ValueError(f"{name} must be a number or ({nb},) (one per trial), got shape {a.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or inf")
    return out, flag


def _trials_of(x, n, per_neuron: bool):
    """The trial count a parameter implies (None when it has no trial axis)."""
    a = np.asarray(x)
    if per_neuron:
        return a.shape[0] if a.ndim == 2 else None
    return a.shape[0] if a.ndim == 1 else None


def _model_trials(model, n):
    found = []
    for attr, per_neuron in (("mu", True), ("omega", True), ("coupling", False)):
        if hasattr(model, attr):
            found.append(_trials_of(getattr(model, attr), n, per_neuron))
    d = model.drive
    if d is not None:
        found += [_trials_of(d.amplitude, n, True), _trials_of(d.phase, n, True),
                  _trials_of(d.frequency, n, False)]
    return [f for f in found if f is not None]


def _complex_field(amplitude, phase, n, nb, region=None, name="drive"):
    """``D = F exp(i psi)`` as ``(re, im)`` arrays ``(N, 1 | B)`` and the trial flag."""
    f, fb = _per_neuron(amplitude, n, nb, f"{name} amplitude", np.complex128)
    p, pb = _per_neuron(phase, n, nb, f"{name} phase")
    d = f * np.exp(1j * p)  # broadcasts (N, 1) against (N, B)
    if region is not None:
        keep = np.zeros(n, bool)
        keep[np.asarray(region, dtype=np.int64)] = True
        d = np.where(keep[:, None], d, 0.0)
    return np.ascontiguousarray(d.real), np.ascontiguousarray(d.imag), fb | pb


def _drive_arrays(drive, n, nb):
    if drive is None:
        z = np.zeros((1, 1))
        return z, z, 0, False, np.zeros(1), 0
    dr, di, flag = _complex_field(drive.amplitude, drive.phase, n, nb, drive.region)
    om, ob = _per_trial(drive.frequency, nb, "drive frequency")
    return dr, di, flag, True, om, ob


def _model_arrays(model, net, nb):
    """Kernel arguments of the model's parameters (after the network's)."""
    n = net.n
    om, om_b = _per_neuron(model.omega, n, nb, "omega")
    kc, kc_b = _per_trial(model.coupling, nb, "coupling")
    dr, di, d_b, drive, freq, e_b = _drive_arrays(model.drive, n, nb)
    if model.name == "stuart_landau":
        mu, mu_b = _per_neuron(model.mu, n, nb, "mu")
        return (mu, mu_b, om, om_b, kc, kc_b, dr, di, d_b, drive, freq, e_b)
    return (om, om_b, kc, kc_b, dr, di, d_b, drive, freq, e_b)


def _check_model(model):
    if getattr(model, "name", None) not in MODELS:
        raise TypeError(f"model must be a StuartLandau or a Kuramoto, got {type(model).__name__}")


def _batch(model, net, init, n_trials):
    sizes = _model_trials(model, net.n)
    if init is not None:
        a = np.asarray(init)
        if a.ndim == 2:
            sizes.append(a.shape[0])
    if n_trials is not None:
        sizes.append(int(n_trials))
    if len(set(sizes)) > 1:
        raise ValueError("inconsistent numbers of trials among init, n_trials and the parameters: "
                         f"{sorted(set(sizes))}")
    nb = sizes[0] if sizes else 1
    if nb < 1:
        raise ValueError(f"the number of trials must be >= 1, got {nb}")
    return nb


def initial_state(model, network, n_trials: int | None = None, init=None, seed: int = 0) -> np.ndarray:
    """The internal ``(N, B)`` state: ``init`` (``(B, N)`` or ``(N,)``; complex ``z``
    for Stuart-Landau, phases for Kuramoto) or, by default, phases uniform on
    ``[0, 2 pi)`` from ``numpy.random.default_rng(seed)`` (unit amplitude).
    Dead neurons are set to 0."""
    _check_model(model)
    net = Network.coerce(network)
    nb = _batch(model, net, init, n_trials)
    n = net.n
    sl = model.name == "stuart_landau"
    if init is None:
        th = np.random.default_rng(seed).uniform(0.0, 2 * np.pi, (nb, n))
        a = np.exp(1j * th) if sl else th
    else:
        a = np.asarray(init)
        if not sl and np.iscomplexobj(a):
            raise ValueError("Kuramoto init must be real phases")
        if a.ndim == 1:
            a = np.broadcast_to(a, (nb, n))
        if a.shape != (nb, n):
            raise ValueError(f"init must have shape ({nb}, {n}) or ({n},), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("init contains NaN or inf")
    s = np.array(np.asarray(a, complex if sl else float).T, order="C", copy=True)
    s[~net.alive] = 0
    return s


# ------------------------------------------------------------------ results
@dataclass
class OscResult:
    """The outcome of :meth:`Integrator.run`.

    ``state`` is the final ``(B, N)`` state: complex ``z`` (Stuart-Landau) or
    the unwrapped phases ``theta`` (Kuramoto). Frames (every ``record_every``
    steps, and the final state) hold ``amplitude`` and ``phase`` (wrapped to
    ``(-pi, pi]``) as ``(T, B, R)`` arrays over the recorded ``neurons``.
    """

    model: str
    state: np.ndarray
    step_start: int
    step_end: int
    dt: float
    time: np.ndarray | None = None
    step: np.ndarray | None = None
    amplitude: np.ndarray | None = None
    phase: np.ndarray | None = None
    neurons: np.ndarray | None = None
    lattice: object = field(repr=False, default=None)
    alive: np.ndarray | None = field(repr=False, default=None)
    attrs: dict = field(default_factory=dict)

    @property
    def z(self) -> np.ndarray:
        """Final complex state (``exp(i theta)`` on living neurons for Kuramoto)."""
        if self.model == "stuart_landau":
            return self.state
        return np.where(self.alive[None, :], np.exp(1j * self.state), 0)

    @property
    def theta(self) -> np.ndarray:
        """Final phases (unwrapped for Kuramoto, ``angle(z)`` for Stuart-Landau)."""
        return self.state if self.model == "kuramoto" else np.angle(self.state)

    def to_dataset(self):
        """The frames as an ``xarray.Dataset``: ``amplitude`` and ``phase`` with dims
        ``(time, trial, x, y, z)`` when every neuron of a lattice was recorded,
        else ``(time, trial, neuron)``."""
        import xarray as xr

        if self.amplitude is None:
            raise ValueError("nothing was recorded: run with record_every")
        t, nb, r = self.amplitude.shape
        coords = {"time": ("time", self.time, {"units": "1", "long_name": "model time step * dt"}),
                  "step": ("time", self.step), "trial": np.arange(nb)}
        lat = self.lattice
        full = lat is not None and r == lat.size and np.array_equal(self.neurons, np.arange(r))
        if full:
            dims = ("time", "trial", "x", "y", "z")
            shape = (t, nb) + tuple(lat.shape)
            amp, ph = self.amplitude.reshape(shape), self.phase.reshape(shape)
            coords.update({a: np.arange(m) for a, m in zip("xyz", lat.shape)})
            static = {"alive": (("x", "y", "z"), lat.grid(self.alive).astype(np.uint8))}
        else:
            dims = ("time", "trial", "neuron")
            amp, ph = self.amplitude, self.phase
            coords["neuron"] = self.neurons
            static = {"alive": ("neuron", self.alive[self.neurons].astype(np.uint8))}
            if lat is not None:
                c = lat.coords(self.neurons)
                coords.update({a: ("neuron", c[:, k]) for k, a in enumerate("xyz")})
        ds = xr.Dataset(
            {"amplitude": (dims, amp, {"long_name": "oscillation amplitude |z|", "units": "1"}),
             "phase": (dims, ph, {"long_name": "phase arg z, wrapped to (-pi, pi]", "units": "rad"}),
             **static},
            coords=coords)
        ds.attrs.update({k: v for k, v in self.attrs.items() if v is not None})
        return ds


# --------------------------------------------------------------- integrator
@dataclass
class Integrator:
    """Fixed-step integrator of oscillator networks over a batch of trials.

    Parameters
    ----------
    dt : float
        Time step.
    method : {"auto", "rk4", "heun", "euler"}
        ``auto`` is RK4 without noise, stochastic Heun with noise. RK4 is
        deterministic only.
    noise : float
        ``sigma``: additive white noise, ``sigma dW`` on each phase (Kuramoto) or
        on the real and imaginary parts of ``z`` (Stuart-Landau).
    seed : int
        Seeds the counter-based noise stream (and the default initial phases).
    substeps : int
        The Brownian path lives on the grid ``dt / substeps``: a step's
        increment is the sum of ``substeps`` fine increments. Integrating with
        ``dt / 2`` and ``substeps / 2`` follows the same path.
    blowup : float
        ``max |z|`` beyond which a Stuart-Landau run is declared diverged.
    """

    dt: float = 0.01
    method: str = "auto"
    noise: float = 0.0
    seed: int = 0
    substeps: int = 1
    blowup: float = 1e6

    def __post_init__(self):
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be a finite number > 0, got {self.dt!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not (isinstance(self.noise, (int, float)) and math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"noise must be a finite number >= 0, got {self.noise!r}")
        if self.method == "rk4" and self.noise > 0:
            raise ValueError("RK4 is for the deterministic case: use method 'heun' (or 'auto') with noise")
        if int(self.substeps) != self.substeps or self.substeps < 1:
            raise ValueError(f"substeps must be an integer >= 1, got {self.substeps!r}")
        if not self.blowup > 0:
            raise ValueError(f"blowup must be > 0, got {self.blowup!r}")

    @property
    def scheme(self) -> str:
        """The method actually used."""
        if self.method == "auto":
            return "rk4" if self.noise == 0 else "heun"
        return self.method

    # ----------------------------------------------------------------- run
    def run(self, model, network, steps: int, init=None, n_trials: int | None = None,
            record_every: int | None = None, neurons=None, start_step: int = 0,
            on_frame=None, keep_frames: bool = True, progress: bool = False) -> OscResult:
        """Integrate ``steps`` steps of ``model`` on ``network``.

        Parameters
        ----------
        model : StuartLandau or Kuramoto
        network : Network, Tissue, Synapses or (nbr, w[, deg])
        steps : int
        init : array (B, N) or (N,), optional
            Complex ``z`` (Stuart-Landau) or phases (Kuramoto); see :func:`initial_state`.
        n_trials : int, optional
            Batch size when neither ``init`` nor a parameter fixes it.
        record_every : int, optional
            Keep a frame (amplitude, phase) every so many steps, the initial and
            the final state included.
        neurons : int array, optional
            Record only these neurons (default all).
        start_step : int
            Global step counter at the start: the time ``t = step * dt`` of the
            drive and the noise stream continue from it.
        on_frame : callable, optional
            ``on_frame(step, time, amplitude (B, R), phase (B, R))`` at every frame
            (e.g. to stream to zarr); with ``keep_frames=False`` frames are not kept.

        Raises
        ------
        SimulationDiverged
            When the state becomes non-finite or ``|z| > blowup``.
        """
        _check_model(model)
        net = Network.coerce(network)
        steps = int(steps)
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        start_step = int(start_step)
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        s = initial_state(model, net, n_trials, init, self.seed)
        n, nb = s.shape
        sl = model.name == "stuart_landau"
        params = _model_arrays(model, net, nb)
        scheme = _SCHEMES[self.scheme]
        m = int(self.substeps)
        sig = float(self.noise)
        if sig > 0 and scheme == OK.RK4:
            raise ValueError("RK4 is deterministic: use method 'heun' or 'auto' with noise")
        net_args = (net.nbr, net.deg, net.cw, net.sw, net.has_lag, net.mode)
        if sl:
            yr = np.ascontiguousarray(s.real)
            yi = np.ascontiguousarray(s.imag)
            scratch = [np.zeros_like(yr) for _ in range(6)]
            dw = np.zeros((2, n, nb) if sig > 0 else (2, 1, 1))

            def advance(step0, k):
                OK.sl_run(*net_args, *params, yr, yi, *scratch, self.dt, scheme, sig, self.seed, m, dw,
                          step0, k)

            def frame():
                return np.hypot(yr, yi), np.arctan2(yi, yr)

            def internal():
                return yr, yi
        else:
            y = np.ascontiguousarray(s)
            scratch = [np.zeros_like(y) for _ in range(5)]
            dw = np.zeros((1, n, nb) if sig > 0 else (1, 1, 1))
            alive = net.alive.astype(np.float64)[:, None]

            def advance(step0, k):
                OK.phase_run(*net_args, *params, y, *scratch, self.dt, scheme, sig, self.seed, m, dw, step0, k)

            def frame():
                return np.broadcast_to(alive, y.shape), np.angle(np.exp(1j * y))

            def internal():
                return y, np.zeros((1, 1))

        sel = np.arange(n) if neurons is None else np.asarray(neurons, dtype=np.int64)
        rec = record_every is not None
        every = int(record_every) if rec else max(1, min(steps, 1024))
        if every < 1:
            raise ValueError(f"record_every must be >= 1, got {record_every!r}")
        frames_t, frames_a, frames_p = [], [], []
        nch = OK.n_chunks(n)
        part = np.zeros((nch, nb))

        def check(step):
            u, v = internal()
            OK.finite_max_abs2(u, v, part)
            top = part.max(axis=0)
            bad = ~np.isfinite(top) | (top > self.blowup**2 if sl else False)
            if bad.any():
                b = int(np.flatnonzero(bad)[0])
                raise SimulationDiverged(
                    f"oscillators diverged at step {step} (trial {b}: max |state|^2 = {top[b]:.3g}, "
                    f"blowup {self.blowup:g}); lower dt or the coupling", self._public(u, v, sl), step)

        def record(step):
            a, p = frame()
            a = a[sel].T.copy()
            p = p[sel].T.copy()
            if on_frame is not None:
                on_frame(step, step * self.dt, a, p)
            if keep_frames:
                frames_t.append(step)
                frames_a.append(a)
                frames_p.append(p)

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=model.name, unit="step", leave=False)
        try:
            t = start_step
            if rec:
                record(t)
            done = 0
            while done < steps:
                k = min(every, steps - done)
                advance(t, k)
                t += k
                done += k
                check(t)
                if rec:
                    record(t)
                if bar is not None:
                    bar.update(k)
        finally:
            if bar is not None:
                bar.close()
        u, v = internal()
        res = OscResult(model=model.name, state=self._public(u, v, sl), step_start=start_step,
                        step_end=start_step + steps, dt=float(self.dt), neurons=sel, lattice=net.lattice,
                        alive=net.alive.copy(),
                        attrs={"model": model.name, "dt": float(self.dt), "method": self.scheme,
                               "noise": float(self.noise), "noise_seed": int(self.seed),
                               "substeps": int(self.substeps), "start_step": start_step})
        if rec and keep_frames:
            res.step = np.asarray(frames_t, dtype=np.int64)
            res.time = res.step * float(self.dt)
            res.amplitude = np.stack(frames_a)
            res.phase = np.stack(frames_p)
        return res

    @staticmethod
    def _public(u, v, sl):
        return (u + 1j * v).T.copy() if sl else u.T.copy()


# ------------------------------------------------------------- evaluations
def drift(model, network, state, t: float = 0.0) -> np.ndarray:
    """The deterministic drift ``dz/dt`` (complex) or ``dtheta/dt`` of a ``(B, N)`` state at time ``t``
    (pacemakers: ``i omega z`` / ``omega``; dead neurons: 0)."""
    _check_model(model)
    net = Network.coerce(network)
    s = initial_state(model, net, None, np.atleast_2d(state))
    n, nb = s.shape
    params = _model_arrays(model, net, nb)
    freq, e_b = params[-2], params[-1]
    ec, es = np.cos(freq * t), np.sin(freq * t)
    head = params[:-2]
    net_args = (net.nbr, net.deg, net.cw, net.sw, net.has_lag, net.mode)
    dummy = np.zeros((1, 1))
    if model.name == "stuart_landau":
        ur, ui = np.ascontiguousarray(s.real), np.ascontiguousarray(s.imag)
        zr, zi = np.zeros_like(ur), np.zeros_like(ur)
        outr, outi = np.empty_like(ur), np.empty_like(ur)
        OK.sl_stage(*net_args, *head, ec, es, e_b, ur, ui, zr, zi, outr, outi, zr, zi,
                    1.0, 0.0, 1.0, True, True, 0.0, dummy, dummy)
        return (outr + 1j * outi).T
    c, sn = np.cos(s), np.sin(s)
    z, out = np.zeros_like(s), np.empty_like(s)
    OK.phase_stage(*net_args, *head, ec, es, e_b, c, sn, z, out, z, 1.0, 0.0, 1.0, True, True, 0.0, dummy)
    return out.T


def xy_energy(network, theta, coupling=1.0, field=0.0, psi=0.0) -> np.ndarray:
    """XY energy per trial of ``(B, N)`` phases (float64, living neurons)::

        E = -1/2 K sum_i sum_j W_ij cos(theta_j - theta_i + alpha_ij) - sum_i F_i cos(theta_i - psi_i)

    ``coupling`` ``K`` float or (B,); ``field`` ``F`` (real or complex) and ``psi``: float, (N,) or
    (B, N); the field term is ``-Re(conj(F exp(i psi)) exp(i theta))``.
    For a Hermitian coupling its negative gradient is the :class:`Kuramoto` drift with
    ``omega = 0`` and ``Drive(field, 0, psi)``.
    """
    net = Network.coerce(network)
    th = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    nb, n = th.shape
    if n != net.n:
        raise ValueError(f"theta must have {net.n} columns, got {n}")
    kc, kc_b = _per_trial(coupling, nb, "coupling")
    dr, di, d_b = _complex_field(field, psi, n, nb, name="field")
    epart = np.zeros((OK.n_chunks(n), nb))
    return OK.xy_energy(net.nbr, net.deg, net.cw, net.sw, net.has_lag, net.alive, np.ascontiguousarray(th.T),
                        kc, kc_b, dr, di, d_b, epart)


def run(model, network, steps: int, dt: float = 0.01, **kwargs) -> OscResult:
    """Shortcut: ``Integrator(dt, method, noise, seed, substeps, blowup).run(model, network, steps, ...)``."""
    keys = ("method", "noise", "seed", "substeps", "blowup")
    integ = Integrator(dt=dt, **{k: kwargs.pop(k) for k in keys if k in kwargs})
    return integ.run(model, network, steps, **kwargs)
