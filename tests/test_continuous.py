"""Continuous nudging (plasticity.continuous): the update follows the exact gradient, a small task
is learned, the trainer resumes exactly and refuses bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics import Langevin
from dynamics.events import EventEngine
from plasticity.alignment import exact_gradient
from plasticity.continuous import ContinuousNudge
from plasticity.readout import one_hot_targets
from tissue import Tissue

# the free fixed point from the clocked engine; the cycles continue from it with the event engine
# (the clocked engine's fixed points, tests/test_events.py; much faster at this tolerance)
FREE = Langevin(dt=0.5, tol=1e-10, max_steps=200_000)
TIGHT = EventEngine(tol=1e-11, max_steps=200_000)


def column(shape=(4, 4, 5), seed=1):
    t = Tissue.cube(shape, stencil=26, weight_scale=0.3, seed=seed, dtype="float64", bias=0.3)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=4, layout="interleaved")
    return t


def cos(a, b):
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


def test_the_nudge_is_never_off_and_the_lock_in_weights_demodulate():
    c = ContinuousNudge(beta=0.1, modulation=0.5, cycle=5)
    betas, sins = c.nudges()
    assert betas.min() >= 0.1 * 0.5 - 1e-12 and betas.min() > 0     # always nudged, never switched
    assert abs(sins.sum()) < 1e-12 and (sins ** 2).sum() == pytest.approx(5 / 2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_update_aligns_with_the_exact_gradient(seed):
    # 80 neurons; the bound: the lock-in contrast is a central difference around the base nudge
    # beta (its own error O((a beta)^2), like symmetric EqProp's) of the gradient of the cost *at
    # the beta-nudged state*, which differs from the free state's by O(beta): at beta = 0.01 the
    # relative error is ~1e-2 * (a few) in the worst direction, so cos >= 0.999 (measured 0.9999;
    # at beta = 0.1 the O(beta) bias brings it to ~0.98, below symmetric EqProp's ~0.997).
    t = column(seed=seed)
    rng = np.random.default_rng(seed)
    x, labels = rng.random((4, 16)), np.array([0, 1, 2, 3])
    free = FREE.settle(t, inputs=x)
    gW, gb = exact_gradient(t, free.state, one_hot_targets(labels, t))
    # the cycle continues from the free fixed point the exact gradient is taken at (this tissue is
    # not contracting: from rest, another engine or nudge could pick another of its fixed points)
    g, gbias, res = ContinuousNudge(beta=0.01).estimate(t, TIGHT, x, labels, init=free.state)
    assert len(res) == 4 and all(r.converged.all() for r in res)
    assert cos(g, -gW) >= 0.999 and cos(gbias, -gb) >= 0.999
    # sign agreement on the synapses that matter (the largest tenth of the exact gradient)
    big = np.abs(gW) >= np.quantile(np.abs(gW[gW != 0]), 0.9)
    assert np.mean(np.sign(g[big]) == np.sign(-gW[big])) == 1.0
    # and the scale is that of the gradient (the lr means the same as EqProp's)
    assert 0.8 < np.linalg.norm(g) / np.linalg.norm(gW) < 1.25
    # a stronger base nudge is a worse estimate (the O(beta) bias)
    g1, _, _ = ContinuousNudge(beta=0.1).estimate(t, TIGHT, x, labels, init=free.state)
    assert cos(g1, -gW) < cos(g, -gW)


def test_continuous_nudging_learns_a_pattern_task_well_above_chance():
    from studies.config import load_config
    from studies.learn import build_learning

    cfg = load_config({"seed": 0, "tissue": {"shape": [8, 8, 3], "bias": 0.2},
                       "task": {"name": "patterns", "n_classes": 4, "noise": 0.1},
                       "learning": {"epochs": 2, "mode": "continuous"},
                       "dynamics": {"max_steps": 150, "tol": 1e-3, "engine": "events"}})
    s = build_learning(cfg)
    assert isinstance(s.trainer, ContinuousNudge) and isinstance(s.engine, EventEngine)
    before = s.trainer.evaluate(s.tissue, s.engine, s.xte, s.task.y_test)["accuracy"]
    for epoch in range(2):
        s.trainer.fit_epoch(s.tissue, s.engine, s.xtr, s.task.y_train, epoch=epoch, epochs=2)
    after = s.trainer.evaluate(s.tissue, s.engine, s.xte, s.task.y_test)["accuracy"]
    # 4 classes: chance is 0.25 (binomial sd over 200 test samples ~0.03)
    assert before < 0.4 and after >= 0.75, (before, after)


def test_export_import_resumes_exactly():
    t0 = column((4, 4, 4), seed=3)
    rng = np.random.default_rng(3)
    x, y = rng.random((16, 16)), rng.integers(0, 4, 16)
    eng = EventEngine(tol=1e-8)
    kw = {"beta": 0.05, "batch_size": 8, "optimizer": "adam", "lr": 0.01, "restart": False, "contrast_tau": 4.0}
    full_t, full = t0.copy(), ContinuousNudge(**kw)
    for ep in range(2):
        full.fit_epoch(full_t, eng, x, y, epoch=ep)
    half_t, half = t0.copy(), ContinuousNudge(**kw)
    half.fit_epoch(half_t, eng, x, y, epoch=0)
    state = {k: np.array(v) for k, v in half.export_state().items()}
    assert "opt_cbar" in state and "opt_m" in state
    again = ContinuousNudge(**kw)
    again.import_state(half_t, state)
    again.fit_epoch(half_t, eng, x, y, epoch=1)
    np.testing.assert_array_equal(half_t.syn.w, full_t.syn.w)
    np.testing.assert_array_equal(half_t.bias, full_t.bias)


@pytest.mark.parametrize("kw,key", [({"modulation": 0.0}, "modulation"), ({"modulation": 1.0}, "modulation"),
                                    ({"cycle": 2}, "cycle"), ({"cycle": 4.5}, "cycle"),
                                    ({"contrast_tau": 0.5}, "contrast_tau"), ({"beta": 0.0}, "beta")])
def test_bad_parameters_are_refused_by_name(kw, key):
    with pytest.raises(ValueError, match=key):
        ContinuousNudge(**kw)
