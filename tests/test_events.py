"""The event-driven engine (dynamics.events): the clocked engine's fixed points, exact work
accounting, determinism, warm starts, errors, and its configuration keys."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics import GroupSquared, Langevin, SimulationDiverged
from dynamics.events import EventEngine, EventResult, clocked_synapse_ops
from plasticity import EqProp
from plasticity.readout import one_hot_targets
from studies.config import ConfigError, load_config
from tissue import Tissue


def contracting(shape, stencil=26, small_world=0.0, seed=0, rowsum=0.4, dtype="float64", act="hard_sigmoid"):
    """A tissue whose weights are scaled to ``max_i sum_j |W_ij| = rowsum``: the
    energy is strongly convex on the box (curvature >= 1 - rowsum), so the fixed
    point is unique and any two states of speed < tol lie close to it."""
    t = Tissue.cube(shape, stencil=stencil, small_world=small_world, seed=seed, dtype=dtype, activation=act,
                    bias=0.0)
    rng = np.random.default_rng(seed)
    t.bias[:] = rng.uniform(-0.2, 0.8, t.n)
    rs = np.abs(t.syn.w).sum(axis=1).max()
    t.syn.w *= rowsum / rs
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=2)
    return t


CLOCKED = Langevin(dt=0.5, tol=1e-7, max_steps=200_000)


@settings(max_examples=20)
@given(
    shape=st.tuples(st.integers(2, 5), st.integers(2, 5), st.integers(3, 5)),
    stencil=st.sampled_from([6, 18, 26]),
    small_world=st.sampled_from([0.0, 0.2]),
    seed=st.integers(0, 10_000),
    beta=st.sampled_from([0.0, 0.5, -0.3, 1.0]),
    dead=st.booleans(),
    order=st.sampled_from(["fifo", "residual"]),
    epsilon=st.sampled_from([None, 0.0, 1e-3]),
)
def test_event_engine_reaches_the_clocked_fixed_point(shape, stencil, small_world, seed, beta, dead, order, epsilon):
    t = contracting(shape, stencil, small_world, seed)
    rng = np.random.default_rng(seed)
    if dead:
        t.kill(rng.choice(np.flatnonzero(t.role == 0), size=max(1, t.n // 10), replace=False))
    n_in, n_out = len(t.region("input")), len(t.region("output"))
    x = rng.random((2, n_in))
    y = rng.random((2, n_out))
    init = rng.random((2, t.n))
    tol = 1e-7
    ref = CLOCKED.settle(t, inputs=x, init=init, target=y, beta=beta)
    ev = EventEngine(tol=tol, order=order, epsilon=epsilon, max_steps=200_000).settle(
        t, inputs=x, init=init, target=y, beta=beta)
    assert ref.converged.all() and ev.converged.all()
    assert np.abs(ev.state - ref.state).max() <= 10 * tol
    # clamps and dead voxels hold, the speed it reports is the clocked engine's measure
    np.testing.assert_array_equal(ev.state[:, t.region("input")], x)
    assert np.all(ev.state[:, ~t.alive] == 0)
    f = Langevin.force(t, ev.state, target=y, beta=beta)
    v = (np.clip(ev.state + 0.5 * f, 0, 1) - ev.state) / 0.5      # the projected drift (dt = 0.5)
    assert np.abs(v).max() < tol
    np.testing.assert_allclose(ev.energy, Langevin.energy(t, ev.state), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ev.cost, Langevin.cost(t, ev.state, y), rtol=1e-9, atol=1e-12)


def test_group_cost_nudge_and_linear_rates_match_the_clocked_engine():
    t = contracting((4, 4, 4), seed=3)
    rng = np.random.default_rng(3)
    x = rng.random((3, 16))
    out = t.region("output")
    cost = GroupSquared(t.group[out], [0, 1, 1], 2)
    ref = CLOCKED.settle(t, inputs=x, beta=0.5, cost=cost)
    ev = EventEngine(tol=1e-7).settle(t, inputs=x, beta=0.5, cost=cost)
    assert ev.converged.all() and np.abs(ev.state - ref.state).max() <= 1e-6
    np.testing.assert_allclose(ev.cost, ref.cost, atol=1e-9)
    lin = contracting((3, 3, 4), seed=4, act="linear")
    x = rng.random((1, 9))
    ref = CLOCKED.settle(lin, inputs=x)
    ev = EventEngine(tol=1e-7).settle(lin, inputs=x)
    assert np.abs(ev.state - ref.state).max() <= 1e-6


def chain(w12=0.0):
    """Input 0 -- 1 -- 2 (output) along z: 4 synapse slots, hand-countable."""
    t = Tissue.cube((1, 1, 3), stencil=6, init="constant", weight_scale=0.5, dtype="float64", bias=0.0)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=1)
    t.bias[:] = [0.0, 0.1, 0.3]
    i = int(np.flatnonzero(t.syn.nbr[1] == 2)[0])
    t.syn.w[1, i] = w12
    t.syn.w[2, t.syn.rev[1, i]] = w12
    t.syn.check()
    return t


@pytest.mark.parametrize("epsilon", [0.0, 1.0])
def test_synapse_operations_are_counted_exactly(epsilon):
    t = chain()
    assert EventEngine.slots(t) == 4
    eng = EventEngine(tol=1e-9, epsilon=epsilon)
    cold = eng.settle(t, inputs=[[1.0]])
    # the fields of all 3 neurons (1 + 2 + 1 slots); neuron 1 moves 0 -> 0.6 and tells its
    # 2 neighbours; neuron 2 moves 0 -> 0.3 and tells its 1; the zero weight changes no field
    assert cold.synapse_ops[0] == 4 + 2 + 1
    np.testing.assert_allclose(cold.state[0], [1.0, 0.6, 0.3])
    assert cold.steps[0] == pytest.approx(7 / 4)
    # warm, the input 1 -> 0.5: the input tells neuron 1 (1 op), which moves to 0.35 and tells 2
    warm = eng.settle(t, inputs=[[0.5]], warm=cold)
    assert warm.synapse_ops[0] == 1 + 2
    assert warm.broadcasts[0] == 2 and warm.updates[0] == 1
    np.testing.assert_allclose(warm.state[0], [0.5, 0.35, 0.3])
    # the clocked engine's count: every kernel call computes every field
    ref = Langevin(dt=0.5, tol=1e-9).settle(t, inputs=[[1.0]])
    assert clocked_synapse_ops(t, ref) == (ref.step_end + 1) * 4


def test_batches_are_deterministic_and_equal_to_single_trials():
    import numba

    t = contracting((5, 5, 5), small_world=0.2, seed=7, dtype="float32")
    x = np.random.default_rng(1).random((6, 25))
    y = np.full((6, 25), 0.5)
    runs = {}
    old = numba.get_num_threads()
    try:
        for th in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(th)
            r = EventEngine(tol=1e-6).settle(t, inputs=x, target=y, beta=0.3)
            runs[th] = (r.state, r.synapse_ops, r.energy)
    finally:
        numba.set_num_threads(old)
    first = next(iter(runs.values()))
    for other in runs.values():
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b)
    # the batch kernel gives each trial what a settle of that trial alone gives (the serial kernel)
    for b in (0, 5):
        one = EventEngine(tol=1e-6).settle(t, inputs=x[b:b + 1], target=y[b:b + 1], beta=0.3)
        np.testing.assert_array_equal(one.state[0], first[0][b])
        assert one.synapse_ops[0] == first[1][b]


def test_warm_start_tracks_a_changing_input_with_less_work():
    t = contracting((8, 8, 8), seed=2)
    eng = EventEngine(tol=1e-7)
    rng = np.random.default_rng(2)
    x = rng.random((1, 64))
    first = eng.settle(t, inputs=x)
    x2 = x.copy()
    x2[0, 10] = 1.0 - x2[0, 10]             # one input voxel changes
    t.bias[100] += 0.2                      # and one bias
    warm = eng.settle(t, inputs=x2, warm=first)
    cold = CLOCKED.settle(t, inputs=x2)
    assert isinstance(warm, EventResult) and warm.converged.all()
    assert np.abs(warm.state - cold.state).max() <= 1e-6
    # a local change is paid locally: less than one sweep of the tissue
    assert warm.synapse_ops[0] < EventEngine.slots(t)
    with pytest.raises(ValueError, match="warm"):
        eng.settle(chain(), inputs=[[1.0]], warm=first)


def test_eqprop_runs_unchanged_on_the_event_engine():
    t = contracting((4, 4, 5), seed=5)
    rng = np.random.default_rng(5)
    x, labels = rng.random((4, 16)), np.array([0, 1, 0, 1])
    ep = EqProp(beta=0.05)
    g_ref, _ = ep.gradient(t, *ep.phases(t, CLOCKED, x, labels))
    g_ev, _ = ep.gradient(t, *ep.phases(t, EventEngine(tol=1e-9), x, labels))
    cos = (g_ref * g_ev).sum() / np.linalg.norm(g_ref) / np.linalg.norm(g_ev)
    assert cos > 0.9999
    rep = ep.train_step(t, EventEngine(tol=1e-6), x, labels)
    assert rep.free_converged.all() and np.isfinite(rep.loss)


def test_errors_name_the_argument():
    t = contracting((3, 3, 3))
    for kw, msg in (({"tol": 0}, "tol"), ({"theta": 1.5}, "theta"), ({"order": "lifo"}, "order"),
                    ({"epsilon": -1.0}, "epsilon"), ({"temperature": 0.1}, "temperature"),
                    ({"max_steps": 0}, "max_steps"), ({"relax": 0.0}, "relax"), ({"relax": 1.5}, "relax")):
        with pytest.raises(ValueError, match=msg):
            EventEngine(**kw)
    sig = Tissue.cube((3, 3, 3), activation="sigmoid")
    with pytest.raises(ValueError, match="activation"):
        EventEngine().settle(sig)
    with pytest.raises(ValueError, match="beta > -1"):
        EventEngine().settle(t, inputs=np.zeros((1, 9)), target=np.zeros((1, 9)), beta=-1.0)
    with pytest.raises(ValueError, match="record"):
        EventEngine().settle(t, record=True)
    lin = Tissue.cube((3, 3, 3), activation="linear", init="constant", weight_scale=0.5, dtype="float64")
    with pytest.raises(SimulationDiverged):
        EventEngine(blowup=1e3).settle(lin, init=np.ones(27))
    one = EventEngine(tol=1e-12, max_steps=1).settle(contracting((4, 4, 4)))
    assert not one.converged[0] and one.synapse_ops[0] <= 3 * EventEngine.slots(contracting((4, 4, 4)))


LEARN = {
    "tissue": {"shape": [8, 8, 3]}, "task": {"name": "patterns"}, "learning": {"epochs": 1},
    "dynamics": {"max_steps": 100},
}


def with_(section, **kw):
    cfg = {k: dict(v) for k, v in LEARN.items()}
    cfg[section].update(kw)
    return cfg


@pytest.mark.parametrize("cfg,msg", [
    (with_("dynamics", engine="lazy"), "[dynamics] engine = \"lazy\": must be one of \"clocked\", \"events\""),
    (with_("dynamics", epsilon=1e-4), "[dynamics] epsilon = 0.0001: only with engine = \"events\""),
    (with_("dynamics", order="fifo"), "[dynamics] order"),
    (with_("dynamics", engine="events", epsilon=-1.0), "[dynamics] epsilon = -1"),
    (with_("dynamics", engine="events", order="random"), "[dynamics] order = \"random\": must be one of \"fifo\""),
    ({"tissue": {"shape": [4, 4, 4]}, "dynamics": {"engine": "events",
                                                   "phases": [{"temperature": 0.0, "steps": 5}]}},
     "[dynamics] engine = \"events\": must be \"clocked\" in settle runs"),
    (with_("learning", mode="both"), "[learning] mode = \"both\": must be one of \"two_phase\", \"continuous\""),
    (with_("learning", cycle=4), "[learning] cycle = 4: only with mode = \"continuous\""),
    (with_("learning", mode="continuous", cycle=2), "[learning] cycle = 2"),
    (with_("learning", mode="continuous", modulation=1.0), "[learning] modulation = 1"),
    (with_("learning", mode="continuous", contrast_tau=0.5), "[learning] contrast_tau = 0.5"),
])
def test_config_keys_are_validated_with_clear_errors(cfg, msg):
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert msg in str(err.value)


def test_configs_choose_the_engine_and_the_trainer():
    from plasticity.continuous import ContinuousNudge
    from studies.learn import build_learning

    for path, eng_cls, tr_cls in (("configs/learn-digits-events.toml", EventEngine, EqProp),
                                  ("configs/learn-digits-continuous.toml", Langevin, ContinuousNudge)):
        from tests.conftest import REPO

        cfg = load_config(REPO / path)
        assert load_config(cfg.to_dict()) == cfg
        setup = build_learning(cfg)
        assert type(setup.engine) is eng_cls and type(setup.trainer) is tr_cls
        assert setup.engine.tol == cfg.dynamics.tol and setup.engine.max_steps == cfg.dynamics.max_steps
    plain = load_config(LEARN)
    assert plain.dynamics.engine == "clocked" and plain.learning.mode == "two_phase"
    assert "epsilon" not in plain.to_dict()["dynamics"] and "cycle" not in plain.to_dict()["learning"]
    ev = build_learning(load_config(with_("dynamics", engine="events", epsilon=1e-5, order="residual")))
    assert ev.engine.eps == 1e-5 and ev.engine.order == "residual"
    y = one_hot_targets([0], ev.tissue)
    assert y.shape == (1, len(ev.tissue.region("output")))
