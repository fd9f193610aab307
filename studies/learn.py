"""The learning study behind ``tissue run`` for configs with ``[learning]`` and ``[task]``.

1. build the tissue (``[tissue]``, seeded by ``seed``), clamp its z- face to the
   task's images (``[task] upsample``, centred) and make its z+ face the output,
   one group of voxels per class;
2. train with Equilibrium Propagation (:class:`plasticity.EqProp`), one epoch at a
   time, evaluating the held-out split after every epoch; homeostasis
   (:class:`plasticity.LipschitzBrake`) brakes when a free phase stalls; with
   ``[learning] prune_target`` the epochs ``prune_start .. prune_end - 1`` begin
   with a cut of the least salient synapses (:func:`prune_share`), so the tissue
   learns on as it is pruned;
3. at the end: per-sample settling steps on the test set and on ambiguous
   blends, their AUROCs, the gradient alignment (cosine of the EqProp update with
   the exact implicit-differentiation gradient, per z slab, against beta, for
   symmetric and one-sided nudging), and the backprop baselines on the same split.

Store layout (a zarr v3 group; ``open_run(path)`` reads the results)::

    train_accuracy, test_accuracy, loss, test_loss, epoch_seconds, brakes, synapses  (epoch)
    test_steps, test_converged, test_pred, test_label                      (sample)
    train_style  ([task] styles > 1: each training image's k-means style)  (train_sample)
    blend_steps                                                             (blend)
    alignment   (nudging, beta, slab)   cosine with -dL/dW ("all" = whole table: slab -1)
    baseline_test_accuracy, baseline_train_accuracy, baseline_n_weights     (baseline)
    tissue/     the trained tissue (tissue.load_tissue)
    ckpt_a/, ckpt_b/  double-buffered end-of-epoch checkpoints (tissue + optimizer + history)
    attrs: config, status, epochs_done, ckpt_slot, auroc_misclassified, auroc_blend, n_weights, ...

Resume: after every epoch the tissue, the optimizer state and the history go to
the spare checkpoint slot, and only then the root attributes name it. A run
killed at any point restarts from the last finished epoch; the example order of
an epoch depends only on ``(seed, epoch)`` and settling at T = 0 is
deterministic, so the resumed run ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from dynamics import Langevin
from plasticity import EqProp, LipschitzBrake
from plasticity.alignment import alignment_curve, as_float64
from tissue import INPUT, Tissue, load_tissue, save_tissue
from tissue.records import _jsonable, package_version

from .tasks import InputMap, auroc, blend_pairs, class_styles, load_digits_task, pattern_task

ALIGN_BETAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass
class LearnSetup:
    tissue: Tissue
    task: object
    xtr: np.ndarray        # (n_train, n_inputs) clamped values
    xte: np.ndarray
    trainer: EqProp
    engine: Langevin
    brake: LipschitzBrake | None
    styles: np.ndarray | None = None     # (n_train,) style of each training image ([task] styles > 1)
    targets: np.ndarray | None = None    # (n_train, n_outputs) its class-and-style target


def build_learning(cfg) -> LearnSetup:
    """Tissue, task, input map, trainer and engine of a learning config (deterministic in ``cfg.seed``)."""
    tc, tk, lc = cfg.tissue, cfg.task, cfg.learning
    t = Tissue.cube(tc.shape, stencil=tc.stencil or 26, radius=tc.radius, small_world=tc.small_world,
                    init=tc.init, weight_scale=tc.weight_scale, bias=tc.bias, activation=tc.activation,
                    dtype=tc.dtype, seed=cfg.seed)
    if tk.name == "digits":
        task = load_digits_task(seed=cfg.seed, test_size=tk.test_size)
    else:
        task = pattern_task(n_classes=tk.n_classes, noise=tk.noise, seed=cfg.seed)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=task.n_classes, layout=tk.output_layout)
    imap = InputMap(t.lattice, task.image_shape, "z-", tk.upsample, encoding=tk.encoding)
    xtr, xte = imap(task.images("train"), tissue=t), imap(task.images("test"), tissue=t)
    brake = None
    if cfg.homeostasis is not None:
        h = cfg.homeostasis
        brake = LipschitzBrake(target=h.target, trigger=h.trigger, enabled=h.enabled,
                               stall_fraction=h.stall_fraction)
    common = dict(beta=lc.beta, lr=lc.lr, lr_bias=lc.lr_bias, depth_lr=lc.depth_lr, optimizer=lc.optimizer,
                  batch_size=lc.batch_size, persistent=lc.persistent, target_on=lc.target_on,
                  target_off=lc.target_off, cost=lc.cost, tau=lc.tau, schedule=lc.schedule, lr_final=lc.lr_final,
                  weight_clip=lc.weight_clip, weight_decay=lc.weight_decay, average=lc.average, brake=brake,
                  seed=cfg.seed)
    if getattr(lc, "mode", "two_phase") == "continuous":
        from plasticity.continuous import ContinuousNudge

        trainer = ContinuousNudge(**common, modulation=lc.modulation if lc.modulation is not None else 0.5,
                                  cycle=lc.cycle if lc.cycle is not None else 4,
                                  contrast_tau=lc.contrast_tau if lc.contrast_tau is not None else 8.0)
    else:
        trainer = EqProp(**common, symmetric=lc.symmetric, nudged_steps=lc.nudged_steps, dropout=lc.dropout)
    d = cfg.dynamics
    if getattr(d, "engine", "clocked") == "events":
        from dynamics.events import EventEngine

        engine = EventEngine(tol=d.tol, dt=d.dt, epsilon=d.epsilon, order=d.order or "fifo",
                             max_steps=d.max_steps, blowup=d.blowup)
    else:
        engine = Langevin(dt=d.dt, temperature=0.0, tol=d.tol, max_steps=d.max_steps, blowup=d.blowup)
    styles = targets = None
    if tk.styles > 1:
        from plasticity.readout import style_targets

        styles = class_styles(task.x_train, task.y_train, tk.styles, seed=cfg.seed)
        targets = style_targets(t, tk.styles, lc.target_on, lc.target_off)[task.y_train, styles]
    return LearnSetup(t, task, xtr, xte, trainer, engine, brake, styles, targets)


def training_rates(setup, tissue, batch: int = 128) -> np.ndarray:
    """The free-phase rates ``(n_train, N)`` of ``tissue`` at the fixed points of the training inputs."""
    return np.concatenate([setup.engine.settle(tissue, inputs=setup.xtr[lo:lo + batch]).rates
                           for lo in range(0, len(setup.xtr), batch)])


def prune_share(lc, epoch: int) -> float:
    """Share of the synapses that pruning while learning (``[learning] prune_*``) has removed once
    ``epoch`` (0-based) starts: 0 before ``prune_start``, then the cubic schedule of Zhu & Gupta
    (2017), ``target (1 - (1 - k / n)^3)`` after the k-th of the ``n = prune_end - prune_start``
    cuts, and ``prune_target`` from ``prune_end - 1`` on (most is cut early, while the learning
    rate is high; the last cuts are small)."""
    if lc.prune_target <= 0 or epoch < lc.prune_start:
        return 0.0
    n = lc.prune_end - lc.prune_start
    k = min(epoch - lc.prune_start + 1, n)
    return float(lc.prune_target * (1.0 - (1.0 - k / n) ** 3))


def cut_least_salient(setup, tissue, count: int, by: str = "activity", rates=None) -> int:
    """Remove the ``count`` synapses of ``tissue`` of smallest saliency at once
    (:meth:`plasticity.structural.StructuralPlasticity.prune_least`): ``|w|`` for ``by="weight"``,
    ``|w| r_i r_j`` for ``by="activity"`` with ``r`` the RMS rates of ``rates`` (default: the
    training digits' free fixed points on ``tissue`` as it is), and for ``by="effect"`` the same
    with 0 for the synapses between two clamped inputs. Returns how many were removed."""
    from plasticity.structural import RATE_RANKED, StructuralPlasticity

    sp = StructuralPlasticity(prune_by=by)
    if by in RATE_RANKED:
        sp.observe_rates(tissue, training_rates(setup, tissue) if rates is None else rates)
    return sp.prune_least(tissue, count)


def prune_while_learning(setup, lc, epoch: int, total: int) -> int:
    """The cut at the start of ``epoch``: remove the synapses of smallest saliency
    (``lc.prune_by``, :func:`cut_least_salient`) until ``prune_share(lc, epoch)`` of the
    ``total`` synapses the tissue was built with are gone. Returns how many were removed now."""
    t = setup.tissue
    count = int(round(prune_share(lc, epoch) * total)) - (total - t.syn.n_synapses)
    if count <= 0:
        return 0
    removed = cut_least_salient(setup, t, count, lc.prune_by)
    setup.trainer.invalidate()
    return removed


def load_learning_store(path):
    """``(cfg, setup)`` of a learning-run store: its config, built with :func:`build_learning`,
    and ``setup.tissue`` holding the store's trained synapses, biases and living neurons."""
    from .config import load_config

    raw = dict(zarr.open_group(path, mode="r").attrs)["config"]
    cfg = load_config(json.loads(raw) if isinstance(raw, str) else raw)
    setup = build_learning(cfg)
    t = load_tissue(path)
    setup.tissue.syn, setup.tissue.bias, setup.tissue.alive = t.syn, t.bias, t.alive
    return cfg, setup


def trainable_synapses(tissue) -> int:
    """Synapses with at least one end free to learn (not both on the clamped input)."""
    i, j, _ = tissue.syn.edges()
    inp = tissue.role == INPUT
    return int(np.sum(~(inp[i] & inp[j])))


# ------------------------------------------------------------------ checkpoints
_HIST = ("train_accuracy", "test_accuracy", "loss", "test_loss", "epoch_seconds", "brakes", "probe", "synapses")
PROBES = 4   # held-out samples whose free fixed point is kept after every epoch (a learning movie)


def _save_checkpoint(out: Path, slot: str, setup: LearnSetup, hist: dict, epochs_done: int) -> None:
    grp = f"ckpt_{slot}"
    save_tissue(setup.tissue, out, group=grp)
    g = zarr.open_group(out, mode="a")[grp]
    st = setup.trainer.export_state()
    for name, arr in list(st.items()) + [(f"hist_{k}", np.asarray(v, dtype=np.float64)) for k, v in hist.items()]:
        arr = np.asarray(arr)
        a = g.create_array(name, shape=arr.shape, dtype=arr.dtype, overwrite=True)
        a[...] = arr
    if setup.brake is not None:
        g.update_attributes({"brake_actions": json.dumps(setup.brake.actions, default=float)})
    root = zarr.open_group(out, mode="a")
    root.update_attributes({"ckpt_slot": slot, "epochs_done": int(epochs_done)})


def _load_checkpoint(out: Path, setup: LearnSetup) -> tuple[dict, int]:
    root = zarr.open_group(out, mode="r")
    slot, done = root.attrs.get("ckpt_slot"), int(root.attrs.get("epochs_done", 0))
    if slot is None:
        return {k: [] for k in _HIST}, 0
    grp = f"ckpt_{slot}"
    t = load_tissue(out, group=grp)
    setup.tissue.syn, setup.tissue.bias, setup.tissue.alive = t.syn, t.bias, t.alive
    g = root[grp]
    setup.trainer.import_state(setup.tissue, {k: g[k][...] for k in g.array_keys() if k.startswith("opt_")})
    hist = {k: (list(g[f"hist_{k}"][...]) if k == "probe" else g[f"hist_{k}"][...].tolist())
            for k in _HIST if f"hist_{k}" in g}
    hist.setdefault("probe", [])   # a store checkpointed before probes were kept
    hist.setdefault("synapses", [setup.tissue.syn.n_synapses] * done)   # ... or before synapse counts were
    if setup.brake is not None and "brake_actions" in g.attrs:
        setup.brake.actions = json.loads(g.attrs["brake_actions"])
    return hist, done


# ------------------------------------------------------------------ the run
@dataclass
class LearnSummary:
    path: Path
    status: str
    epochs_done: int
    history: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    resumed_from: int | None = None
    wall_time: float = 0.0

    def lines(self) -> list[str]:
        h = self.history
        out = [f"{self.path}: {self.status}, {self.epochs_done} epochs"]
        if self.resumed_from is not None:
            out.append(f"  resumed after epoch {self.resumed_from}")
        if h.get("test_accuracy"):
            best = int(np.argmax(h["test_accuracy"]))
            out.append(f"  tissue: train {h['train_accuracy'][-1]:.3f}, test {h['test_accuracy'][-1]:.3f} "
                       f"(best {h['test_accuracy'][best]:.3f} at epoch {best})")
        for k, v in self.extras.items():
            out.append(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
        out.append(f"  wall time {self.wall_time:.1f} s")
        return out


def run_learning(cfg, out, resume: bool = False, progress: bool = True, echo=None) -> LearnSummary:
    """Train, evaluate and record a learning config into the store ``out`` (see the module doc).
    The caller (:func:`studies.run.run`) has checked ``out`` and the resume rules."""
    t0 = time.perf_counter()
    out = Path(out)
    setup = build_learning(cfg)
    lc = cfg.learning
    canonical = cfg.to_dict()
    resumed_from = None
    built_synapses = setup.tissue.syn.n_synapses          # before a resumed run loads its (pruned) tissue
    n_weights = trainable_synapses(setup.tissue)
    if resume and (out / "zarr.json").is_file():
        hist, done = _load_checkpoint(out, setup)
        resumed_from = done
        created = zarr.open_group(out, mode="r").attrs.get("created")
    else:
        if out.exists():
            shutil.rmtree(out)
        hist, done = {k: [] for k in _HIST}, 0
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    base = {
        "title": f"neural-tissue learning run {cfg.name!r}", "kind": "learning", "name": cfg.name,
        "config": canonical, "seed": cfg.seed, "package": "neural-tissue", "package_version": package_version(),
        "created": created, "status": "running", "n_weights": n_weights, "n_neurons": int(setup.tissue.alive.sum()),
        "synapses": built_synapses,
    }
    if (out / "zarr.json").is_file():
        zarr.open_group(out, mode="a").update_attributes(_jsonable(base))
    else:   # the group and its config in one write: a kill never leaves a store without its config
        zarr.create_group(out, attributes=_jsonable(base))
    t, task, eng, tr = setup.tissue, setup.task, setup.engine, setup.trainer
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=lc.epochs, initial=done, desc="epochs", unit="epoch")
    try:
        for epoch in range(done, lc.epochs):
            prune_while_learning(setup, lc, epoch, built_synapses)
            n_brakes = 0 if setup.brake is None else len(setup.brake.actions)
            extra = {} if setup.targets is None else {"targets": setup.targets}
            rep = tr.fit_epoch(t, eng, setup.xtr, task.y_train, epoch=epoch, progress=progress, epochs=lc.epochs,
                               **extra)
            ta = tr.averaged(t)          # the tissue itself unless [learning] average
            ev = tr.evaluate(ta, eng, setup.xte, task.y_test)
            hist["train_accuracy"].append(rep["accuracy"])
            hist["loss"].append(rep["loss"])
            hist["test_accuracy"].append(ev["accuracy"])
            hist["test_loss"].append(ev["loss"])
            hist["epoch_seconds"].append(rep["seconds"])
            hist["brakes"].append(0 if setup.brake is None else len(setup.brake.actions) - n_brakes)
            hist["synapses"].append(t.syn.n_synapses)
            hist["probe"].append(eng.settle(ta, inputs=setup.xte[:PROBES]).rates.astype(np.float32))
            _save_checkpoint(out, "ab"[epoch % 2], setup, hist, epoch + 1)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(train=f"{rep['accuracy']:.3f}", test=f"{ev['accuracy']:.3f}")
            elif echo is not None:
                echo(f"epoch {epoch}: train {rep['accuracy']:.3f} test {ev['accuracy']:.3f} "
                     f"loss {rep['loss']:.3f} ({rep['seconds']:.1f} s)")
    finally:
        if bar is not None:
            bar.close()
    avg = tr.averaged(t)
    if avg is not t:        # keep the averaged tissue, the one whose accuracy was recorded
        t.syn.w[...], t.bias[...] = avg.syn.w, avg.bias
    extras = _final_measures(cfg, setup, out, hist)
    save_tissue(t, out)
    root = zarr.open_group(out, mode="a")   # (writing the Dataset replaced the root attributes)
    ck = {"ckpt_slot": "ab"[(lc.epochs - 1) % 2], "epochs_done": lc.epochs}
    root.update_attributes(_jsonable({
        **base, **ck, "status": "complete", "wall_time_s": round(time.perf_counter() - t0, 3),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extras}))
    return LearnSummary(out, "complete", lc.epochs, hist, extras, resumed_from, time.perf_counter() - t0)


def _final_measures(cfg, setup: LearnSetup, out: Path, hist: dict) -> dict:
    """Settling-time uncertainty, gradient alignment and baselines; writes the results Dataset."""
    t, task, eng, tr, lc = setup.tissue, setup.task, setup.engine, setup.trainer, cfg.learning
    ev = tr.evaluate(t, eng, setup.xte, task.y_test)
    wrong = ev["pred"] != task.y_test
    data = {
        "train_accuracy": ("epoch", np.array(hist["train_accuracy"]),
                           {"long_name": "training accuracy during the epoch (free phase)", "units": "1"}),
        "test_accuracy": ("epoch", np.array(hist["test_accuracy"]),
                          {"long_name": "held-out accuracy after the epoch", "units": "1"}),
        "loss": ("epoch", np.array(hist["loss"]), {"long_name": "mean training cost C at the free fixed point",
                                                   "units": "1"}),
        "test_loss": ("epoch", np.array(hist["test_loss"]), {"long_name": "mean held-out cost C", "units": "1"}),
        "epoch_seconds": ("epoch", np.array(hist["epoch_seconds"]),
                          {"long_name": "wall time of the training epoch", "units": "s"}),
        "brakes": ("epoch", np.array(hist["brakes"], dtype=np.int64),
                   {"long_name": "homeostatic weight rescalings in the epoch", "units": "1"}),
        "synapses": ("epoch", np.array(hist["synapses"], dtype=np.int64),
                     {"long_name": "synapses in the tissue after the epoch ([learning] prune_target: fewer)",
                      "units": "1"}),
        "test_steps": ("sample", ev["steps"], {"long_name": "free-phase settling steps", "units": "1"}),
        "probe_label": ("trial", task.y_test[:PROBES], {"long_name": "class of the probe digit", "units": "1"}),
        "test_converged": ("sample", ev["converged"], {"long_name": "free phase reached tol"}),
        "test_pred": ("sample", ev["pred"], {"long_name": "predicted class", "units": "1"}),
        "test_label": ("sample", task.y_test, {"long_name": "true class", "units": "1"}),
    }
    if setup.styles is not None:
        data["train_style"] = ("train_sample", setup.styles, {
            "long_name": "style of each training image within its class (k-means; [task] styles)", "units": "1"})
    extras = {"test_accuracy": float(ev["accuracy"]),
              "synapses_final": int(t.syn.n_synapses),
              "train_samples_per_s": float(len(setup.xtr) / np.median(hist["epoch_seconds"]))
              if hist["epoch_seconds"] else float("nan"),
              "auroc_misclassified": auroc(ev["steps"], wrong)}
    if lc.blends:
        bx, _ = blend_pairs(task.x_test, task.y_test, lc.blends, seed=cfg.seed)
        imap = InputMap(t.lattice, task.image_shape, "z-", cfg.task.upsample, encoding=cfg.task.encoding)
        bev = tr.evaluate(t, eng, imap(bx, tissue=t), np.zeros(len(bx), dtype=np.int64))
        data["blend_steps"] = ("blend", bev["steps"], {"long_name": "free-phase settling steps of 50/50 "
                                                                     "blends of two classes", "units": "1"})
        steps = np.concatenate([ev["steps"], bev["steps"]])
        is_blend = np.r_[np.zeros(len(ev["steps"]), bool), np.ones(len(bev["steps"]), bool)]
        extras["auroc_blend"] = auroc(steps, is_blend)
    if lc.alignment_samples:
        k = min(lc.alignment_samples, len(setup.xte))
        t64 = as_float64(t)
        tight = Langevin(dt=cfg.dynamics.dt, tol=1e-9, max_steps=100_000)
        curve = alignment_curve(t64, tight, setup.xte[:k], task.y_test[:k], ALIGN_BETAS, trainer=tr)
        slabs = sorted({s for v in curve.values() for s in v if s != "all"})
        cos = np.full((2, len(ALIGN_BETAS), len(slabs) + 1), np.nan)
        for a, kind in enumerate(("symmetric", "one-sided")):
            for b, beta in enumerate(ALIGN_BETAS):
                c = curve[(kind, float(beta))]
                cos[a, b, 0] = c["all"]
                for s_i, s in enumerate(slabs):
                    cos[a, b, s_i + 1] = c.get(s, np.nan)
        data["alignment"] = (("nudging", "beta", "slab"), cos, {
            "long_name": "cosine between the EqProp update and -dL/dW (implicit differentiation)",
            "units": "1", "comment": "slab -1: the whole table; slab z: synapse rows of neurons at z"})
        extras["alignment_symmetric_beta_0.01_min_slab"] = float(np.nanmin(cos[0, ALIGN_BETAS.index(0.01), 1:]))
        coords_align = {"nudging": np.array(["symmetric", "one-sided"], dtype=object), "beta": list(ALIGN_BETAS),
                        "slab": [-1] + slabs}
    else:
        coords_align = {}
    if cfg.baselines is not None:
        from .baselines import logistic_baseline, mlp_baseline

        rows = []
        if cfg.baselines.mlp:
            rows.append(("mlp", mlp_baseline(task, trainable_synapses(t), seed=cfg.seed)))
        if cfg.baselines.logistic:
            rows.append(("logistic", logistic_baseline(task, seed=cfg.seed)))
        if rows:
            names = [r[0] for r in rows]
            data["baseline_test_accuracy"] = ("baseline", [r[1].test_accuracy for r in rows],
                                              {"long_name": "held-out accuracy", "units": "1"})
            data["baseline_train_accuracy"] = ("baseline", [r[1].train_accuracy for r in rows],
                                               {"long_name": "training accuracy", "units": "1"})
            data["baseline_n_weights"] = ("baseline", [int(r[1].n_weights) for r in rows],
                                          {"long_name": "trainable weights (biases excluded)", "units": "1"})
            coords_align["baseline"] = np.array(names, dtype=object)
            for n, r in rows:
                extras[f"{n}_test_accuracy"] = float(r.test_accuracy)
    if len(hist["probe"]) == len(hist["test_accuracy"]):
        probe = np.stack(hist["probe"]).astype(np.float32)
        data["probe_activation"] = (("epoch", "trial", "x", "y", "z"),
                                    probe.reshape(probe.shape[:2] + t.lattice.shape), {
            "long_name": "free fixed point of the first held-out digits after each epoch", "units": "1"})
        data["alive"] = (("x", "y", "z"), t.lattice.grid(t.alive).astype(np.uint8))
        data["role"] = (("x", "y", "z"), t.lattice.grid(t.role))
    coords = {"epoch": np.arange(len(hist["test_accuracy"])), "sample": np.arange(len(task.y_test)), **coords_align}
    coords.update({"trial": np.arange(min(PROBES, len(task.y_test)))})
    if "blend_steps" in data:
        coords["blend"] = np.arange(lc.blends)
    xr.Dataset(data, coords=coords).to_zarr(out, mode="a", consolidated=False)
    return extras


def plot_learning_curves(ds, path, title: str = "") -> Path:
    """Train and test accuracy per epoch, with the baselines as horizontal lines (matplotlib PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ep = ds.epoch.values + 1
    ax.plot(ep, ds.train_accuracy.values, "o-", ms=3, label="tissue, train (during the epoch)")
    ax.plot(ep, ds.test_accuracy.values, "s-", ms=3, label="tissue, held-out")
    if "baseline_test_accuracy" in ds:
        for name, acc in zip(ds.baseline.values, ds.baseline_test_accuracy.values):
            ax.axhline(float(acc), ls="--", lw=1, color="k" if str(name) == "mlp" else "gray",
                       label=f"{'MLP, backprop' if str(name) == 'mlp' else 'logistic regression'} "
                             f"(same split), held-out {float(acc):.3f}")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
