"""Generative runs (issue 6): dreaming from a label, associative-memory capacity, the landscape.

``tissue run CONFIG --out STORE`` with a ``[dream]``, ``[memory]`` and/or ``[landscape]``
section (see :mod:`studies.generative_config`) lands here (:func:`run_generative`).
Each section writes its own Dataset to a group of the store named after it
(``xarray.open_zarr(STORE, group="dream")`` or :func:`open_generative`) and a PNG
beside the store; the root attributes hold the config, the status and the figures.

``[dream]``
    Loads the trained tissue of a learning run store (``source``), rebuilds its
    task and input map from the config stored there, optionally fine-tunes a copy
    with the generative (Boltzmann) rule interleaved with EqProp
    (``generative_epochs``), clamps the output to each class's training targets and
    samples the free voxels with Langevin dynamics along the annealing schedule
    (:func:`plasticity.dreaming.dream`). The input face of each sample is read back
    into an 8 x 8 image (the mean of each pixel's upsampled block). Dataset:
    ``image (label, chain, sample, x, y)``, ``energy (label, chain, sample)``,
    ``phase_energy (phase, label, chain)``, ``activation (label, chain, vx, vy, vz)``
    (the last sample), and with ``evaluate``: ``predicted (label, chain, sample)``,
    ``classified (label)`` (share of dreams a logistic regression trained on the real
    training digits assigns to the clamped class) and ``diversity (label)`` (mean
    pairwise distance of the dreams over that of the real training digits of the class).
    Picture: ``STORE.dream.png`` (one row per class, one column per chain). With a source trained
    with ``[task] styles`` = K, chain ``c`` of a class is dreamed with style ``c % K`` clamped
    (``style (label, chain)``); with ``quench_steps``, every chain is then settled at T = 0 and
    scored again (``quenched_image``, ``quenched_classified``, ``quenched_diversity``,
    ``STORE.quenched.png``): diversity that survives the quench is several minima, not noise.

``[memory]``
    :func:`plasticity.memory.capacity_curve` for each rule: Dataset ``overlap (rule,
    load, trial)`` etc. with ``alpha = load / N`` and the reference loads in the
    attributes; picture ``STORE.memory.png``.

``[landscape]``
    :func:`dynamics.landscape.find_fixed_points` on a Hebbian memory tissue or on a
    trained tissue with its output clamped to ``label``: Dataset over ``point``
    and ``start``.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from tissue.records import _jsonable, package_version

__all__ = [
    "DreamSetup",
    "demo_step",
    "dream_from_store",
    "dream_grid_png",
    "evaluate_dreams",
    "landscape_study",
    "load_dream_setup",
    "memory_study",
    "open_generative",
    "plot_capacity",
    "run_generative",
]


# ------------------------------------------------------------------ dreaming
class DreamSetup:
    """A trained tissue with its task, input map and training targets (from a learning run store)."""

    def __init__(self, store):
        from tissue import load_tissue

        from .config import load_config
        from .learn import build_learning
        from .tasks import InputMap

        store = Path(store)
        if not (store / "zarr.json").is_file():
            raise FileNotFoundError(f"{store} is not a run store (no zarr.json)")
        attrs = dict(zarr.open_group(store, mode="r").attrs)
        raw = attrs.get("config")
        raw = json.loads(raw) if isinstance(raw, str) else raw
        self.store = store
        self.cfg = load_config(raw)
        self.learn = build_learning(self.cfg)      # task, split, clamped inputs, trainer, engine
        self.tissue = load_tissue(store)
        self.task = self.learn.task
        self.imap = InputMap(self.tissue.lattice, self.task.image_shape, "z-", self.cfg.task.upsample,
                             encoding=self.cfg.task.encoding)
        self.target_on = self.cfg.learning.target_on
        self.target_off = self.cfg.learning.target_off

    def images(self, states) -> np.ndarray:
        """Images ``(..., h, w)`` read back from tissue states ``(..., N)``."""
        from plasticity.dreaming import face_to_images

        h, w = self.task.image_shape
        img = face_to_images(states, self.imap.region, self.imap.source, h * w, off=self.imap.off)
        return img.reshape(img.shape[:-1] + (h, w))

    def mean_input_state(self) -> np.ndarray:
        """A state ``(N,)``: the mean training image on the input face, rest elsewhere."""
        s = np.zeros(self.tissue.n)
        s[self.tissue.region("input")] = self.learn.xtr.mean(axis=0)
        return s

    def test_accuracy(self, tissue=None) -> float:
        t = self.tissue if tissue is None else tissue
        return self.learn.trainer.evaluate(t, self.learn.engine, self.learn.xte, self.task.y_test)["accuracy"]


def load_dream_setup(store) -> DreamSetup:
    """:class:`DreamSetup` of a learning run store."""
    return DreamSetup(store)


def evaluate_dreams(images, labels, task) -> dict:
    """Score dream images ``(n, h, w)`` of classes ``labels`` against the task's real images.

    A ``LogisticRegression`` (scikit-learn, ``max_iter=2000``) is fitted on the real
    training images; ``classified[c]`` is the share of dreams of class ``c`` it assigns to
    ``c``; ``diversity[c]`` is the mean pairwise Euclidean distance between dreams of
    class ``c`` over that between the real training images of class ``c``.

    Returns ``dict(predicted, classes, classified, diversity, classifier_test_accuracy)``.
    """
    from scipy.spatial.distance import pdist
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(images, dtype=np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels).astype(np.int64)
    clf = LogisticRegression(max_iter=2000).fit(task.x_train, task.y_train)
    pred = clf.predict(x)
    classes = np.unique(labels)
    classified = np.array([np.mean(pred[labels == c] == c) for c in classes])
    div = []
    for c in classes:
        d = x[labels == c]
        real = task.x_train[task.y_train == c]
        div.append(pdist(d).mean() / pdist(real).mean() if len(d) > 1 else np.nan)
    return {"predicted": pred, "classes": classes, "classified": classified, "diversity": np.array(div),
            "classifier_test_accuracy": float(clf.score(task.x_test, task.y_test))}


def generative_finetune(setup: DreamSetup, epochs: int, lr: float = 3e-4, temperature: float = 0.02,
                        steps: int = 20, classifier_lr: float = 1e-3, seed: int = 0, progress: bool = False,
                        echo=None, track: bool = True, n_train: int | None = None):
    """A copy of the trained tissue after ``epochs`` of :class:`plasticity.dreaming.GenerativeTrainer`
    on the training split, each mini-batch followed by an EqProp step (``classifier_lr``; 0: none).
    A tissue trained with ``[task] styles`` is fitted with each image's class-and-style code as the
    clamp (generative step) and the target (EqProp step).
    Returns ``(tissue, history)`` with the test accuracy before and after each epoch (``track=False``:
    only after the last one). ``n_train``: use only the first ``n_train`` training examples (quick runs)."""
    from plasticity import EqProp
    from plasticity.dreaming import GenerativeTrainer

    t = setup.tissue.copy()
    lc = setup.cfg.learning
    gen = GenerativeTrainer(lr=lr, temperature=temperature, steps=steps, batch_size=lc.batch_size, seed=seed)
    clf = None
    if classifier_lr > 0:
        clf = EqProp(beta=lc.beta, symmetric=lc.symmetric, lr=classifier_lr, optimizer=lc.optimizer,
                     batch_size=lc.batch_size, target_on=lc.target_on, target_off=lc.target_off, cost=lc.cost,
                     tau=lc.tau, seed=seed)
    hist = {"test_accuracy": [setup.test_accuracy(t)] if track else [], "data_energy": [], "dream_energy": [],
            "seconds": []}
    codes = setup.learn.targets          # [task] styles > 1: class-and-style targets, for both rules
    for ep in range(int(epochs)):
        t0 = time.perf_counter()
        rep = gen.fit_epoch(t, setup.learn.xtr[:n_train], setup.task.y_train[:n_train], epoch=ep, classifier=clf,
                            engine=setup.learn.engine, progress=progress,
                            clamp=None if codes is None else codes[:n_train], classify_clamp=codes is not None)
        if track or ep == int(epochs) - 1:
            hist["test_accuracy"].append(setup.test_accuracy(t))
        hist["data_energy"].append(rep["data_energy"])
        hist["dream_energy"].append(rep["dream_energy"])
        hist["seconds"].append(time.perf_counter() - t0)
        if echo is not None:
            echo(f"generative epoch {ep}: test accuracy {hist['test_accuracy'][-1]:.3f} "
                 f"({hist['seconds'][-1]:.1f} s)")
    return t, hist


def dream_from_store(setup: DreamSetup, tissue=None, chains: int = 8, schedule=((0.02, 2000),), dt: float = 0.2,
                     init: str = "rest", samples: int = 1, thin: int = 200, seed: int = 0, evaluate: bool = True,
                     progress: bool = False, quench_steps: int = 0) -> xr.Dataset:
    """Dream every class of ``setup`` (or of ``tissue``, default the trained one) and return the Dataset
    described in the module doc (figures in its attributes). A tissue trained with ``[task] styles``
    = K dreams chain ``c`` of a class with its style ``c % K`` clamped. ``quench_steps > 0``: every
    chain's last state is also settled at T = 0 for that many steps (same clamp) and scored, which
    tells apart dreams that sit in different minima from thermal noise around one."""
    from plasticity.dreaming import dream, labels_of
    from plasticity.readout import style_targets

    t = setup.tissue if tissue is None else tissue
    labels = labels_of(t)
    s0 = setup.mean_input_state() if init == "mean" else init
    k_styles = int(setup.cfg.task.styles)
    style = np.tile(np.arange(int(chains)) % k_styles, len(labels))
    clamp = None
    if k_styles > 1:
        clamp = style_targets(t, k_styles, setup.target_on, setup.target_off)[np.repeat(labels, int(chains)), style]
    res = dream(t, labels, chains=chains, schedule=schedule, dt=dt, init=s0, target_on=setup.target_on,
                target_off=setup.target_off, samples=samples, thin=thin, seed=seed, progress=progress, clamp=clamp)
    nl, nc, ns = len(labels), int(chains), int(samples)
    img = setup.images(res.state)                       # (S, B, h, w)
    h, w = img.shape[-2:]
    img = img.transpose(1, 0, 2, 3).reshape(nl, nc, ns, h, w)
    energy = res.energy.T.reshape(nl, nc, ns)
    nx, ny, nz = t.lattice.shape
    act = np.clip(res.final, 0, 1).reshape(nl, nc, nx, ny, nz)
    ds = xr.Dataset(
        {
            "image": (("label", "chain", "sample", "x", "y"), img,
                      {"long_name": "dreamed image (mean rate of each pixel's input voxels)", "units": "1"}),
            "energy": (("label", "chain", "sample"), energy, {"long_name": "energy E of the sample", "units": "1"}),
            "phase_energy": (("phase", "label", "chain"), res.phase_energy.reshape(-1, nl, nc),
                             {"long_name": "energy at the end of each annealing phase", "units": "1"}),
            "activation": (("label", "chain", "vx", "vy", "vz"), act,
                           {"long_name": "firing rate of the whole tissue at the last sample", "units": "1"}),
            "temperature": ("phase", np.array([p[0] for p in res.schedule]), {"long_name": "phase temperature"}),
            "phase_steps": ("phase", np.array([p[1] for p in res.schedule]), {"long_name": "phase steps"}),
        },
        coords={"label": labels, "chain": np.arange(nc), "sample": np.arange(ns), "x": np.arange(h),
                "y": np.arange(w), "phase": np.arange(len(res.schedule)), "vx": np.arange(nx),
                "vy": np.arange(ny), "vz": np.arange(nz)},
        attrs={"dt": float(dt), "init": init, "thin": int(thin), "seed": int(seed), "source": str(setup.store),
               "target_on": setup.target_on, "target_off": setup.target_off, "styles": k_styles},
    )
    ds["style"] = (("label", "chain"), style.reshape(nl, nc),
                   {"long_name": "style clamped with the class ([task] styles of the source; 0 if none)"})
    quenched = None
    if quench_steps:
        q = dream(t, labels, chains=chains, schedule=[(0.0, int(quench_steps))], dt=dt, init=res.final,
                  target_on=setup.target_on, target_off=setup.target_off, seed=seed, clamp=clamp)
        quenched = setup.images(q.final).reshape(nl, nc, h, w)
        ds["quenched_image"] = (("label", "chain", "x", "y"), quenched,
                                {"long_name": "the last sample settled at T = 0 (same clamp)", "units": "1"})
        ds.attrs["quench_steps"] = int(quench_steps)
    if evaluate:
        lab = np.broadcast_to(labels[:, None, None], (nl, nc, ns)).reshape(-1)
        ev = evaluate_dreams(img.reshape(-1, h, w), lab, setup.task)
        ds["predicted"] = (("label", "chain", "sample"), ev["predicted"].reshape(nl, nc, ns),
                           {"long_name": "class given by the logistic regression on real digits"})
        ds["classified"] = ("label", ev["classified"], {"long_name": "share of dreams classified as the label"})
        ds["diversity"] = ("label", ev["diversity"],
                           {"long_name": "mean pairwise distance of dreams / that of real digits of the class"})
        ds.attrs.update(classified_mean=float(np.mean(ev["classified"])),
                        diversity_mean=float(np.nanmean(ev["diversity"])),
                        diversity_min=float(np.nanmin(ev["diversity"])),
                        classifier_test_accuracy=ev["classifier_test_accuracy"])
        if quenched is not None:
            qv = evaluate_dreams(quenched.reshape(-1, h, w), np.repeat(labels, nc), setup.task)
            ds["quenched_predicted"] = (("label", "chain"), qv["predicted"].reshape(nl, nc),
                                        {"long_name": "class the logistic regression gives the quenched dream"})
            ds["quenched_classified"] = ("label", qv["classified"],
                                         {"long_name": "share of quenched dreams classified as the label"})
            ds["quenched_diversity"] = ("label", qv["diversity"],
                                        {"long_name": "diversity of the quenched dreams (as diversity)"})
            ds.attrs.update(quenched_classified_mean=float(np.mean(qv["classified"])),
                            quenched_diversity_mean=float(np.nanmean(qv["diversity"])),
                            quenched_diversity_min=float(np.nanmin(qv["diversity"])))
    return ds


def dream_grid_png(ds: xr.Dataset, path, sample: int = -1, title: str | None = None,
                   quenched: bool = False) -> Path:
    """One row per class, one column per chain: the dreamed images of ``sample`` (``quenched``: the
    same chains settled at T = 0); the logistic-regression verdict in the corner when the Dataset
    has it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if quenched:
        img = ds["quenched_image"].values
        pred = ds["quenched_predicted"].values if "quenched_predicted" in ds else None
    else:
        img = ds["image"].isel(sample=sample).values
        pred = ds["predicted"].isel(sample=sample).values if "predicted" in ds else None
    nl, nc = img.shape[:2]
    fig, axes = plt.subplots(nl, nc, figsize=(0.9 * nc + 0.6, 0.9 * nl + 0.6), squeeze=False)
    for i in range(nl):
        for j in range(nc):
            ax = axes[i, j]
            ax.imshow(img[i, j], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if pred is not None:
                ok = pred[i, j] == ds.label.values[i]
                ax.text(0.02, 0.98, str(pred[i, j]), transform=ax.transAxes, va="top", fontsize=7,
                        color="green" if ok else "red")
            if j == 0:
                ax.set_ylabel(str(ds.label.values[i]), rotation=0, labelpad=10)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ memory
def memory_study(mc, seed: int = 0, progress: bool = False) -> xr.Dataset:
    """``capacity_curve`` for every rule of a ``[memory]`` section, on one Dataset (dim ``rule``)."""
    from plasticity.memory import capacity_curve, retrieval_capacity

    loads = list(range(mc.load_min, mc.load_max + 1, mc.load_step))
    parts, caps = [], {}
    for rule in mc.rules:
        ds = capacity_curve(mc.shape, loads, cue_fraction=mc.cue_fraction, mode=mc.mode, rule=rule,
                            trials=mc.trials, gain=mc.gain, stencil=mc.stencil, epochs=mc.epochs, seed=seed,
                            progress=progress)
        caps[rule] = retrieval_capacity(ds, mc.threshold)
        parts.append(ds)
    rules = np.array(list(mc.rules), dtype=object)         # variable-length strings (zarr v3 has no fixed UTF-32)
    out = xr.concat(parts, dim=xr.DataArray(rules, dims="rule", name="rule"), combine_attrs="drop_conflicts")
    out["capacity"] = ("rule", np.array([caps[r] for r in mc.rules]),
                       {"long_name": f"largest load with mean overlap >= {mc.threshold} at every load up to it"})
    out.attrs.pop("rule", None)
    out.attrs["threshold"] = float(mc.threshold)
    return out


def plot_capacity(ds: xr.Dataset, path, title: str | None = None) -> Path:
    """Mean recall overlap against load (one line per rule) with the reference loads."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for rule in ds.rule.values:
        d = ds.sel(rule=rule)
        m = d.overlap.mean("trial")
        ax.plot(d["load"], m, "o-", label=f"{rule}: recall from cues")
        ax.plot(d["load"], d.stable.mean("trial"), ":", label=f"{rule}: settled from the pattern")
    ax.plot(ds["load"], ds.cue_overlap.isel(rule=0).mean("trial"), "k--", lw=0.8, label="cue")
    ax.axhline(ds.attrs.get("threshold", 0.95), color="grey", lw=0.6)
    for key, lab, c in (("snr_load_0.95", "one-step SNR estimate", "C3"), ("diluted_load", "(2/pi) K", "C4")):
        if key in ds.attrs and ds.attrs[key] <= ds["load"].max() * 1.5:
            ax.axvline(ds.attrs[key], color=c, lw=1, ls="-.", label=f"{lab} = {ds.attrs[key]:.1f}")
    ax.set_xlabel(f"stored patterns P  (N = {ds.attrs['N']}, 0.138 N = {ds.attrs['hopfield_load']:.0f})")
    ax.set_ylabel("overlap with the pattern")
    ax.set_ylim(-0.05, 1.02)
    ax.legend(fontsize=7, loc="lower left")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ landscape
def landscape_study(lc, seed: int = 0, progress: bool = False) -> xr.Dataset:
    """Fixed points of a ``[landscape]`` section's tissue (see :mod:`studies.generative_config`)."""
    from dynamics import Langevin
    from dynamics.landscape import find_fixed_points
    from plasticity.dreaming import dream_view
    from plasticity.memory import overlaps, random_patterns, store_patterns
    from plasticity.readout import one_hot_targets
    from tissue import Tissue

    eng = Langevin(dt=0.2, temperature=0.0, tol=1e-6, max_steps=lc.max_steps)
    if lc.source:
        setup = DreamSetup(lc.source)
        view = dream_view(setup.tissue)
        y = one_hot_targets([lc.label], setup.tissue, setup.target_on, setup.target_off)
        land = find_fixed_points(view, lc.starts, inputs=y[0], tol=lc.tol, engine=eng, seed=seed, progress=progress)
        ds = land.to_dataset()
        ds["image"] = (("point", "px", "py"), setup.images(land.points),
                       {"long_name": "input face of the fixed point as an image"})
        ds.attrs.update(source=str(setup.store), label=int(lc.label))
        return ds
    t = Tissue.cube(lc.shape, stencil=lc.stencil, init="zero", seed=seed)
    xi = random_patterns(lc.patterns, t.n, np.random.default_rng([seed, 99]))
    store_patterns(t, xi, gain=lc.gain)
    land = find_fixed_points(t, lc.starts, tol=lc.tol, engine=eng, seed=seed, progress=progress)
    ds = land.to_dataset()
    ds["pattern_overlap"] = (("point", "pattern"), overlaps(np.clip(land.points, 0, 1), xi),
                             {"long_name": "overlap of the fixed point with each stored pattern"})
    ds.attrs.update(patterns=int(lc.patterns), gain=float(lc.gain))
    return ds


# ------------------------------------------------------------------ the run
def open_generative(store, section: str = "dream") -> xr.Dataset:
    """The Dataset a generative run wrote for ``section`` (``dream``, ``memory``, ``landscape``)."""
    return xr.open_zarr(Path(store), group=section, consolidated=False)


def _write(ds: xr.Dataset, out: Path, group: str) -> None:
    ds = ds.copy()
    ds.attrs = _jsonable(dict(ds.attrs))
    ds.to_zarr(out, group=group, mode="w", consolidated=False)


def run_generative(cfg, out, resume: bool = False, progress: bool = True, echo=None):
    """Run the ``[dream]``, ``[memory]`` and ``[landscape]`` sections of ``cfg`` into ``out``.

    Sections already written by an interrupted run are kept on ``resume`` (each group
    is written whole, then named in the root attribute ``done``). Returns a
    :class:`studies.run.StudySummary` with the figures.
    """
    from .run import StudySummary

    t0 = time.perf_counter()
    out = Path(out)
    canonical = cfg.to_dict()
    done: list = []
    figures: dict = {}
    if resume and (out / "zarr.json").is_file():
        attrs = dict(zarr.open_group(out, mode="r").attrs)
        loads = lambda v, empty: json.loads(v) if isinstance(v, str) else (v or empty)  # noqa: E731
        done = list(loads(attrs.get("done"), []))          # (_jsonable stores lists and dicts as JSON text)
        figures = dict(loads(attrs.get("figures"), {}))
        created = attrs.get("created")
    else:
        if out.exists():
            shutil.rmtree(out)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    base = {"title": f"neural-tissue generative run {cfg.name!r}", "kind": "generative", "name": cfg.name,
            "config": canonical, "seed": cfg.seed, "package": "neural-tissue", "package_version": package_version(),
            "created": created, "status": "running", "done": done, "figures": figures}
    if (out / "zarr.json").is_file():
        zarr.open_group(out, mode="a").update_attributes(_jsonable(base))
    else:
        zarr.create_group(out, attributes=_jsonable(base))

    def finish(section, ds, figs):
        _write(ds, out, section)
        done.append(section)
        figures.update(figs)
        zarr.open_group(out, mode="a").update_attributes(_jsonable({"done": done, "figures": figures}))

    stem = out.with_suffix("") if out.suffix == ".zarr" else out
    d = cfg.dream
    if d is not None and "dream" not in done:
        setup = DreamSetup(d.source)
        figs = {}
        tissue = setup.tissue
        if d.generative_epochs:
            figs["classifier_test_accuracy_before"] = setup.test_accuracy()
            tissue, hist = generative_finetune(setup, d.generative_epochs, d.generative_lr, d.generative_temperature,
                                               d.generative_steps, d.classifier_lr, seed=cfg.seed,
                                               progress=progress, echo=echo)
            figs["classifier_test_accuracy_after"] = hist["test_accuracy"][-1]
        sched = [(p.temperature, p.steps) for p in d.anneal]
        ds = dream_from_store(setup, tissue, chains=d.chains, schedule=sched, dt=d.dt, init=d.init,
                              samples=d.samples, thin=d.thin, seed=cfg.seed, evaluate=d.evaluate, progress=progress,
                              quench_steps=d.quench_steps)
        if d.generative_epochs:
            from tissue import save_tissue

            ds.attrs["generative_test_accuracy"] = hist["test_accuracy"]
        for k in ("classified_mean", "diversity_mean", "diversity_min", "quenched_classified_mean",
                  "quenched_diversity_mean", "quenched_diversity_min"):
            if k in ds.attrs:
                figs[f"dream_{k}"] = ds.attrs[k]
        png = dream_grid_png(ds, f"{stem}.dream.png",
                             title=f"dreams of {Path(d.source).name}"
                                   + (f" after {d.generative_epochs} generative epochs" if d.generative_epochs else "")
                                   + (f"; classified {ds.attrs['classified_mean']:.0%}" if d.evaluate else ""))
        figs["dream_png"] = str(png)
        if "quenched_image" in ds:
            qpng = dream_grid_png(ds, f"{stem}.quenched.png", quenched=True,
                                  title=f"the same chains settled at T = 0"
                                        + (f"; classified {ds.attrs['quenched_classified_mean']:.0%}, diversity "
                                           f"{ds.attrs['quenched_diversity_mean']:.2f}" if d.evaluate else ""))
            figs["quenched_png"] = str(qpng)
        finish("dream", ds, figs)
        if d.generative_epochs:
            save_tissue(tissue, out, group="dream_tissue")
    m = cfg.memory
    if m is not None and "memory" not in done:
        ds = memory_study(m, seed=cfg.seed, progress=progress)
        figs = {f"memory_capacity_{r}": int(c) for r, c in zip(ds.rule.values, ds.capacity.values)}
        figs.update(memory_N=int(ds.attrs["N"]), memory_K_mean=float(ds.attrs["K_mean"]),
                    memory_hopfield_load=float(ds.attrs["hopfield_load"]),
                    memory_diluted_load=float(ds.attrs["diluted_load"]),
                    memory_snr_load=float(ds.attrs["snr_load_0.95"]))
        figs["memory_png"] = str(plot_capacity(ds, f"{stem}.memory.png",
                                               title=f"{'x'.join(map(str, m.shape))} lattice, {m.stencil} neighbours, "
                                                     f"cues {m.cue_fraction:.0%} {m.mode}"))
        finish("memory", ds, figs)
    la = cfg.landscape
    if la is not None and "landscape" not in done:
        ds = landscape_study(la, seed=cfg.seed, progress=progress)
        figs = {"landscape_points": int(ds.sizes["point"]),
                "landscape_minima": int(np.sum(ds.min_curvature.values > 0)),
                "landscape_top_basin": float(ds.basin.max()) if ds.sizes["point"] else 0.0}
        finish("landscape", ds, figs)
    wall = time.perf_counter() - t0
    zarr.open_group(out, mode="a").update_attributes(_jsonable({
        "status": "complete", "wall_time_s": round(wall, 3),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
    return StudySummary(out, "complete", figures, wall)


# ------------------------------------------------------------------ demo
def demo_step(learn_store: Path, out: Path, small: bool, progress: bool, echo) -> dict:
    """The demo's dream step: teach a copy of the demo's trained tissue the generative rule,
    dream every class, and draw a grid.

    ``small``: one generative pass over 256 training digits without the interleaved EqProp steps
    (lr 2e-3), 3 chains
    and a short schedule (under 30 s); otherwise two epochs interleaved with EqProp (the
    study's setting), 6 chains and a longer anneal. Writes ``out/dreams.zarr`` (group
    ``dream``) and ``out/dreams.png``; returns the figures (share of dreams classified as
    the clamped class, diversity, the copy's test accuracy after the generative epochs).
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    setup = DreamSetup(learn_store)
    if small:
        tissue, hist = generative_finetune(setup, 1, lr=2e-3, classifier_lr=0.0, track=False, n_train=256,
                                           progress=progress)
    else:
        tissue, hist = generative_finetune(setup, 2, progress=progress)
    chains = 3 if small else 6
    sched = [(0.05, 200), (0.02, 300)] if small else [(0.05, 500), (0.02, 2000)]
    ds = dream_from_store(setup, tissue, chains=chains, schedule=sched, seed=0, progress=progress)
    store = out / "dreams.zarr"
    if store.exists():
        shutil.rmtree(store)
    zarr.create_group(store, attributes={"kind": "demo-dreams", "source": str(learn_store)})
    _write(ds, store, "dream")
    png = dream_grid_png(ds, out / "dreams.png",
                         title=f"dreams ({'x'.join(map(str, tissue.lattice.shape))} tissue, output clamped to "
                               f"each class); classified {ds.attrs['classified_mean']:.0%}")
    movie = record_dream(tissue, label=3, out=out / "dreaming.zarr", schedule=sched, every=10)
    figs = {"dream_classified": ds.attrs["classified_mean"], "dream_diversity": ds.attrs["diversity_mean"],
            "dream_tissue_test_accuracy": hist["test_accuracy"][-1], "dream_png": str(png),
            "dream_movie": str(movie), "dream_seconds": time.perf_counter() - t0}
    if echo is not None:
        echo(f"  dreams: {ds.attrs['classified_mean']:.0%} classified as the clamped class, diversity "
             f"{ds.attrs['diversity_mean']:.2f} of the real digits' ({png})")
    return figs


def record_dream(tissue, label: int, out, schedule=((0.05, 200), (0.02, 300)), dt: float = 0.2, every: int = 10,
                 seed: int = 0, movie: bool = True):
    """Record one dreaming chain into a run store (a trajectory over time) and draw its movie.

    The output region is clamped to class ``label`` (training targets 1 / 0), the input face is
    free, and the tissue is sampled through the annealing ``schedule`` by :class:`dynamics.Langevin`
    on :func:`plasticity.dreaming.dream_view`. ``out`` becomes a run store with ``activation``
    over ``time`` (``tissue view OUT --out dreaming.gif --slice z=0`` shows it); with ``movie``
    ``OUT`` is followed by a GIF of the input face (``<out stem>.gif`` beside it), which is returned.
    """
    from dynamics import Langevin
    from plasticity.dreaming import dream_view, parse_schedule
    from plasticity.readout import one_hot_targets
    from tissue import Recorder, open_run
    from tissue.view import animate

    out = Path(out)
    view = dream_view(tissue)
    y = one_hot_targets(np.array([int(label)]), tissue, 1.0, 0.0)
    rec = Recorder(out, every=every, variables=("activation", "energy"),
                   attrs={"kind": "dream-trajectory", "label": int(label)})
    state, step = None, 0
    for temp, steps in parse_schedule(schedule):
        res = Langevin(dt=dt, temperature=temp, seed=seed, max_steps=steps).settle(
            view, inputs=y, init=state, steps=steps, record=rec, start_step=step)
        state, step = res.state, res.step_end
    if not movie:
        return out
    ds = open_run(out)
    try:
        face = int(tissue.lattice.coords(tissue.region("input"))[0, 2])
        return animate(ds, out.with_suffix(".gif"), axis="z", index=face, max_frames=60,
                       title=None)
    finally:
        ds.close()
