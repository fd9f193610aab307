"""The damage-and-recovery study behind ``tissue run`` for configs with ``[lesion]``, ``[structural]``
or ``[recovery]`` (``configs/lesion-recovery.toml``).

1. **A trained tissue.** With ``[recovery] trained`` (a learning-run store, e.g.
   ``learn-seed{seed}.zarr``; ``{seed}`` is replaced by ``seed``) the trained
   tissue is loaded from it, after checking that the store's config has the same
   ``seed``, ``[tissue]``, ``[task]``, ``[learning]`` and ``[dynamics]`` as this
   one (the task and its split are rebuilt from them). Without it the tissue is
   trained here for ``[learning] epochs`` epochs (as ``studies.learn`` does, with
   no checkpoints). ``A0``: its held-out accuracy.
2. **Accuracy against damage** (before any retraining): ``[lesion] curve_points``
   shares of hidden neurons from 0 to ``curve_max`` killed at random (nested: one
   seeded permutation), for the tissue and, with ``[recovery] mlp``, for a
   backprop MLP with as many weights trained on the same split (hidden units
   ablated, :func:`studies.baselines.ablate_mlp_hidden`).
3. **The lesion** of ``[lesion]`` (random, ball, slab, synapses or weight noise;
   :mod:`tissue.lesions`), recorded in a :class:`tissue.lesions.LesionLog`.
   ``A1``: the accuracy right after it.
4. **Recovery**: for each of ``[recovery] arms`` a copy of the lesioned tissue
   keeps learning for ``epochs`` epochs with a fresh EqProp trainer (learning
   rate ``[recovery] lr``, constant or decaying along half a cosine to
   ``[learning] lr_final`` of it: ``[recovery] schedule``) under the multi-timescale
   :class:`plasticity.structural.Scheduler` (``learn``: no structural edits;
   ``neurogenesis``: births; ``structural``: pruning, growth and births, with the
   rates of ``[structural]``); ``A(t)`` is measured ``evals_per_epoch`` times per
   epoch. The MLP loses the same share of its hidden units (for neuron lesions)
   and is retrained epoch by epoch (``partial_fit``). With ``[recovery] control``
   an arm ``control`` runs the ``learn`` arm's learning on the *unlesioned*
   trained tissue: continued learning moves the accuracy by itself (a fresh Adam
   steps every weight by about ``lr``), and each arm's share won back is also
   given against the control's accuracy at the same time
   (``<arm>_recovered_vs_control_epoch<e>``).
5. **Pruning** (``[recovery] prune_target > 0``): a copy of the *trained* tissue
   learns for ``prune_epochs`` epochs while silent synapses are pruned (at most
   ``prune_target`` of them in all); with ``[recovery] prune_mode = "oneshot"`` the
   ``prune_target`` share of smallest saliency goes at once (the free fixed points
   of the training set give the rates of ``prune_by = "activity"``), and the tissue
   then fine-tunes for ``prune_epochs`` epochs (``prune_oneshot_accuracy``: right
   after the cut).
6. **Graph metrics** (:func:`tissue.graph.damage_metrics`) of the trained, the
   lesioned, each recovered and the pruned tissue.

Results Dataset (``tissue.open_run(store)``)::

    accuracy            (arm, epoch)       held-out accuracy during recovery (epoch 0: A1);
                                           arms: learn | neurogenesis | structural | control | mlp
    synapses, neurons   (arm, epoch)       living synapses and neurons (tissue arms)
    curve_accuracy      (model, damage)    accuracy against the share of hidden neurons killed
    accuracy_before     (model)            A0 (model: tissue, mlp)
    accuracy_lesioned   (model)            A1
    graph_<metric>      (stage)            tissue.graph.METRICS at stage trained | lesioned |
                                           recovered_<arm> | pruned
    log_neurons, log_synapses, log_noise (lesion)   the LesionLog; its kind, when and params as JSON
                                           in the root attribute lesion_log
    lesioned_by         (x, y, z)          which lesion killed the voxel (-1: none)
    alive_after, born   (arm, x, y, z)     living voxels after recovery; structural step of each birth
                                           (-1: not born)
    prune_accuracy, prune_synapses  (prune_step)   the pruning experiment, per evaluation
    train_test_accuracy (train_epoch)      when the tissue was trained here
    tissue/, lesioned/, recovered_<arm>/, pruned/   the tissues (tissue.load_tissue(store, group))
    attrs: config, status, figures (A0, A1, per arm: accuracy after each epoch, recovered share
           of the lost accuracy, epochs to reach A0 - 1 point; MLP; pruning)

Resume: the study is not checkpointed inside; ``--resume`` of an unfinished
store starts it again from the beginning (a complete store is left alone by
:func:`studies.run.run`), so a sweep job lost with its worker is simply redone.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import zarr

from plasticity import EqProp
from plasticity.structural import Scheduler, StructuralPlasticity
from tissue import HIDDEN, OUTPUT, load_tissue, save_tissue
from tissue.graph import METRICS, damage_metrics
from tissue.lesions import (
    LesionLog,
    cut_synapses,
    kill_ball,
    kill_fraction,
    kill_slab,
    weight_noise,
)
from tissue.records import _jsonable, package_version
from .learn import training_rates   # the rates at the training digits (also used here)

__all__ = ["apply_lesion", "demo_step", "epochs_to_reach", "load_trained", "plot_damage_curve",
           "plot_recovery", "recovered_share", "run_recovery"]

_LESION, _STRUCT, _RECOVER, _REPLICATE = 51, 52, 53, 54   # derived-seed tags


# ------------------------------------------------------------------ pieces
def recovered_share(a0: float, a1: float, a: float) -> float:
    """``(a - a1) / (a0 - a1)``: the share of the lost accuracy won back (NaN when nothing was lost)."""
    lost = a0 - a1
    return float((a - a1) / lost) if lost > 1e-12 else float("nan")


def epochs_to_reach(t, acc, level: float) -> float:
    """The first time ``t[k]`` at which ``acc[k] >= level`` (NaN if never)."""
    hit = np.flatnonzero(np.asarray(acc) >= level - 1e-12)
    return float(np.asarray(t)[hit[0]]) if len(hit) else float("nan")


def apply_lesion(tissue, lc, seed: int, log=None, when: str = "lesion"):
    """Apply the ``[lesion]`` section ``lc`` to ``tissue``; returns the :class:`tissue.lesions.Lesion`."""
    if lc.kind == "random":
        return kill_fraction(tissue, lc.fraction, seed=seed, roles=lc.roles, log=log, when=when)
    if lc.kind == "ball":
        center = lc.center if lc.center is not None else tuple((n - 1) / 2 for n in tissue.lattice.shape)
        return kill_ball(tissue, center, lc.radius, roles=lc.roles, log=log, when=when)
    if lc.kind == "slab":
        return kill_slab(tissue, lc.axis, lc.lo, lc.hi, roles=lc.roles, log=log, when=when)
    if lc.kind == "synapses":
        return cut_synapses(tissue, lc.fraction, seed=seed, log=log, when=when)
    return weight_noise(tissue, lc.noise, seed=seed, log=log, when=when)


def _learning_part(cfg_dict: dict) -> dict:
    """The sections of a config that decide its trained tissue. Without pruning while learning
    (``prune_target`` 0) the other ``prune_*`` keys of ``[learning]`` decide nothing, so a store
    trained under another default ``prune_by`` holds the same tissue and is not refused for it."""
    part = {k: cfg_dict.get(k) for k in ("seed", "tissue", "task", "learning", "dynamics")}
    lc = part["learning"]
    if isinstance(lc, dict) and not lc.get("prune_target"):
        part["learning"] = {k: v for k, v in lc.items() if not k.startswith("prune_") or k == "prune_target"}
    return part


def load_trained(cfg, setup) -> str:
    """Put the tissue of ``[recovery] trained`` into ``setup`` (see the module doc); returns its path.

    Raises
    ------
    studies.run.RunRefused
        The store is missing, holds no trained tissue, or was trained with another config.
    """
    from .config import load_config
    from .run import RunRefused, _first_difference

    path = Path(cfg.recovery.trained.format(seed=cfg.seed))
    if not (path / "zarr.json").is_file():
        raise RunRefused(f"[recovery] trained: {path} is not a run store; train it first with `tissue run "
                         f"LEARN.toml --out {path}`, LEARN.toml having this run's seed ({cfg.seed}), [tissue] "
                         f"(shape {list(cfg.tissue.shape)}), [task], [learning] and [dynamics] (for the shipped "
                         f"study: configs/learn-digits-16.toml), or remove the key to train inside this run")
    attrs = dict(zarr.open_group(path, mode="r").attrs)
    if attrs.get("status") != "complete" or "config" not in attrs:
        raise RunRefused(f"[recovery] trained: {path} is not a complete learning run "
                         f"(status {attrs.get('status')!r}; finish it with `tissue run ... --out {path} --resume`)")
    stored = attrs["config"]
    stored = json.loads(stored) if isinstance(stored, str) else stored
    stored = _learning_part(json.loads(json.dumps(load_config(stored).to_dict())))
    given = _learning_part(json.loads(json.dumps(cfg.to_dict())))
    if stored != given:
        raise RunRefused(f"[recovery] trained: {path} was trained with another config (differs at "
                         f"{_first_difference(stored, given)})")
    t = load_tissue(path)
    if t.lattice.shape != setup.tissue.lattice.shape or not np.array_equal(t.role, setup.tissue.role):
        raise RunRefused(f"[recovery] trained: {path} holds a tissue of another layout")
    setup.tissue.syn, setup.tissue.bias, setup.tissue.alive = t.syn, t.bias, t.alive
    return str(path)


def trained_optimizer_state(path, tissue) -> dict:
    """The optimizer arrays (``opt_*``) a learning-run store ended with, for ``tissue`` (its
    trained tissue); the store's last checkpoint must hold the same synapse table."""
    from .run import RunRefused

    root = zarr.open_group(path, mode="r")
    slot = root.attrs.get("ckpt_slot")
    if slot is None or f"ckpt_{slot}" not in root:
        raise RunRefused(f"[recovery] warm_optimizer: {path} keeps no optimizer state")
    ck = load_tissue(path, group=f"ckpt_{slot}")
    if not np.array_equal(ck.syn.nbr, tissue.syn.nbr):
        raise RunRefused(f"[recovery] warm_optimizer: the last checkpoint of {path} holds another synapse table")
    g = root[f"ckpt_{slot}"]
    return {k: g[k][...] for k in g.array_keys() if k.startswith("opt_") and "particle" not in k}


def warm_start(trainer, tissue, state: dict, nbr0: np.ndarray, alive0: np.ndarray) -> None:
    """Give ``trainer`` the optimizer ``state`` of the table ``nbr0`` (living neurons ``alive0``),
    moved to ``tissue``'s table: each synapse keeps its moments, synapses that are gone lose
    theirs, per-neuron moments of neurons that died are reset."""
    from plasticity.structural import remap_slots

    arrays = {"opt_t": state["opt_t"]}
    for k in ("m", "v"):
        if f"opt_{k}" in state:
            arrays[f"opt_{k}"] = remap_slots(np.asarray(state[f"opt_{k}"]), nbr0, tissue.syn.nbr)
    same = np.asarray(alive0) == tissue.alive
    for k in ("mb", "vb"):
        if f"opt_{k}" in state:
            arrays[f"opt_{k}"] = np.where(same, np.asarray(state[f"opt_{k}"]), 0.0)
    trainer.import_state(tissue, arrays)


def _stream(cfg, *tags) -> int:
    """The seed of a recovery stream (trainer order, structural rules): that of ``cfg.seed``, or for
    ``[recovery] replicate`` r > 0 an independent one of the same seed."""
    from .run import derived_seed

    r = cfg.recovery.replicate
    return derived_seed(cfg.seed, *tags) if r == 0 else derived_seed(cfg.seed, _REPLICATE, r, *tags)


def _accuracy(setup, tissue) -> float:
    return float(setup.trainer.evaluate(tissue, setup.engine, setup.xte, setup.task.y_test)["accuracy"])


def _recovery_trainer(cfg, setup, seed: int) -> EqProp:
    lc = cfg.learning
    lr = lc.lr if cfg.recovery.lr is None else cfg.recovery.lr
    return EqProp(beta=lc.beta, symmetric=lc.symmetric, lr=lr, lr_bias=lc.lr_bias, depth_lr=lc.depth_lr,
                  optimizer=cfg.recovery.optimizer or lc.optimizer, batch_size=lc.batch_size,
                  persistent=lc.persistent,
                  nudged_steps=lc.nudged_steps, target_on=lc.target_on, target_off=lc.target_off, cost=lc.cost,
                  tau=lc.tau, schedule=cfg.recovery.schedule, lr_final=lc.lr_final, weight_clip=lc.weight_clip,
                  weight_decay=lc.weight_decay, average=cfg.recovery.average, dropout=lc.dropout,
                  brake=setup.brake, seed=seed)


def _prune_rules(s) -> dict:
    """The pruning keys of ``[structural]`` ``s`` as :class:`StructuralPlasticity` arguments."""
    return dict(prune_weight=s.prune_weight, prune_dw=s.prune_dw, prune_max=s.prune_max, prune_by=s.prune_by,
                rate_decay=s.rate_decay, dw_decay=s.dw_decay)


def _birth_rules(s) -> dict:
    """The neurogenesis keys of ``[structural]`` ``s`` (every ``birth_*`` key and ``juvenile_steps``)
    as :class:`StructuralPlasticity` arguments of the same names."""
    keys = [f.name for f in dataclasses.fields(s) if f.name.startswith("birth_")] + ["juvenile_steps"]
    return {k: getattr(s, k) for k in keys}


def _structural(cfg, arm: str, seed: int) -> StructuralPlasticity | None:
    if arm == "learn":
        return None
    s = cfg.structural
    full = arm == "structural"
    return StructuralPlasticity(
        prune=full, **_prune_rules(s),
        grow=full, grow_radius=s.grow_radius, grow_quantile=s.grow_quantile, grow_max=s.grow_max,
        grow_weight=s.grow_weight, neurogenesis=True, **_birth_rules(s), nudge_decay=s.nudge_decay, seed=seed)


def _learn_curve(cfg, setup, tissue, sched: Scheduler, epochs: int, evals: int, progress: bool, label: str,
                 echo=None, targets=None):
    """Train ``epochs`` epochs under ``sched``; returns ``(t, acc, synapses, neurons)`` lists,
    measured at t = 0 and ``evals`` times per epoch (after batch ``round(k n_batches / evals)``).
    With ``[recovery] average`` the accuracy is that of the averaged weights, and ``tissue`` ends
    with them. ``targets`` (``(n_train, n_outputs)``): output targets instead of the one-hot classes
    (default: the class-and-style targets of a ``[task] styles`` tissue, else the one-hot classes)."""
    if targets is None and setup.targets is not None:
        # the codes the tissue was trained on, on the output voxels still alive (a lesion may kill some)
        out_all = np.flatnonzero(tissue.role == OUTPUT)
        targets = setup.targets[:, np.searchsorted(out_all, tissue.region("output"))]
    ts, acc, syn, neu = [], [], [], []

    def measure(t):
        ts.append(float(t))
        acc.append(_accuracy(setup, sched.trainer.averaged(tissue)))   # the tissue itself unless averaging
        syn.append(tissue.syn.n_synapses)
        neu.append(int(tissue.alive.sum()))

    measure(0.0)
    for e in range(epochs):
        def cb(done, n_batches, e=e):
            marks = {max(1, round(k * n_batches / evals)): k for k in range(1, evals + 1)}
            if done in marks:
                measure(e + marks[done] / evals)

        sched.fit_epoch(tissue, setup.xtr, setup.task.y_train, epoch=e, progress=progress, callback=cb,
                        epochs=epochs, targets=targets)
        if echo is not None:
            echo(f"  {label}: epoch {e + 1}: accuracy {acc[-1]:.4f}, synapses {syn[-1]}, neurons {neu[-1]}")
    avg = sched.trainer.averaged(tissue)
    if avg is not tissue:                 # keep the averaged tissue, the one that was measured
        tissue.syn.w[...], tissue.bias[...] = avg.syn.w, avg.bias
    return ts, acc, syn, neu


def _epoch_grid(epochs: int, evals: int) -> np.ndarray:
    return np.round(np.arange(epochs * evals + 1) / evals, 6)


# ------------------------------------------------------------------ the run
def run_recovery(cfg, out, resume: bool = False, progress: bool = True, echo=None):
    """Run a damage-and-recovery config into the store ``out`` (see the module doc).

    The caller (:func:`studies.run.run`) has checked ``out`` and the resume rules; an
    unfinished store is started again. Returns a :class:`studies.run.StudySummary`
    whose ``figures`` are the headline numbers.
    """
    import xarray as xr

    from .baselines import ablate_mlp_hidden, mlp_baseline, mlp_retrain_curve
    from .learn import build_learning, cut_least_salient, trainable_synapses
    from .run import StudySummary, derived_seed

    t0 = time.perf_counter()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)   # a new run, --overwrite, or an unfinished one started again
    canonical = cfg.to_dict()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    base = {"title": f"neural-tissue damage and recovery run {cfg.name!r}", "kind": "recovery",
            "name": cfg.name, "config": canonical, "seed": cfg.seed, "package": "neural-tissue",
            "package_version": package_version(), "created": created, "status": "running"}
    zarr.create_group(out, attributes=_jsonable(base))   # the config in the store's first write
    say = echo if (echo is not None and not progress) else None
    les, rc = cfg.lesion, cfg.recovery
    setup = build_learning(cfg)
    data, coords, figures = {}, {}, {}

    # 1. the trained tissue
    if rc.trained is not None:
        figures["trained_from"] = load_trained(cfg, setup)
    else:
        hist = []
        for e in range(cfg.learning.epochs):
            setup.trainer.fit_epoch(setup.tissue, setup.engine, setup.xtr, setup.task.y_train, epoch=e,
                                    progress=progress, epochs=cfg.learning.epochs, targets=setup.targets)
            hist.append(_accuracy(setup, setup.tissue))
            if say:
                say(f"  training: epoch {e + 1}: accuracy {hist[-1]:.4f}")
        data["train_test_accuracy"] = ("train_epoch", np.array(hist),
                                       {"long_name": "held-out accuracy while training (before the lesion)",
                                        "units": "1"})
        coords["train_epoch"] = np.arange(1, len(hist) + 1)
    trained = setup.tissue
    opt0 = None
    if rc.warm_optimizer:
        opt0 = (trained_optimizer_state(figures["trained_from"], trained) if rc.trained is not None
                else setup.trainer.export_state())
        opt0 = (opt0, trained.syn.nbr.copy(), trained.alive.copy())
    a0 = _accuracy(setup, trained)
    stages = {"trained": damage_metrics(trained)}
    lesion_seed = derived_seed(cfg.seed, _LESION)
    n_hidden = int(((trained.role == HIDDEN) & trained.alive).sum())
    mlp = None
    if rc.mlp:
        mlp = mlp_baseline(setup.task, trainable_synapses(trained), seed=cfg.seed)

    # 2. accuracy against damage, before retraining
    if les.curve_max > 0:
        fr = np.round(np.linspace(0.0, les.curve_max, les.curve_points), 6)
        curve = np.full((2, len(fr)), np.nan)
        for k, f in enumerate(fr):
            t = trained.copy()
            kill_fraction(t, float(f), seed=lesion_seed)
            curve[0, k] = _accuracy(setup, t)
            if mlp is not None:
                m = ablate_mlp_hidden(mlp.model, float(f), seed=lesion_seed)
                curve[1, k] = m.score(setup.task.x_test, setup.task.y_test)
            if say:
                say(f"  damage {f:.2f}: tissue {curve[0, k]:.4f}, mlp {curve[1, k]:.4f}")
        data["curve_accuracy"] = (("model", "damage"), curve, {
            "long_name": "held-out accuracy with a share of hidden neurons (units) killed at random, "
                         "before retraining", "units": "1"})
        coords["damage"] = fr

    # 3. the lesion
    log = LesionLog()
    lesioned = trained.copy()
    rec = apply_lesion(lesioned, les, lesion_seed, log, when=f"after training, seed {cfg.seed}")
    a1 = _accuracy(setup, lesioned)
    stages["lesioned"] = damage_metrics(lesioned)
    killed_hidden = int(np.sum(trained.role[rec.voxels] == HIDDEN))
    figures.update(A0=a0, A1=a1, lesion_neurons=rec.n_neurons, lesion_synapses=rec.n_synapses,
                   lesion_hidden_share=killed_hidden / n_hidden if n_hidden else float("nan"))
    if say:
        say(f"  A0 {a0:.4f}; lesion {les.kind}: {rec.n_neurons} neurons, {rec.n_synapses} synapses; A1 {a1:.4f}")

    # 4. recovery
    grid = _epoch_grid(rc.epochs, rc.evals_per_epoch)
    tissue_arms = list(rc.arms) + (["control"] if rc.control else [])
    arms = tissue_arms + (["mlp"] if mlp is not None else [])
    acc = np.full((len(arms), len(grid)), np.nan)
    n_syn = np.full((len(arms), len(grid)), np.nan)
    n_neu = np.full((len(arms), len(grid)), np.nan)
    shape = trained.lattice.shape
    alive_after = np.zeros((len(arms),) + shape, np.uint8)
    born = np.full((len(arms),) + shape, -1, np.int64)
    recovered = {}
    for a, arm in enumerate(tissue_arms):
        t = trained.copy() if arm == "control" else lesioned.copy()
        sp = None if arm == "control" else _structural(cfg, arm, _stream(cfg, _STRUCT, a))
        trainer = _recovery_trainer(cfg, setup, _stream(cfg, _RECOVER))
        if opt0 is not None:
            warm_start(trainer, t, *opt0)
        sched = Scheduler(trainer, setup.engine, sp, every=cfg.structural.every, brake=setup.brake,
                          homeostasis_every=cfg.structural.homeostasis_every)
        ts, ac, sy, ne = _learn_curve(cfg, setup, t, sched, rc.epochs, rc.evals_per_epoch, progress, arm, say)
        acc[a], n_syn[a], n_neu[a] = ac, sy, ne
        alive_after[a] = trained.lattice.grid(t.alive)
        if sp is not None and sp.born is not None:
            born[a] = trained.lattice.grid(sp.born)
        if arm != "control":
            stages[f"recovered_{arm}"] = damage_metrics(t)
            recovered[arm] = t
    if mlp is not None:
        a = len(arms) - 1
        f_mlp = figures["lesion_hidden_share"] if les.kind in ("random", "ball", "slab") else float("nan")
        if np.isfinite(f_mlp):
            m = ablate_mlp_hidden(mlp.model, f_mlp, seed=lesion_seed)
            curve_m = mlp_retrain_curve(m, setup.task, rc.epochs)
            on_grid = np.searchsorted(grid, curve_m["epoch"].astype(float))
            acc[a, on_grid] = curve_m["test_accuracy"]
            figures.update(mlp_A0=float(mlp.test_accuracy), mlp_A1=float(curve_m["test_accuracy"][0]))
    for a, arm in enumerate(arms):
        if not np.isfinite(acc[a, 0]):
            continue
        base0 = figures["mlp_A0"] if arm == "mlp" else a0
        on_epochs = [acc[a, int(np.searchsorted(grid, e))] for e in range(1, rc.epochs + 1)]
        for e, v in enumerate(on_epochs, 1):
            figures[f"{arm}_accuracy_epoch{e}"] = float(v)
            if arm != "control":     # the control lost nothing: no share, and it starts at A0
                figures[f"{arm}_recovered_epoch{e}"] = recovered_share(base0, acc[a, 0], v)
        if arm != "control":
            figures[f"{arm}_epochs_to_A0_minus_1pt"] = epochs_to_reach(grid, acc[a], base0 - 0.01)
        if rc.control and arm not in ("control", "mlp"):
            ctrl = acc[arms.index("control")]
            for e in range(1, rc.epochs + 1):
                k = int(np.searchsorted(grid, e))
                figures[f"{arm}_recovered_vs_control_epoch{e}"] = recovered_share(ctrl[k], acc[a, 0], acc[a, k])

    data["accuracy"] = (("arm", "epoch"), acc, {"long_name": "held-out accuracy during recovery "
                                                "(epoch 0: right after the lesion)", "units": "1"})
    data["synapses"] = (("arm", "epoch"), n_syn, {"long_name": "synapses of the tissue", "units": "1"})
    data["neurons"] = (("arm", "epoch"), n_neu, {"long_name": "living neurons of the tissue", "units": "1"})
    data["alive_after"] = (("arm", "x", "y", "z"), alive_after, {"long_name": "living neuron after recovery"})
    data["born"] = (("arm", "x", "y", "z"), born, {
        "long_name": "structural step at which a neuron was born in the voxel (-1: not born)", "units": "1"})
    data["accuracy_before"] = ("model", [a0, figures.get("mlp_A0", np.nan)],
                               {"long_name": "held-out accuracy before the lesion (A0)", "units": "1"})
    data["accuracy_lesioned"] = ("model", [a1, figures.get("mlp_A1", np.nan)],
                                 {"long_name": "held-out accuracy right after the lesion (A1)", "units": "1"})
    coords.update(arm=np.array(arms, dtype=object), epoch=grid, model=np.array(["tissue", "mlp"], dtype=object))

    # 5. pruning
    pruned = None
    if rc.prune_target > 0:
        pruned = trained.copy()
        m0 = trainable_synapses(pruned)
        sp = StructuralPlasticity(prune=True, grow=False, neurogenesis=False, **_prune_rules(cfg.structural),
                                  prune_budget=int(round(rc.prune_target * pruned.syn.n_synapses)))
        total0 = pruned.syn.n_synapses
        rates0 = training_rates(setup, pruned) if rc.prune_teacher else None
        # with prune_teacher the pruned tissue learns to give the trained tissue's own answers
        teacher = rates0[:, pruned.region("output")] if rc.prune_teacher else None
        if rc.prune_mode == "oneshot":   # (cut_least_salient measures the rates a ranking needs, if not given)
            cut_least_salient(setup, pruned, sp.prune_budget, sp.prune_by, rates0)
            figures["prune_oneshot_accuracy"] = _accuracy(setup, pruned)
            if say:
                say(f"  pruning: {total0 - pruned.syn.n_synapses} synapses removed at once: accuracy "
                    f"{figures['prune_oneshot_accuracy']:.4f}")
            sp = None        # then fine-tuning alone
        trainer = _recovery_trainer(cfg, setup, _stream(cfg, _RECOVER, 1))
        if opt0 is not None:
            warm_start(trainer, pruned, *opt0)   # from the trained table
        sched = Scheduler(trainer, setup.engine, sp, every=cfg.structural.every, brake=setup.brake,
                          homeostasis_every=cfg.structural.homeostasis_every)
        ts, ac, sy, _ = _learn_curve(cfg, setup, pruned, sched, rc.prune_epochs, rc.evals_per_epoch, progress,
                                     "pruning", say, targets=teacher)
        data["prune_accuracy"] = ("prune_step", np.array(ac), {"long_name": "held-out accuracy while pruning",
                                                               "units": "1"})
        data["prune_synapses"] = ("prune_step", np.array(sy, dtype=np.float64) / total0,
                                  {"long_name": "share of the trained tissue's synapses left", "units": "1"})
        coords["prune_step"] = np.array(ts)
        stages["pruned"] = damage_metrics(pruned)
        figures.update(prune_removed=1 - sy[-1] / total0, prune_accuracy=float(ac[-1]),
                       prune_loss_points=100 * (a0 - float(ac[-1])),
                       prune_removed_trainable=1 - trainable_synapses(pruned) / m0)

    # 6. graph metrics, the lesion log, the tissues
    names = list(stages)
    for mname in METRICS:
        data[f"graph_{mname}"] = ("stage", np.array([stages[s][mname] for s in names]),
                                  {"long_name": f"graph metric {mname} (tissue.graph.damage_metrics)"})
    coords["stage"] = np.array(names, dtype=object)
    log_ds = log.to_dataset(trained.lattice)
    ds = xr.Dataset(data, coords=coords).merge(log_ds)
    ds.attrs = dict(log_ds.attrs)
    ds.to_zarr(out, mode="a", consolidated=False)
    save_tissue(trained, out)
    save_tissue(lesioned, out, group="lesioned")
    for arm, t in recovered.items():
        save_tissue(t, out, group=f"recovered_{arm}")
    if pruned is not None:
        save_tissue(pruned, out, group="pruned")
    wall = time.perf_counter() - t0
    nums = {k: v for k, v in figures.items() if isinstance(v, (int, float))}
    zarr.open_group(out, mode="a").update_attributes(_jsonable({
        **base, **nums, "lesion_log": log_ds.attrs["lesion_log"], "status": "complete", "wall_time_s": round(wall, 3),
        "trained_from": figures.get("trained_from", ""),
        "finished": datetime.now(UTC).isoformat(timespec="seconds")}))
    return StudySummary(out, "complete", figures, wall)


# ------------------------------------------------------------------ pictures
def plot_recovery(ds, path, title: str = "") -> Path:
    """Accuracy against recovery epochs, one line per arm, with A0 as dashed lines (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for arm in ds.arm.values:
        y = ds.accuracy.sel(arm=arm).values
        ok = np.isfinite(y)
        ax.plot(ds.epoch.values[ok], y[ok], "o-", ms=3,
                label="control (no lesion)" if arm == "control" else f"{arm}")
    a0 = ds.accuracy_before.values
    ax.axhline(float(a0[0]), ls="--", color="k", lw=1, label=f"tissue before the lesion {a0[0]:.3f}")
    if np.isfinite(a0[1]):
        ax.axhline(float(a0[1]), ls=":", color="gray", lw=1, label=f"MLP before the lesion {a0[1]:.3f}")
    ax.set_xlabel("recovery epochs")
    ax.set_ylabel("held-out accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_damage_curve(ds, path, title: str = "") -> Path:
    """Accuracy against the share of hidden neurons killed, tissue and MLP (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=100)
    for m, label in (("tissue", "tissue (EqProp)"), ("mlp", "MLP (backprop)")):
        y = ds.curve_accuracy.sel(model=m).values
        if np.isfinite(y).any():
            ax.plot(100 * ds.damage.values, y, "o-", ms=4, label=label)
    ax.set_xlabel("hidden neurons killed (%)")
    ax.set_ylabel("held-out accuracy, no retraining")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ demo
def demo_step(learn_store, out, small: bool = False, progress: bool = False, echo=None) -> dict:
    """The demo's lesion-and-recover step: kill 20% of the hidden neurons of the tissue trained in
    ``learn_store`` (at random) and keep learning for one epoch.

    Writes ``out/recovery.png`` (accuracy during recovery) and ``out/lesion.png`` (the
    lesion: voxels killed, in 3D slices). With ``small`` the recovery uses a quarter of the
    training set and the accuracies the first 200 test samples (a quick demo). Returns the
    measured figures
    (``A0``, ``A1``, ``A_recovered``, ``recovered_share``, ``killed``, ``seconds``).
    """
    from .learn import load_learning_store

    t0 = time.perf_counter()
    learn_store, out = Path(learn_store), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg, setup = load_learning_store(learn_store)
    tissue = setup.tissue
    if small:   # a quicker look: the first 200 test samples (the split is stratified and shuffled)
        setup.xte, setup.task.y_test = setup.xte[:200], setup.task.y_test[:200]
    a0 = _accuracy(setup, tissue)
    log = LesionLog()
    rec = kill_fraction(tissue, 0.2, seed=cfg.seed, log=log, when="demo")
    a1 = _accuracy(setup, tissue)
    trainer = EqProp(beta=cfg.learning.beta, symmetric=cfg.learning.symmetric, lr=cfg.learning.lr,
                     optimizer=cfg.learning.optimizer, batch_size=cfg.learning.batch_size, cost=cfg.learning.cost,
                     brake=setup.brake, seed=cfg.seed)
    sched = Scheduler(trainer, setup.engine, None, brake=setup.brake)
    n = len(setup.xtr) // 4 if small else len(setup.xtr)
    ts, accs = [0.0], [a1]
    steps = 2 if small else 4
    chunk = -(-n // steps)
    for k in range(steps):
        sl = slice(k * chunk, min(n, (k + 1) * chunk))
        sched.fit_epoch(tissue, setup.xtr[sl], setup.task.y_train[sl], epoch=k, progress=progress)
        ts.append((k + 1) / steps * n / len(setup.xtr))
        accs.append(_accuracy(setup, tissue))
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.plot(ts, accs, "o-", label="after killing 20% of hidden neurons")
    ax.axhline(a0, ls="--", color="k", lw=1, label=f"before the lesion {a0:.3f}")
    ax.set_xlabel("recovery epochs")
    ax.set_ylabel("held-out accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "recovery.png")
    plt.close(fig)
    pics = {"recovery_png": str(out / "recovery.png")}
    try:
        from tissue.view import orthogonal_slices_png

        lesion_map = (log.killed(tissue.n) >= 0).astype(float)
        orthogonal_slices_png(tissue.lattice.grid(lesion_map), out / "lesion.png", clim=(0, 1), name="killed",
                              cmap="Reds", title=f"{rec.n_neurons} hidden neurons killed (red)")
        pics["lesion_png"] = str(out / "lesion.png")
    except Exception as err:   # noqa: BLE001 - a picture must not fail the demo (no OpenGL, ...)
        pics["lesion_png_error"] = f"{type(err).__name__}: {err}"
    figures = {"A0": a0, "A1": a1, "A_recovered": accs[-1], "recovered_share": recovered_share(a0, a1, accs[-1]),
               "killed": rec.n_neurons, "recovery_epochs": ts[-1], "seconds": time.perf_counter() - t0, **pics}
    if echo is not None:
        echo(f"lesion and recovery: A0 {a0:.3f}, killed {rec.n_neurons} hidden neurons -> A1 {a1:.3f}, "
             f"after {ts[-1]:.2f} epoch(s) of learning {accs[-1]:.3f} "
             + (f"({figures['recovered_share']:.0%} of the loss won back)" if a1 < a0
                else "(the lesion cost nothing here)"))
    return figures
