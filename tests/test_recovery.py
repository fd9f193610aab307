"""The damage-and-recovery study (studies.recovery) and its config sections (studies.damage_config)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from types import SimpleNamespace

import numpy as np
import pytest
import zarr

from studies.config import ConfigError, load_config
from studies.recovery import epochs_to_reach, recovered_share
from studies.run import RunRefused, run
from tissue import load_tissue, open_run
from tissue.graph import METRICS, damage_metrics

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny-recovery", "seed": 0,
    "tissue": {"shape": [8, 8, 3], "bias": 0.2, "small_world": 0.1},
    "task": {"name": "patterns", "n_classes": 4, "noise": 0.1},
    "learning": {"epochs": 1, "beta": 0.1, "lr": 0.003, "optimizer": "adam", "blends": 0, "alignment_samples": 0},
    "dynamics": {"dt": 0.5, "tol": 2e-3, "max_steps": 150},
    "homeostasis": {},
    "lesion": {"kind": "random", "fraction": 0.4, "curve_max": 0.5, "curve_points": 2},
    "structural": {"every": 4, "prune_weight": 0.2, "prune_dw": 1e-2, "prune_max": 0.3},
    "recovery": {"epochs": 1, "evals_per_epoch": 2, "arms": ["learn", "neurogenesis"], "lr": 0.001,
                 "prune_target": 0.3, "prune_epochs": 1, "control": True},
}


def _cfg(**sections):
    d = copy.deepcopy(TINY)
    for k, v in sections.items():
        if v is None:
            d.pop(k, None)
        elif isinstance(v, dict):
            if k == "lesion" and v.get("kind", "random") != "random" and "fraction" not in v:
                d[k].pop("fraction")        # TINY's fraction belongs to its random lesion
            d.setdefault(k, {}).update(v)
        else:
            d[k] = v
    return d


# ------------------------------------------------------------------ config
def test_shipped_configs_load():
    cfg = load_config(REPO / "configs" / "lesion-recovery.toml")
    assert cfg.lesion.kind == "random" and cfg.lesion.fraction == 0.2
    assert cfg.recovery.trained == "learn-seed{seed}.zarr"
    from studies.sweep import load_sweep

    spec = load_sweep(REPO / "configs" / "sweep-lesions.toml")
    assert {g.name for g in spec.grid} == {"lesion_fraction", "lesion_kind", "seed"}
    assert len(spec.jobs) == np.prod([len(g.values) for g in spec.grid])
    from studies.recovery import _structural

    spec = load_sweep(REPO / "configs" / "sweep-neurogenesis.toml")
    assert len(spec.jobs) == 3
    for job in spec.jobs:
        c = job.config
        assert c.lesion.kind == "ball" and c.lesion.radius == 5.0 and c.recovery.epochs == 80
        # the key reaches the rule the neurogenesis arm runs
        assert _structural(c, "neurogenesis", 0).birth_small_world == 0.1
        assert _structural(c, "learn", 0) is None


def test_defaults_fill_missing_sections():
    cfg = load_config(_cfg(lesion=None, structural=None, recovery={"epochs": 3}))
    assert cfg.lesion.kind == "random" and cfg.structural.every == 10 and cfg.recovery.epochs == 3
    from studies.recovery import _recovery_trainer

    assert _recovery_trainer(cfg, SimpleNamespace(brake=None), 0).optimizer == cfg.learning.optimizer
    sgd = load_config(_cfg(recovery={"optimizer": "sgd", "lr": 0.01}))
    assert _recovery_trainer(sgd, SimpleNamespace(brake=None), 0).optimizer == "sgd"
    # canonical form round-trips
    assert load_config(cfg.to_dict()) == cfg


@pytest.mark.parametrize("sections, key, allowed", [
    ({"lesion": {"kind": "cube"}}, "[lesion] kind", '"random", "ball", "slab", "synapses", "noise"'),
    ({"lesion": {"fraction": 1.5}}, "[lesion] fraction", "in [0, 1]"),
    ({"lesion": {"radius": 2.0}}, "[lesion] radius", 'only with kind = "ball"'),
    ({"lesion": {"kind": "ball", "fraction": 0.1}}, "[lesion] fraction", '"random" or "synapses"'),
    ({"lesion": {"kind": "ball", "center": [9, 0, 0]}}, "[lesion] center", "lattice [8, 8, 3]"),
    ({"lesion": {"kind": "slab", "axis": "z", "lo": 3}}, "[lesion] lo", "[0, 3)"),
    ({"lesion": {"roles": ["input"]}}, "[lesion] roles", '"hidden", "output"'),
    ({"lesion": {"kind": "noise", "roles": ["output"]}}, "[lesion] roles", "only with kind"),
    ({"structural": {"every": 0}}, "[structural] every", ">= 1"),
    ({"structural": {"grow_radius": 20.0}}, "[structural] grow_radius", "in [1, 8]"),
    ({"recovery": {"arms": ["magic"]}}, "[recovery] arms", '"learn", "neurogenesis", "structural"'),
    ({"recovery": {"epoch": 2}}, "unknown key 'epoch'", "did you mean 'epochs'"),
    ({"recovery": {"trained": "/x/{run}.zarr"}}, "[recovery] trained", "{seed}"),
    ({"recovery": {"prune_target": 1.0}}, "[recovery] prune_target", "in [0, 0.95]"),
    ({"recovery": {"optimizer": "rmsprop"}}, "[recovery] optimizer", '"sgd", "adam"'),
    ({"recovery": {"warm_optimizer": True, "optimizer": "sgd"}}, "[recovery] warm_optimizer", '"adam"'),
    ({"structural": {"prune_by": "size"}}, "[structural] prune_by", '"weight", "activity"'),
    ({"structural": {"birth_lr": 0.5}}, "[structural] birth_lr", ">= 1"),
    ({"recovery": {"prune_mode": "all"}}, "[recovery] prune_mode", '"gradual", "oneshot"'),
    ({"recovery": {"average": 1.0}}, "[recovery] average", "in [0, 0.999]"),
    ({"learning": None}, "[learning]", "is required with [task]"),
])
def test_config_errors_name_the_key(sections, key, allowed):
    with pytest.raises(ConfigError) as err:
        load_config(_cfg(**sections))
    msg = str(err.value)
    assert key in msg and allowed in msg, msg


def test_helpers():
    assert recovered_share(0.9, 0.6, 0.87) == pytest.approx(0.9)
    assert np.isnan(recovered_share(0.9, 0.9, 0.9))
    assert epochs_to_reach([0, 0.5, 1, 1.5], [0.5, 0.8, 0.95, 0.9], 0.9) == 1
    assert np.isnan(epochs_to_reach([0, 1], [0.5, 0.6], 0.9))


def test_warm_start_carries_each_synapses_adam_moments_through_a_lesion():
    """After a lesion, a warm-started trainer holds every surviving synapse's moments (found pair
    by pair), none for the dead, and its first step is Adam's formula on those moments, computed
    here in numpy; a fresh Adam's first step is lr x sign(g) on every synapse."""
    from dynamics import Langevin
    from plasticity import EqProp
    from studies.recovery import warm_start
    from tissue import INPUT, Tissue
    from tissue.lesions import kill_fraction

    t = Tissue.cube((5, 5, 4), stencil=26, small_world=0.1, seed=0, bias=0.2)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=2)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, len(t.region("input")))), rng.integers(0, 2, 16)
    eng = Langevin(dt=0.5, tol=1e-4, max_steps=2000)
    kw = dict(beta=0.1, lr=0.01, optimizer="adam", batch_size=16, seed=0)
    tr = EqProp(**kw)
    for _ in range(5):
        tr.train_step(t, eng, x, y)
    state = tr.export_state()
    nbr0, alive0 = t.syn.nbr.copy(), t.alive.copy()
    les = t.copy()
    kill_fraction(les, 0.3, seed=1)
    warm = EqProp(**kw)
    warm_start(warm, les, state, nbr0, alive0)
    st = warm._state
    i, j, _ = les.syn.edges()
    for a, b in zip(i.tolist(), j.tolist()):
        for key in ("m", "v"):
            assert st[key][a, les.syn.slot(a, b)] == state[f"opt_{key}"][a, t.syn.slot(a, b)]
    assert np.count_nonzero(st["v"]) == np.count_nonzero(state["opt_v"][nbr0 >= 0]) - \
        int(np.sum(nbr0 >= 0) - np.sum(les.syn.nbr >= 0))
    dead = alive0 & ~les.alive
    assert dead.any() and np.all(st["mb"][dead] == 0) and np.all(st["vb"][~dead] == state["opt_vb"][~dead])
    # the first step, by hand
    free, plus, minus = warm.phases(les, eng, x, y)
    g, _ = warm.gradient(les, free, plus, minus)
    tt = int(state["opt_t"][0]) + 1
    m = 0.9 * st["m"] + 0.1 * g
    v = 0.999 * st["v"] + 0.001 * g * g
    step = 0.01 * (m / (1 - 0.9 ** tt)) / (np.sqrt(v / (1 - 0.999 ** tt)) + 1e-8)
    w0 = les.syn.w.astype(np.float64)
    warm.apply(les, g, np.zeros(les.n))
    on = (les.syn.nbr >= 0) & ~((les.role == INPUT)[:, None] & (les.role == INPUT)[np.maximum(les.syn.nbr, 0)])
    np.testing.assert_allclose((les.syn.w - w0)[on], step[on], rtol=1e-3, atol=1e-8)
    fresh, les2 = EqProp(**kw), les.copy()
    les2.syn.w[...] = w0
    fresh._prepare(les2)
    w2 = les2.syn.w.astype(np.float64)
    fresh.apply(les2, g, np.zeros(les.n))
    moved = np.abs(les2.syn.w - w2)[on & (np.abs(g) > 1e-4)]   # |g| >> eps = 1e-8: a step of lr
    np.testing.assert_allclose(moved, 0.01, rtol=1e-3)
    assert np.median(np.abs(step[on & (np.abs(g) > 1e-4)])) < 0.5 * 0.01


# ------------------------------------------------------------------ the run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "r.zarr"
    s = run(load_config(_cfg()), out, progress=False)
    return out, s


@pytest.mark.slow
def test_recovery_run_store(tiny_run):
    from studies.learn import build_learning

    out, s = tiny_run
    assert s.status == "complete"
    ds = open_run(out)
    cfg = load_config(_cfg())
    assert list(ds.arm.values) == ["learn", "neurogenesis", "control", "mlp"]
    assert np.allclose(ds.epoch.values, [0, 0.5, 1])
    assert list(ds.stage.values) == ["trained", "lesioned", "recovered_learn", "recovered_neurogenesis", "pruned"]
    # the stored tissues are what the numbers describe: re-evaluate them independently of the run
    setup = build_learning(cfg)
    trained, lesioned = load_tissue(out), load_tissue(out, "lesioned")

    def acc(t):
        return setup.trainer.evaluate(t, setup.engine, setup.xte, setup.task.y_test)["accuracy"]
    assert acc(trained) == pytest.approx(float(ds.accuracy_before.sel(model="tissue")))
    assert acc(lesioned) == pytest.approx(float(ds.accuracy.sel(arm="learn", epoch=0)))
    assert float(ds.accuracy.sel(arm="learn", epoch=0)) == float(ds.accuracy.sel(arm="neurogenesis", epoch=0))
    assert float(ds.curve_accuracy.sel(model="tissue", damage=0)) == pytest.approx(acc(trained))
    # the control arm learns on the unlesioned tissue: it starts at A0, keeps every neuron, and the
    # shares won back against it are (A - A1) / (A_control - A1) at the same time
    assert float(ds.accuracy.sel(arm="control", epoch=0)) == pytest.approx(acc(trained))
    assert np.array_equal(ds.alive_after.sel(arm="control").values.reshape(-1),
                          trained.alive.reshape(-1).astype(ds.alive_after.dtype))
    assert int(ds.neurons.sel(arm="control").values[-1]) == int(trained.alive.sum())
    a1, ctrl = float(ds.accuracy.sel(arm="learn", epoch=0)), float(ds.accuracy.sel(arm="control", epoch=1))
    fig = json.loads(json.dumps(dict(zarr.open_group(out, mode="r").attrs)))
    if ctrl > a1:
        assert fig["learn_recovered_vs_control_epoch1"] == pytest.approx(
            (float(ds.accuracy.sel(arm="learn", epoch=1)) - a1) / (ctrl - a1))
    else:
        v = fig["learn_recovered_vs_control_epoch1"]
        assert v is None or np.isnan(v)       # nothing lost against the control: no share
    # the lesion record: 40% of the 64 hidden neurons (z = 1), exactly the dead voxels of the lesioned tissue
    killed = ds.lesioned_by.values.reshape(-1) >= 0
    assert int((trained.role == 0).sum()) == 64
    assert killed.sum() == round(0.4 * 64) == int(ds.log_neurons.values[0])
    assert np.array_equal(killed, trained.alive & ~lesioned.alive)
    assert json.loads(ds.attrs["lesion_log"])[0]["kind"] == "random"
    # graph metrics of the stored tissues
    for stage, t in (("trained", trained), ("lesioned", lesioned),
                     ("recovered_neurogenesis", load_tissue(out, "recovered_neurogenesis"))):
        m = damage_metrics(t)
        for k in METRICS:
            assert float(ds[f"graph_{k}"].sel(stage=stage)) == pytest.approx(m[k], nan_ok=True), (stage, k)
    # births sit in voxels the lesion emptied; the learn arm has none
    born = ds.born.sel(arm="neurogenesis").values.reshape(-1) >= 0
    assert np.all(killed[born])
    assert not (ds.born.sel(arm="learn").values >= 0).any()
    after = load_tissue(out, "recovered_neurogenesis")
    assert np.array_equal(after.alive, lesioned.alive | born)
    assert int(ds.neurons.sel(arm="neurogenesis").values[-1]) == int(after.alive.sum())
    # pruning: the budget is respected and the synapse count is the stored tissue's
    pruned = load_tissue(out, "pruned")
    left = float(ds.prune_synapses.values[-1])
    assert left == pytest.approx(pruned.syn.n_synapses / trained.syn.n_synapses)
    assert left >= 0.7 - 1 / trained.syn.n_synapses
    for t in (lesioned, after, pruned):
        t.syn.check()
        i, j, _ = t.syn.edges()
        assert t.alive[i].all() and t.alive[j].all()
    attrs = dict(zarr.open_group(out, mode="r").attrs)
    assert attrs["status"] == "complete" and json.loads(attrs["config"])["lesion"]["fraction"] == 0.4
    ds.close()


@pytest.mark.slow
def test_recovery_refuses_and_resumes_cleanly(tiny_run):
    out, _ = tiny_run
    with pytest.raises(RunRefused, match="already exists"):
        run(load_config(_cfg()), out, progress=False)
    assert run(load_config(_cfg()), out, resume=True, progress=False).status == "already complete"
    with pytest.raises(RunRefused, match="differs at lesion.fraction"):
        run(load_config(_cfg(lesion={"fraction": 0.3})), out, resume=True, progress=False)


def _trained_store(out, tmp_path) -> Path:
    """A learning store holding the run's trained tissue, with the learning config it was trained with."""
    from tissue import save_tissue

    fake = tmp_path / "trained.zarr"
    zarr.create_group(fake, attributes={"status": "complete", "config": json.dumps(load_config(_cfg()).to_dict())})
    save_tissue(load_tissue(out), fake)
    return fake


@pytest.mark.slow
def test_oneshot_pruning_cuts_the_least_salient_share_then_fine_tunes(tiny_run, tmp_path):
    """prune_mode = "oneshot": exactly the prune_target share of the synapses goes before any
    learning, and it is the share of smallest |w| r_i r_j, with r the RMS rates at the free
    fixed points of the training inputs (computed here from the engine, not the pruner);
    fine-tuning then edits no synapse."""
    from studies.learn import build_learning

    out, _ = tiny_run
    fake = _trained_store(out, tmp_path)
    rc = {"arms": ["learn"], "mlp": False, "evals_per_epoch": 2, "trained": str(fake), "prune_target": 0.3,
          "prune_mode": "oneshot", "prune_epochs": 1}
    cfg = load_config(_cfg(recovery=rc, lesion={"curve_max": 0.0}, structural={"prune_by": "activity"}))
    s = run(cfg, tmp_path / "os.zarr", progress=False)
    trained, pruned = load_tissue(fake), load_tissue(tmp_path / "os.zarr", "pruned")
    total = trained.syn.n_synapses
    ds = open_run(tmp_path / "os.zarr")
    left = ds.prune_synapses.values
    assert pruned.syn.n_synapses == total - round(0.3 * total)
    assert np.all(left == pruned.syn.n_synapses / total)          # all at once, none during fine-tuning
    assert float(ds.prune_accuracy.values[0]) == s.figures["prune_oneshot_accuracy"]
    setup = build_learning(cfg)
    r = np.sqrt((setup.engine.settle(trained, inputs=setup.xtr).rates.astype(np.float64) ** 2).mean(0))
    i, j, w = trained.syn.edges()
    sal = np.abs(w.astype(np.float64)) * r[i] * r[j]
    kept = {(a, b) for a, b, _ in zip(*pruned.syn.edges())}
    gone = np.array([(a, b) not in kept for a, b in zip(i.tolist(), j.tolist())])
    assert gone.sum() == round(0.3 * total)
    assert sal[gone].max() <= sal[~gone].min() + 1e-6
    pruned.syn.check()
    ds.close()


@pytest.mark.slow
def test_pruning_with_a_teacher_learns_the_intact_tissues_answers(tiny_run, tmp_path):
    """prune_teacher: after the same one-shot cut, fine-tuning towards the trained tissue's own
    output rates leaves the pruned tissue's answers on the training digits closer to the trained
    tissue's than fine-tuning on the class labels does (the squared distance it descends)."""
    from studies.learn import build_learning

    out, _ = tiny_run
    fake = _trained_store(out, tmp_path)
    rc = {"arms": ["learn"], "mlp": False, "evals_per_epoch": 1, "trained": str(fake), "prune_target": 0.3,
          "prune_mode": "oneshot", "prune_epochs": 2, "control": False}
    pruned = {}
    for teacher in (False, True):
        cfg = load_config(_cfg(recovery={**rc, "prune_teacher": teacher}, lesion={"curve_max": 0.0},
                               structural={"prune_by": "activity"}))
        s = run(cfg, tmp_path / f"t{teacher}.zarr", progress=False)
        pruned[teacher] = (load_tissue(tmp_path / f"t{teacher}.zarr", "pruned"), s.figures)
    a, b = pruned[False][0], pruned[True][0]
    assert np.array_equal(a.syn.nbr, b.syn.nbr)                          # the same cut
    assert pruned[False][1]["prune_oneshot_accuracy"] == pruned[True][1]["prune_oneshot_accuracy"]
    setup = build_learning(cfg)
    o = a.region("output")

    def answers(t):
        return setup.engine.settle(t, inputs=setup.xtr).rates[:, o].astype(np.float64)
    ref = answers(load_tissue(fake))
    d_label, d_teacher = (np.mean((answers(t) - ref) ** 2) for t in (a, b))
    assert d_teacher < 0.5 * d_label, (d_teacher, d_label)


@pytest.mark.slow
def test_replicates_share_the_lesion_and_draw_their_own_recovery(tiny_run, tmp_path):
    """[recovery] replicate: the same trained tissue and lesion (same voxels, same A1), another
    mini-batch order in the recovery (another curve); the same replicate twice is the same run."""
    out, _ = tiny_run
    fake = _trained_store(out, tmp_path)
    rc = {"arms": ["learn"], "mlp": False, "prune_target": 0.0, "evals_per_epoch": 2, "control": False,
          "trained": str(fake)}
    runs = {}
    for name, rep in (("a", 0), ("b", 1), ("c", 1)):
        run(load_config(_cfg(recovery={**rc, "replicate": rep}, lesion={"curve_max": 0.0})), tmp_path / f"{name}.zarr",
            progress=False)
        runs[name] = open_run(tmp_path / f"{name}.zarr")
    a, b, c = runs["a"], runs["b"], runs["c"]
    np.testing.assert_array_equal(a.lesioned_by.values, b.lesioned_by.values)
    assert float(a.accuracy.sel(arm="learn", epoch=0)) == float(b.accuracy.sel(arm="learn", epoch=0))
    wa = load_tissue(tmp_path / "a.zarr", "recovered_learn").syn.w
    wb = load_tissue(tmp_path / "b.zarr", "recovered_learn").syn.w
    wc = load_tissue(tmp_path / "c.zarr", "recovered_learn").syn.w
    assert np.abs(wa - wb).max() > 1e-4
    np.testing.assert_array_equal(wb, wc)
    np.testing.assert_array_equal(b.accuracy.values, c.accuracy.values)
    for ds in runs.values():
        ds.close()


@pytest.mark.slow
def test_averaged_recovery_keeps_the_tissue_it_measured(tiny_run, tmp_path):
    """[recovery] average: the last accuracy of each arm is that of the tissue the run keeps (the
    averaged one), which differs from the tissue the same run ends with unaveraged."""
    from studies.learn import build_learning

    out, _ = tiny_run
    fake = _trained_store(out, tmp_path)
    rc = {"arms": ["learn"], "mlp": False, "prune_target": 0.0, "evals_per_epoch": 2, "control": False,
          "trained": str(fake)}
    for name, avg in (("plain", 0.0), ("avg", 0.9)):
        cfg = load_config(_cfg(recovery={**rc, "average": avg}, lesion={"curve_max": 0.0}))
        run(cfg, tmp_path / f"{name}.zarr", progress=False)
    setup = build_learning(cfg)
    kept = load_tissue(tmp_path / "avg.zarr", "recovered_learn")
    ds = open_run(tmp_path / "avg.zarr")
    acc = setup.trainer.evaluate(kept, setup.engine, setup.xte, setup.task.y_test)["accuracy"]
    assert float(ds.accuracy.sel(arm="learn").values[-1]) == pytest.approx(acc)
    plain = load_tissue(tmp_path / "plain.zarr", "recovered_learn")
    assert np.array_equal(plain.syn.nbr, kept.syn.nbr) and np.abs(plain.syn.w - kept.syn.w).max() > 1e-4
    ds.close()


@pytest.mark.slow
def test_trained_store_is_loaded_or_refused(tiny_run, tmp_path):
    out, _ = tiny_run
    fake = _trained_store(out, tmp_path)
    quick = {"arms": ["learn"], "mlp": False, "prune_target": 0.0, "evals_per_epoch": 1,
             "trained": str(tmp_path / "trained.zarr")}
    c2 = load_config(_cfg(recovery=quick, lesion={"curve_max": 0.0}))
    s = run(c2, tmp_path / "r2.zarr", progress=False)
    ds, ds0 = open_run(tmp_path / "r2.zarr"), open_run(out)
    assert "train_test_accuracy" not in ds              # nothing was trained
    assert float(ds.accuracy_before.sel(model="tissue")) == float(ds0.accuracy_before.sel(model="tissue"))
    assert float(ds.accuracy.sel(arm="learn", epoch=0)) == float(ds0.accuracy.sel(arm="learn", epoch=0))
    assert s.figures["trained_from"] == str(fake)
    # another training config is refused, naming where it differs
    c3 = load_config(_cfg(recovery=quick, learning={"lr": 0.01}, lesion={"curve_max": 0.0}))
    with pytest.raises(RunRefused, match=r"trained with another config \(differs at learning.lr"):
        run(c3, tmp_path / "r3.zarr", progress=False)
    # the pruning keys decide nothing when the store did not prune while learning (prune_target 0) ...
    other = "weight" if c2.learning.prune_by != "weight" else "activity"
    c6 = load_config(_cfg(recovery=quick, learning={"prune_by": other, "prune_start": 1},
                          lesion={"curve_max": 0.0}))
    run(c6, tmp_path / "r6.zarr", progress=False)
    ds6 = open_run(tmp_path / "r6.zarr")
    assert float(ds6.accuracy.sel(arm="learn", epoch=0)) == float(ds.accuracy.sel(arm="learn", epoch=0))
    ds6.close()
    # ... and count when the run asks for a tissue pruned while learning (this store was not)
    c7 = load_config(_cfg(recovery=quick, learning={"prune_target": 0.2, "prune_start": 0, "prune_end": 1},
                          lesion={"curve_max": 0.0}))
    with pytest.raises(RunRefused, match=r"differs at learning.prune_"):
        run(c7, tmp_path / "r7.zarr", progress=False)
    # a store without optimizer state cannot warm-start the recovery
    c5 = load_config(_cfg(recovery={**quick, "warm_optimizer": True}, lesion={"curve_max": 0.0}))
    with pytest.raises(RunRefused, match="keeps no optimizer state"):
        run(c5, tmp_path / "r5.zarr", progress=False)
    c4 = load_config(_cfg(recovery={**quick, "trained": str(tmp_path / "none{seed}.zarr")}))
    with pytest.raises(RunRefused, match="none0.zarr is not a run store"):
        run(c4, tmp_path / "r4.zarr", progress=False)


@pytest.mark.slow
def test_demo_step(tiny_run, tmp_path):
    from studies.recovery import demo_step

    out, _ = tiny_run
    lines = []
    fig = demo_step(out, tmp_path / "demo", small=True, progress=False, echo=lines.append)
    ds = open_run(out)
    assert fig["A0"] == pytest.approx(float(ds.accuracy_before.sel(model="tissue")))
    assert fig["killed"] == round(0.2 * 64)
    assert fig["recovered_share"] == pytest.approx((fig["A_recovered"] - fig["A1"]) / (fig["A0"] - fig["A1"]))
    assert fig["recovery_epochs"] == pytest.approx(0.25, abs=0.01)
    assert Path(fig["recovery_png"]).stat().st_size > 0 and lines and "lesion and recovery" in lines[0]
    ds.close()


@pytest.mark.slow
def test_job_store_combines_in_a_sweep(tiny_run, tmp_path):
    """A recovery store is a valid sweep job: a finished one is skipped and its Dataset combines
    over the grid dims (text lives in attributes, numbers in variables)."""
    import shutil

    from studies.sweep import job_path, load_sweep, run_sweep

    out, _ = tiny_run
    spec = load_sweep({"base_config": copy.deepcopy(TINY), "grid": {"lesion.fraction": [0.4]},
                       "dims": {"lesion.fraction": {"name": "lesion_fraction", "values": [0.4]}}})
    sweep = tmp_path / "sweep"
    (sweep / "jobs").mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps(spec.to_dict()))
    shutil.copytree(out, job_path(sweep, spec.jobs[0]))
    s = run_sweep(spec, sweep, progress=False)
    assert s.n_run == 0 and s.skipped == [spec.jobs[0].name] and not s.failed
    comb = open_run(s.dataset)
    one = open_run(out)
    assert comb.accuracy.dims == ("lesion_fraction", "arm", "epoch")
    assert np.array_equal(comb.accuracy.sel(lesion_fraction=0.4).values, one.accuracy.values, equal_nan=True)
    assert float(comb.A1.sel(lesion_fraction=0.4)) == float(one.accuracy.sel(arm="learn", epoch=0))
    # the sweep's summary line for damage runs: the first arm's share won back after its last epoch,
    # recomputed here from the stored accuracies
    from studies.sweep import table

    a0 = float(one.accuracy_before.sel(model="tissue"))
    a1 = float(one.accuracy.sel(arm="learn", epoch=0))
    won = (float(one.accuracy.sel(arm="learn", epoch=1)) - a1) / (a0 - a1)
    line = table(comb)[-1]
    assert "learn_recovered_epoch1" in table(comb)[0]
    assert line.split()[-1] == f"{won:.3f}"


@pytest.mark.slow
def test_a_styled_tissue_recovers_on_the_codes_it_was_trained_on(tmp_path, monkeypatch):
    """[task] styles: after a lesion that also kills output voxels, the recovery learns towards each
    training image's class-and-style code as trained (computed here on the intact tissue), on the
    output voxels still alive, not towards codes dealt anew over the survivors."""
    import plasticity.structural as S
    from plasticity.readout import style_targets
    from studies.learn import build_learning

    seen = []
    orig = S.Scheduler.fit_epoch

    def spy(self, tissue, x, y, *args, targets=None, **kw):
        seen.append((tissue.region("output").copy(), None if targets is None else targets.copy()))
        return orig(self, tissue, x, y, *args, targets=targets, **kw)

    monkeypatch.setattr(S.Scheduler, "fit_epoch", spy)
    cfg = load_config(_cfg(task={"styles": 2}, lesion={"roles": ["hidden", "output"], "curve_max": 0.0},
                           recovery={"arms": ["learn"], "mlp": False, "control": False, "prune_target": 0.0}))
    run(cfg, tmp_path / "s.zarr", progress=False)
    setup = build_learning(cfg)
    full = style_targets(setup.tissue, 2)[setup.task.y_train, setup.styles]     # (n_train, all outputs)
    out_all = setup.tissue.region("output")
    live, targets = seen[-1]
    assert len(live) < len(out_all)                                      # the lesion took output voxels
    assert np.array_equal(targets, full[:, np.isin(out_all, live)])


def test_shipped_wide_recovery_sweep_stands_on_the_shipped_wide_trainings():
    """configs/sweep-recovery-wide.toml loads, per seed, the tissue configs/sweep-wide.toml trains: the recovery
    job's [tissue], [task], [learning] and [dynamics] must equal the training job's as load_trained compares them
    (else every recovery is refused), and each training job is configs/learn-digits.toml of that seed."""
    from studies.recovery import _learning_part
    from studies.sweep import load_sweep

    train = load_sweep("configs/sweep-wide.toml")
    rec = load_sweep("configs/sweep-recovery-wide.toml")
    learn = load_config("configs/learn-digits.toml").to_dict()
    by_seed = {}
    for job in train.jobs:
        d = job.config.to_dict()
        assert d["task"] == learn["task"] and d["tissue"] == learn["tissue"] and d["learning"] == learn["learning"]
        by_seed[job.config.seed] = _learning_part(json.loads(json.dumps(d)))
    assert sorted(by_seed) == [0, 1, 2, 3, 4, 5] and len(rec.jobs) == 30
    for job in rec.jobs:
        cfg = job.config
        assert _learning_part(json.loads(json.dumps(cfg.to_dict()))) == by_seed[cfg.seed]
        assert cfg.recovery.trained.format(seed=cfg.seed) == f"wide/jobs/seed={cfg.seed}.zarr"
        assert cfg.lesion.kind == "random" and cfg.lesion.fraction == 0.2 and cfg.recovery.epochs == 2
    names = {job.name for job in train.jobs}
    assert names == {f"seed={s}" for s in range(6)}
