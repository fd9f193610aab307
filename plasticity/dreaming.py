"""Dreaming: clamp the answer, free the question, and sample the tissue's own energy.

A trained tissue reads an image on its input face and answers with the group of
output voxels that fires. Dreaming turns the roles round: the output region is
clamped to the target rates of a class (``target_on`` on the class's group,
``target_off`` elsewhere, as in training), the input region is set free, and the
whole free state ``(input, hidden)`` follows overdamped Langevin dynamics on the
tissue's own energy at temperature ``T``::

    ds = -dE/ds dt + sqrt(2 T dt) xi

(:class:`dynamics.Langevin`, reflected into the box ``[0, 1]`` for the hard
sigmoid). Its stationary law is ``p(s_free | y) ~ exp(-E(s_free, y) / T)``: the
input face of a sample is what the tissue "believes" a class looks like.
Nothing is unrolled or back-propagated; the sampler only integrates the forces.

An annealing schedule is a list of ``(T, steps)`` phases run in order on one
noise stream; several chains per class start from rest, from uniform noise, or
from a given state (e.g. the mean image).

A tissue trained only to classify has no reason to put probability on digits:
its energy constrains ``p(y | x)``, not ``p(x)``. :class:`GenerativeTrainer`
adds the missing term, the maximum-likelihood (Boltzmann machine) rule on the
same synapses::

    dW_ij ~ <rho_i rho_j>_data - <rho_i rho_j>_dream,   db_i ~ <rho_i>_data - <rho_i>_dream

with the data phase settled with image and label clamped and the dream phase
taken from persistent Langevin chains with the label clamped (persistent
contrastive divergence, Tieleman 2008). Like EqProp it is a contrast of the two
neurons' co-activity in two states, so it is local to each synapse; it can be
interleaved with EqProp steps so that the tissue keeps classifying.

Dreams are read back into images by :func:`face_to_images`, which averages the
voxels of each pixel's upsampled block (the inverse of ``studies.tasks.InputMap``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dynamics import Langevin
from tissue import HIDDEN, INPUT, Tissue

from .eqprop import EqProp, contrast
from .readout import one_hot_targets

INITS = ("rest", "random", "given")

__all__ = ["DreamResult", "GenerativeTrainer", "dream", "dream_view", "face_to_images", "parse_schedule",
           "role_view"]


# ------------------------------------------------------------------ views
def role_view(tissue, clamp) -> Tissue:
    """A tissue sharing ``tissue``'s synapse table and bias array (edits show through)
    whose clamped set is ``clamp`` (indices): those voxels get role ``INPUT``, every other
    living voxel ``HIDDEN``; output groups are kept in ``group`` for reference."""
    v = Tissue(tissue.lattice, tissue.syn, tissue.bias, tissue.activation, tissue.alive, tissue.seed, tissue.meta)
    if v.bias is not tissue.bias:   # pragma: no cover - Tissue keeps a contiguous array of the right dtype
        raise RuntimeError("role_view needs a contiguous bias array of the table's dtype")
    v.role[:] = HIDDEN
    v.role[np.asarray(clamp, dtype=np.int64)] = INPUT
    v.group = tissue.group.copy()
    return v


def dream_view(tissue) -> Tissue:
    """The tissue with its roles turned round: the output region clamped (role ``INPUT``),
    the input region free. Shares the weights and biases of ``tissue``.

    ``Langevin.settle(view, inputs=Y)`` then clamps ``Y`` (``(B, n_outputs)``, in
    ``tissue.region("output")`` order) on the output voxels.
    """
    out = tissue.region("output")
    if len(out) == 0:
        raise ValueError("dreaming needs an output region (tissue.set_output)")
    return role_view(tissue, out)


# ------------------------------------------------------------------ schedules
def parse_schedule(schedule) -> list[tuple[float, int]]:
    """``[(T, steps), ...]`` checked: ``T >= 0`` finite, ``steps >= 1`` integer.

    A single ``(T, steps)`` pair is accepted as a one-phase schedule.
    """
    if (isinstance(schedule, tuple) and len(schedule) == 2 and not isinstance(schedule[0], (tuple, list))):
        schedule = [schedule]
    out = []
    try:
        items = list(schedule)
    except TypeError:
        raise ValueError(f"schedule must be a list of (temperature, steps) pairs, got {schedule!r}") from None
    if not items:
        raise ValueError("schedule must hold at least one (temperature, steps) phase")
    for k, ph in enumerate(items):
        try:
            T, steps = ph
        except (TypeError, ValueError):
            raise ValueError(f"schedule[{k}] must be a (temperature, steps) pair, got {ph!r}") from None
        if not (isinstance(T, (int, float)) and math.isfinite(T) and T >= 0):
            raise ValueError(f"schedule[{k}] temperature must be a finite number >= 0, got {T!r}")
        if not (isinstance(steps, (int, np.integer)) and steps >= 1):
            raise ValueError(f"schedule[{k}] steps must be an integer >= 1, got {steps!r}")
        out.append((float(T), int(steps)))
    return out


# ------------------------------------------------------------------ sampling
@dataclass
class DreamResult:
    """Samples of a dream, trial-major: trial ``b`` dreams ``labels[b]`` in chain ``chains[b]``.

    Attributes
    ----------
    state : ndarray (S, B, N)
        The whole tissue's state at each of the ``S`` sample times (the last phase,
        every ``thin`` steps; the last sample is the end of the schedule).
    energy : ndarray (S, B)
        ``E(s)`` of each sample (the tissue's energy, clamped voxels included).
    labels, chains : ndarray (B,)
    phase_energy : ndarray (n_phases, B)
        Energy at the end of each phase of the schedule.
    schedule : list of (T, steps)
    step_end : int
        The global step counter at the end (continues the noise stream).
    """

    state: np.ndarray
    energy: np.ndarray
    labels: np.ndarray
    chains: np.ndarray
    phase_energy: np.ndarray
    schedule: list
    step_end: int
    clamp: np.ndarray = field(repr=False, default=None)   # (B, n_outputs) clamped output rates

    @property
    def final(self) -> np.ndarray:
        """The last sample of every trial, ``(B, N)``."""
        return self.state[-1]


def dream(tissue, labels, chains: int = 4, schedule=((0.01, 2000),), dt: float = 0.2, init="rest",
          target_on: float = 1.0, target_off: float = 0.0, samples: int = 1, thin: int = 100, seed: int = 0,
          start_step: int = 0, clamp=None, progress: bool = False) -> DreamResult:
    """Sample the free voxels of ``tissue`` with its output clamped to classes.

    Parameters
    ----------
    tissue : Tissue
        A tissue with an input and an output region (``set_input``/``set_output``);
        it is not modified (the sampler runs on :func:`dream_view`).
    labels : int or sequence of int
        Classes (output groups) to dream; each gets ``chains`` independent chains.
    chains : int
        Chains per class.
    schedule : list of (T, steps)
        Annealing phases run in order (``T`` the temperature, noise ``sqrt(2 T dt)``).
    dt : float
        Time step.
    init : {"rest", "random"} or array
        Start of every chain: rest (``s = 0``), uniform noise in [0, 1), or a
        state ``(N,)`` or ``(B, N)`` (e.g. the mean image on the input face).
    target_on, target_off : float
        Clamped rates of the class's output group and of the others (the training targets).
    samples, thin : int
        Keep ``samples`` states from the last phase, ``thin`` steps apart (the
        last one at its end); the last phase must have ``(samples - 1) * thin < steps``.
    seed : int
        Seeds the initial noise and the Langevin noise stream.
    start_step : int
        Global step of the noise stream at the start.
    clamp : array (B, n_outputs), optional
        Clamp these output rates instead of the one-hot class targets.
    progress : bool
        A tqdm bar over the phases.

    Returns
    -------
    DreamResult
    """
    sched = parse_schedule(schedule)
    labels = np.atleast_1d(np.asarray(labels)).astype(np.int64)
    if int(chains) < 1:
        raise ValueError(f"chains must be an integer >= 1, got {chains!r}")
    if int(samples) < 1 or int(thin) < 1:
        raise ValueError(f"samples and thin must be integers >= 1, got samples={samples!r}, thin={thin!r}")
    last_steps = sched[-1][1]
    if (int(samples) - 1) * int(thin) >= last_steps:
        raise ValueError(f"samples={samples} every thin={thin} steps do not fit the last phase "
                         f"({last_steps} steps)")
    lab = np.repeat(labels, int(chains))
    chain = np.tile(np.arange(int(chains)), len(labels))
    view = dream_view(tissue)
    if clamp is None:
        Y = one_hot_targets(lab, tissue, target_on, target_off)
    else:
        Y = np.atleast_2d(np.asarray(clamp, dtype=np.float64))
        if Y.shape != (len(lab), len(tissue.region("output"))):
            raise ValueError(f"clamp must have shape ({len(lab)}, {len(tissue.region('output'))}), got {Y.shape}")
    b, n = len(lab), tissue.n
    rng = np.random.default_rng(seed)
    if isinstance(init, str):
        if init not in INITS[:2]:
            raise ValueError(f"init must be one of {INITS[:2]} or an array, got {init!r}")
        s0 = np.zeros((b, n)) if init == "rest" else rng.random((b, n))
    else:
        s0 = np.broadcast_to(np.asarray(init, dtype=np.float64), (b, n)).copy()
    s0[:, tissue.region("output")] = Y
    t = int(start_step)
    state = s0
    phase_e = []
    kept, kept_e = [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(s for _, s in sched), desc="dream", unit="step", leave=False)
    try:
        for k, (T, steps) in enumerate(sched):
            eng = Langevin(dt=dt, temperature=T, tol=1e-12 if T > 0 else 1e-6, max_steps=steps, seed=seed)
            if k < len(sched) - 1:
                res = eng.settle(view, inputs=Y, init=state, steps=steps, start_step=t)
                state, t = res.state, res.step_end
                phase_e.append(res.energy)
            else:
                # the last phase in pieces, keeping a sample at the end of each piece
                cuts = [steps - (samples - 1 - j) * thin for j in range(samples)]
                done = 0
                for c in cuts:
                    res = eng.settle(view, inputs=Y, init=state, steps=c - done, start_step=t)
                    state, t, done = res.state, res.step_end, c
                    kept.append(state.copy())
                    kept_e.append(res.energy.copy())
                phase_e.append(res.energy)
            if bar is not None:
                bar.update(steps)
    finally:
        if bar is not None:
            bar.close()
    return DreamResult(state=np.stack(kept), energy=np.stack(kept_e), labels=lab, chains=chain,
                       phase_energy=np.stack(phase_e), schedule=sched, step_end=t, clamp=Y)


def face_to_images(states, region, source, n_pixels: int, off=None) -> np.ndarray:
    """Images ``(..., n_pixels)`` from tissue states ``(..., N)``: each pixel is the mean rate
    (clipped to [0, 1]) of the face voxels it feeds; ``off`` (bool per face voxel, the
    ``InputMap.off`` of an ON/OFF encoding) marks voxels read as ``1 - rate``.

    ``region`` (face voxels) and ``source`` (pixel of each face voxel, ``-1`` for
    fill) are those of ``studies.tasks.InputMap``; with upsampling ``u`` a pixel
    averages its ``u x u`` block. Raises ``ValueError`` if a pixel has no voxel.
    """
    s = np.asarray(states, dtype=np.float64)
    region = np.asarray(region, dtype=np.int64)
    source = np.asarray(source, dtype=np.int64)
    ok = source >= 0
    counts = np.bincount(source[ok], minlength=n_pixels)
    if len(counts) != n_pixels or np.any(counts == 0):
        raise ValueError("every pixel needs at least one face voxel (source must cover 0..n_pixels-1)")
    onehot = np.zeros((len(region), n_pixels))
    onehot[np.flatnonzero(ok), source[ok]] = 1.0 / counts[source[ok]]
    face = np.clip(s[..., region], 0.0, 1.0)
    if off is not None:
        face = np.where(np.asarray(off, bool), 1.0 - face, face)
    return face @ onehot


# ------------------------------------------------------------------ generative learning
@dataclass
class GenerativeTrainer:
    """Maximum-likelihood (Boltzmann) learning of ``p(x | y) ~ exp(-E / T)`` on the same synapses.

    Per mini-batch: the *data* phase settles the hidden voxels at ``T = 0`` with the
    image and the label clamped (a mean-field estimate of the clamped statistics);
    the *dream* phase runs ``steps`` Langevin steps at ``temperature`` from
    persistent chains (one per example slot) with only the label clamped. Every
    synapse then moves by ``lr * (<rho_i rho_j>_data - <rho_i rho_j>_dream)``
    and every free bias by ``lr * (<rho_i>_data - <rho_i>_dream)`` (Adam step sizes per
    synapse, as :class:`EqProp`), the gradient of the log-likelihood of the
    Gibbs law (up to the factor ``1 / T``).

    Parameters
    ----------
    lr : float
        Learning rate (Adam).
    temperature : float
        Temperature of the dream chains (the temperature the model is fitted at).
    steps : int
        Langevin steps of the dream phase per mini-batch.
    dt : float
        Time step of the dream chains.
    settle_steps : int
        Step cap of the data phase (``T = 0``).
    batch_size : int
    seed : int
        Seeds the example order and the noise.
    """

    lr: float = 3e-4
    temperature: float = 0.02
    steps: int = 20
    dt: float = 0.2
    settle_steps: int = 300
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        for key, val, ok, allowed in (("lr", self.lr, lambda v: v >= 0, ">= 0"),
                                      ("temperature", self.temperature, lambda v: v > 0, "> 0"),
                                      ("dt", self.dt, lambda v: v > 0, "> 0")):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and ok(val)):
                raise ValueError(f"GenerativeTrainer {key} must be a finite number {allowed}, got {val!r}")
        for key in ("steps", "settle_steps", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"GenerativeTrainer {key} must be an integer >= 1, got {getattr(self, key)!r}")
        self._opt = EqProp(optimizer="adam", lr=self.lr, beta=1.0)
        self._views = None
        self._chains = None
        self._t = 0

    def _setup(self, tissue):
        if self._views is None or self._views[0] is not tissue:
            inp, out = tissue.region("input"), tissue.region("output")
            data = role_view(tissue, np.union1d(inp, out))
            dview = dream_view(tissue)
            self._views = (tissue, data, dview, inp, out)
            self._chains = None
            self._opt._prepare(dview)
        return self._views[1:]

    def train_step(self, tissue, x, y, clamp=None) -> dict:
        """One mini-batch: images ``x`` (``(B, n_inputs)``, clamped values) and labels ``y``;
        ``clamp`` (``(B, n_outputs)``, optional) replaces the one-hot output targets (e.g. the
        class-and-style codes of :func:`plasticity.readout.style_targets`). Returns ``dict(data_energy, dream_energy)`` (batch means)."""
        data, dview, inp, out = self._setup(tissue)
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        y = np.asarray(y).astype(np.int64)
        b = len(y)
        if clamp is None:
            Y = one_hot_targets(y, tissue)
        else:
            Y = np.atleast_2d(np.asarray(clamp, dtype=np.float64))
            if Y.shape != (b, len(out)):
                raise ValueError(f"clamp must have shape ({b}, {len(out)}), got {Y.shape}")
        full = np.zeros((b, tissue.n))
        full[:, inp] = x
        full[:, out] = Y
        clamp = data.region("input")
        pos = Langevin(dt=0.5, temperature=0.0, tol=1e-3, max_steps=self.settle_steps).settle(
            data, inputs=full[:, clamp])
        if self._chains is None or self._chains.shape[0] < b:
            self._chains = pos.state.copy()
        init = self._chains[:b].copy()
        init[:, out] = Y
        eng = Langevin(dt=self.dt, temperature=self.temperature, max_steps=self.steps, seed=self.seed)
        neg = eng.settle(dview, inputs=Y, init=init, steps=self.steps, start_step=self._t)
        self._t = neg.step_end
        self._chains[:b] = neg.state
        g = np.empty(tissue.syn.w.shape, dtype=np.float64)
        contrast(tissue.syn.nbr, tissue.syn.deg, np.ascontiguousarray(pos.rates.T),
                 np.ascontiguousarray(neg.rates.T), g)
        gb = (pos.rates.astype(np.float64) - neg.rates.astype(np.float64)).mean(axis=0)
        gb = np.where((dview.role != INPUT) & tissue.alive, gb, 0.0)
        self._opt.apply(dview, g, gb)
        return {"data_energy": float(pos.energy.mean()), "dream_energy": float(neg.energy.mean())}

    def fit_epoch(self, tissue, x, y, epoch: int = 0, classifier: EqProp | None = None,
                  engine: Langevin | None = None, progress: bool = False, clamp=None,
                  classify_clamp: bool = False) -> dict:
        """One pass over ``(x, y)`` in a seeded order; with ``classifier`` (an :class:`EqProp`
        and its ``engine``), every generative step is followed by a discriminative step on the
        same mini-batch, so the tissue keeps classifying while it learns to dream. ``clamp``
        (``(n, n_outputs)``, optional): each example's output clamp of the generative step;
        the classifier keeps the one-hot class targets, or nudges towards ``clamp`` too with
        ``classify_clamp``."""
        if classifier is not None and engine is None:
            raise ValueError("fit_epoch with a classifier needs its engine")
        order = np.random.default_rng([self.seed, 7, epoch]).permutation(len(x))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(x), desc=f"generative epoch {epoch}", unit="ex", leave=False)
        de, ne, correct = [], [], 0
        for lo in range(0, len(x) - self.batch_size + 1, self.batch_size):
            idx = order[lo:lo + self.batch_size]
            rep = self.train_step(tissue, x[idx], y[idx], None if clamp is None else clamp[idx])
            de.append(rep["data_energy"])
            ne.append(rep["dream_energy"])
            if classifier is not None:
                correct += classifier.train_step(tissue, engine, x[idx], y[idx],
                                                 target=None if not classify_clamp or clamp is None
                                                 else clamp[idx]).correct
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        n = (len(x) // self.batch_size) * self.batch_size
        return {"data_energy": float(np.mean(de)), "dream_energy": float(np.mean(ne)),
                "train_accuracy": correct / n if classifier is not None else float("nan")}


def labels_of(tissue) -> np.ndarray:
    """The classes of a tissue's output groups, ``0 .. n_groups - 1``."""
    out = tissue.region("output")
    if len(out) == 0:
        raise ValueError("the tissue has no output region")
    return np.arange(int(tissue.group[out].max()) + 1)


