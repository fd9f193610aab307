"""The learning study: its store, its resume, its config rules (small sizes)."""

import dataclasses

import numpy as np
import pytest

from studies.cli import main
from studies.config import ConfigError, load_config
from studies.learn import build_learning
from studies.run import RunRefused, run
from tissue import load_tissue, open_run
from tissue.core import INPUT, OUTPUT

TINY = {
    "name": "tiny", "seed": 0,
    "tissue": {"shape": [8, 8, 3], "bias": 0.2},
    "task": {"name": "patterns", "n_classes": 4, "noise": 0.1},
    "learning": {"epochs": 2, "blends": 10, "alignment_samples": 2, "batch_size": 32},
    "dynamics": {"max_steps": 150, "tol": 1e-3},
    "homeostasis": {},
    "baselines": {"mlp": False, "logistic": True},
}


def test_learning_store_holds_results_tissue_and_checks(tmp_path):
    out = tmp_path / "learn.zarr"
    s = run(TINY, out, progress=False)
    assert s.status == "complete" and s.epochs_done == 2
    ds = open_run(out)
    assert ds.sizes["epoch"] == 2
    for v in ("train_accuracy", "test_accuracy", "loss", "test_steps", "blend_steps", "alignment",
              "baseline_test_accuracy"):
        assert v in ds, v
    assert ds.test_accuracy.attrs["units"] == "1" and "long_name" in ds.loss.attrs
    # the stored prediction is what the stored tissue predicts
    t = load_tissue(out)
    assert t.syn.n_synapses > 0
    t.syn.check()
    acc = float((ds.test_pred.values == ds.test_label.values).mean())
    assert acc == pytest.approx(float(ds.test_accuracy.values[-1]))
    # learning happened on this easy task, and the alignment check at beta = 0.01 holds
    assert ds.test_accuracy.values[-1] > 0.5
    sym = ds.alignment.sel(nudging="symmetric", beta=0.01).values
    assert np.nanmin(sym) >= 0.99
    ds.close()
    # a finished store is left alone on --resume
    assert run(TINY, out, resume=True, progress=False).status == "already complete"


def _killed_in_second_epoch(cfg, out, monkeypatch):
    """Run ``cfg`` into ``out`` and kill it (KeyboardInterrupt) during its second epoch."""
    import plasticity.eqprop as E

    calls = {"n": 0}
    orig = E.EqProp.fit_epoch

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    monkeypatch.setattr(E.EqProp, "fit_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out, progress=False)
    monkeypatch.setattr(E.EqProp, "fit_epoch", orig)


def test_interrupted_training_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    cfg = dict(TINY, learning=dict(TINY["learning"], epochs=3, blends=0, alignment_samples=0))
    full = tmp_path / "full.zarr"
    run(cfg, full, progress=False)
    part = tmp_path / "part.zarr"
    _killed_in_second_epoch(cfg, part, monkeypatch)
    with pytest.raises(RunRefused, match="already exists"):
        run(cfg, part, progress=False)
    s = run(cfg, part, resume=True, progress=False)
    assert s.resumed_from == 1
    a, b = load_tissue(full), load_tissue(part)
    np.testing.assert_array_equal(a.syn.w, b.syn.w)
    np.testing.assert_array_equal(a.bias, b.bias)
    da, db = open_run(full), open_run(part)
    np.testing.assert_array_equal(da.test_accuracy.values, db.test_accuracy.values)
    np.testing.assert_array_equal(da.test_steps.values, db.test_steps.values)
    # the learning movie's frames (the probe digits' fixed points per epoch) survive the interruption
    assert da.probe_activation.shape[:2] == (3, 4)
    np.testing.assert_array_equal(da.probe_activation.values, db.probe_activation.values)
    assert np.abs(da.probe_activation[-1] - da.probe_activation[0]).max() > 0.01   # learning moved them
    # a different config is refused
    other = dict(cfg, learning=dict(cfg["learning"], lr=0.01))
    with pytest.raises(RunRefused, match="lr"):
        run(other, part, resume=True, progress=False)


def test_dropout_training_resumes_exactly_and_silences_what_it_says(tmp_path, monkeypatch):
    """[learning] dropout: every training step's free phase holds the drawn share of the hidden neurons
    at rest (and only those), and a run killed in its second epoch resumes to the same tissue (the draws
    follow the checkpointed step count)."""
    import plasticity.eqprop as E

    cfg = dict(TINY, learning=dict(TINY["learning"], epochs=3, blends=0, alignment_samples=0, dropout=0.25))
    seen = []
    orig_phases = E.EqProp.phases

    def spying(self, tissue, engine, x, y, init=None, target=None):
        free, plus, minus = orig_phases(self, tissue, engine, x, y, init=init, target=target)
        hidden = np.flatnonzero(tissue.role == 0)
        off = hidden[~tissue.alive[hidden]]
        seen.append((len(off), len(hidden), float(np.abs(free.rates[:, off]).max()),
                     float(np.abs(plus.rates[:, off]).max())))
        return free, plus, minus

    monkeypatch.setattr(E.EqProp, "phases", spying)
    full = tmp_path / "full.zarr"
    run(cfg, full, progress=False)
    monkeypatch.setattr(E.EqProp, "phases", orig_phases)
    assert seen and all(k == round(0.25 * n) and a == 0.0 and b == 0.0 for k, n, a, b in seen)
    assert load_tissue(full).alive.all()                      # silencing never outlives a step
    part = tmp_path / "part.zarr"
    _killed_in_second_epoch(cfg, part, monkeypatch)
    run(cfg, part, resume=True, progress=False)
    np.testing.assert_array_equal(load_tissue(part).syn.w, load_tissue(full).syn.w)
    plain = tmp_path / "plain.zarr"
    run(dict(cfg, learning=dict(cfg["learning"], dropout=0.0)), plain, progress=False)
    assert np.abs(load_tissue(plain).syn.w - load_tissue(full).syn.w).max() > 1e-4


def test_polyak_averaged_training_keeps_the_average_of_the_raw_trajectory_and_resumes(tmp_path, monkeypatch):
    """[learning] average: averaging does not change the raw learning trajectory; the stored tissue
    is the running average of it, recomputed here with numpy from the weights after every step of
    an unaveraged run; its predictions are the recorded ones; an interrupted run resumes exactly."""
    import plasticity.eqprop as E

    cfg = dict(TINY, learning=dict(TINY["learning"], epochs=3, blends=0, alignment_samples=0))
    steps = []
    orig_apply = E.EqProp.apply

    def recording(self, tissue, g, gb):
        orig_apply(self, tissue, g, gb)
        steps.append((tissue.syn.w.astype(np.float64), tissue.bias.astype(np.float64)))

    monkeypatch.setattr(E.EqProp, "apply", recording)
    run(cfg, tmp_path / "raw.zarr", progress=False)
    monkeypatch.setattr(E.EqProp, "apply", orig_apply)
    a = 0.9
    ema_w, ema_b = steps[0]
    for w, b in steps[1:]:
        ema_w, ema_b = a * ema_w + (1 - a) * w, a * ema_b + (1 - a) * b
    avg = dict(cfg, learning=dict(cfg["learning"], average=a))
    out = tmp_path / "avg.zarr"
    run(avg, out, progress=False)
    t, raw = load_tissue(out), load_tissue(tmp_path / "raw.zarr")
    np.testing.assert_allclose(t.syn.w, ema_w.astype(t.syn.w.dtype), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t.bias[t.alive], ema_b[t.alive].astype(t.bias.dtype), rtol=1e-5, atol=1e-6)
    assert np.abs(t.syn.w - raw.syn.w).max() > 1e-4           # the average is not the last raw state
    ds = open_run(out)
    assert float((ds.test_pred.values == ds.test_label.values).mean()) == pytest.approx(
        float(ds.test_accuracy.values[-1]))
    ds.close()
    # killed during the second epoch, resumed: the same averaged tissue
    part = tmp_path / "part.zarr"
    _killed_in_second_epoch(avg, part, monkeypatch)
    run(avg, part, resume=True, progress=False)
    np.testing.assert_array_equal(load_tissue(part).syn.w, t.syn.w)


def test_pruning_while_learning_cuts_the_least_salient_synapses_on_schedule_and_resumes(tmp_path, monkeypatch):
    """[learning] prune_target: the synapse count per epoch follows the cut schedule (nothing before
    prune_start, the target from prune_end - 1 on, never rising); every cut takes the smallest
    |w| r_i r_j, checked with scipy and a fresh settle; the table stays valid; an interrupted run
    resumes to the uninterrupted one."""
    from studies.learn import prune_share, prune_while_learning, training_rates

    learning = dict(TINY["learning"], epochs=4, blends=0, alignment_samples=0, prune_target=0.5,
                    prune_start=1, prune_end=3)
    cfg = dict(TINY, learning=learning)
    lc = load_config(cfg).learning
    shares = [prune_share(lc, e) for e in range(4)]
    assert shares[0] == 0.0 and 0.0 < shares[1] < 0.5 and shares[2] == shares[3] == 0.5
    full = tmp_path / "full.zarr"
    run(cfg, full, progress=False)
    ds = open_run(full)
    total = int(ds.attrs["synapses"])
    n = ds.synapses.values
    assert n[0] == total and n[1] == total - round(shares[1] * total) and n[2] == n[3] == total - round(0.5 * total)
    t = load_tissue(full)
    t.syn.check()
    assert t.syn.n_synapses == n[-1] == ds.attrs["synapses_final"]
    # the cut itself, on the built tissue: the removed synapses are the least salient, by the default
    # ranking (effect: the synapses between two clamped inputs first) and by |w| r_i r_j alone
    assert lc.prune_by == "effect"
    for by in ("effect", "activity"):
        setup = build_learning(load_config(cfg))
        inp = setup.tissue.role == INPUT
        before = setup.tissue.syn.to_scipy().tocoo()
        r = np.sqrt((setup.engine.settle(setup.tissue, inputs=setup.xtr).rates.astype(np.float64) ** 2).mean(0))
        assert np.allclose(r, np.sqrt((training_rates(setup, setup.tissue) ** 2).mean(0)))
        removed = prune_while_learning(setup, dataclasses.replace(lc, prune_by=by), 1, total)
        assert removed == round(shares[1] * total)
        after = setup.tissue.syn.to_scipy()
        half = before.row < before.col
        i, j, w = before.row[half], before.col[half], before.data[half]
        gone = np.asarray(after[i, j]).ravel() == 0
        sal = np.abs(w) * r[i] * r[j]
        both = inp[i] & inp[j]
        if by == "effect":
            sal = np.where(both, -1.0, sal)
            assert both.sum() < removed                         # all of them go, and the least salient others
        assert gone.sum() == removed and sal[gone].max() <= sal[~gone].min()
        if by == "activity":                                    # bright pixels' pairs stay
            assert both[~gone].any()
    # killed in the second epoch (after the first cut), resumed: the same pruned tissue and history
    part = tmp_path / "part.zarr"
    _killed_in_second_epoch(cfg, part, monkeypatch)
    run(cfg, part, resume=True, progress=False)
    b = load_tissue(part)
    np.testing.assert_array_equal(t.syn.nbr, b.syn.nbr)
    np.testing.assert_array_equal(t.syn.w, b.syn.w)
    np.testing.assert_array_equal(ds.synapses.values, open_run(part).synapses.values)


def test_shipped_pruning_sweep_pairs_whole_and_pruned_runs_of_the_digits_study():
    """configs/sweep-prune.toml: per seed, the learn-digits-16 run and the same run pruned to half."""
    from studies.learn import prune_share
    from studies.sweep import load_sweep

    spec = load_sweep("configs/sweep-prune.toml")
    assert [g.name for g in spec.grid] == ["prune_target", "seed"] and len(spec.jobs) == 12
    base = load_config("configs/learn-digits-16.toml").to_dict()
    for job in spec.jobs:
        cfg = job.config
        lc = cfg.learning
        if lc.prune_target == 0:    # exactly the shipped learning run of that seed
            assert cfg.to_dict() == dict(base, seed=cfg.seed)
        else:
            assert lc.prune_target == 0.5 and prune_share(lc, lc.epochs - 1) == 0.5 and lc.prune_end < lc.epochs
            assert lc.prune_by == "effect"


@pytest.mark.parametrize("patch,needle", [
    ({"learning": {"beta": 0.0}}, "[learning] beta"),
    ({"learning": {"symmetric": "yes"}}, "[learning] symmetric"),
    ({"learning": {"optimizer": "rmsprop"}}, "[learning] optimizer"),
    ({"learning": {"epochs": 0}}, "[learning] epochs"),
    ({"learning": {"average": 1.0}}, "[learning] average"),
    ({"learning": {"prune_target": 0.5, "prune_start": 1, "prune_end": 9}}, "[learning] prune_end"),
    ({"learning": {"prune_target": 0.99}}, "[learning] prune_target"),
    ({"learning": {"prune_by": "fisher"}}, "[learning] prune_by"),
    ({"learning": {"dropout": 0.95}}, "[learning] dropout"),
    ({"learning": {"dropout": 0.1, "mode": "continuous"}}, "[learning] dropout"),
    ({"task": {"upsample": 3}}, "[tissue] shape"),
    ({"task": {"name": "mnist"}}, "[task] name"),
    ({"task": {"encoding": "on_off", "upsample": 1}}, "[task] encoding"),
    ({"task": {"encoding": "log"}}, "[task] encoding"),
    ({"homeostasis": {"target": 0.99, "trigger": 0.95}}, "[homeostasis] target"),
    ({"dynamics": {"phases": [{"temperature": 0, "steps": 5}]}}, "[dynamics] phases"),
    ({"input": {"region": {"face": "z-"}}}, "[input]"),
])
def test_bad_learning_configs_name_the_key(patch, needle):
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    for sec, body in patch.items():
        cfg.setdefault(sec, {})
        cfg[sec] = dict(cfg[sec], **body)
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_shipped_learning_config_is_valid_and_cli_rejects_bad_one(tmp_path, capsys):
    cfg = load_config("configs/learn-digits.toml")
    assert cfg.learning is not None and cfg.task.name == "digits"
    # the digits tissue: input at z = 0, output at z >= 4, at most 20 000 neurons,
    # at least 90% of the synapses within the 26-neighbourhood (measured on the built wiring)
    t = build_learning(cfg).tissue
    xyz = t.lattice.coords()
    assert set(xyz[t.role == INPUT, 2]) == {0} and xyz[t.role == OUTPUT, 2].min() >= 4
    assert t.n <= 20_000
    i, j, _ = t.syn.edges()
    local = np.abs(xyz[i] - xyz[j]).max(axis=1) <= 1
    assert local.mean() >= 0.90, local.mean()
    bad = tmp_path / "bad.toml"
    bad.write_text('[tissue]\nshape = [8, 8, 3]\n[task]\n[learning]\nbeta = -1\n[dynamics]\n')
    assert main(["run", str(bad), "--out", str(tmp_path / "x.zarr")]) == 2
    err = capsys.readouterr().err
    assert "[learning] beta" in err and "Traceback" not in err
