"""Bit-identical trajectories: across thread counts, repeated runs and resumed runs."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics import Langevin
from tissue import Tissue

SCRIPT = r"""
import sys
import numba
import numpy as np
from dynamics import Langevin
from tissue import Recorder, Tissue

out, threads = sys.argv[1] if len(sys.argv) > 1 else ".", {threads}
assert numba.config.NUMBA_NUM_THREADS == threads, numba.config.NUMBA_NUM_THREADS
assert numba.get_num_threads() == threads
t = Tissue.cube((16, 16, 16), stencil=26, small_world=0.05, activation="{act}", dtype="{dtype}", seed=3)
t.bias[:] = np.random.default_rng(0).normal(0, 0.2, t.n)
t.set_input(t.lattice.face("z-"))
rng = np.random.default_rng(1)
inputs = rng.uniform(0, 1, (3, len(t.region("input"))))
init = rng.uniform(0, 1, (3, t.n))
for seed in (7, 8):
    eng = Langevin(dt=0.3, temperature=0.05, seed=seed)
    rec = Recorder(None, every=5, variables=("activation", "velocity", "energy"))
    res = eng.settle(t, inputs=inputs, init=init, steps=40, record=rec)
    np.save(f"state_{{seed}}.npy", res.state)
    np.save(f"energy_{{seed}}.npy", res.energy)
    np.save(f"speed_{{seed}}.npy", res.speed)
    np.save(f"traj_energy_{{seed}}.npy", res.trajectory.energy.values)
    np.save(f"traj_act_{{seed}}.npy", res.trajectory.activation.values)
    np.save(f"traj_vel_{{seed}}.npy", res.trajectory.velocity.values)
# a T = 0 settle too: the convergence test and step counts must not depend on threads
res = Langevin(dt=0.3, tol=1e-4, max_steps=3000).settle(t, inputs=inputs, init=init)
np.save("t0_state.npy", res.state)
np.save("t0_steps.npy", res.steps)
print("ok", t.n, numba.get_num_threads())
"""

NAMES = ["state_7", "energy_7", "speed_7", "traj_energy_7", "traj_act_7", "traj_vel_7",
         "state_8", "energy_8", "traj_energy_8", "t0_state", "t0_steps"]


@pytest.mark.parametrize("act,dtype", [("hard_sigmoid", "float32"), ("tanh", "float64")])
def test_bit_identical_with_1_and_2_threads(tmp_path, python_subprocess, act, dtype):
    results = {}
    for threads in (1, 2):
        d = tmp_path / f"threads{threads}"
        d.mkdir()
        out = python_subprocess(SCRIPT.format(threads=threads, act=act, dtype=dtype), cwd=d,
                                env_extra={"NUMBA_NUM_THREADS": threads})
        assert out.split() == ["ok", "4096", str(threads)]  # 4096 neurons = 4 work chunks
        results[threads] = {k: np.load(d / f"{k}.npy") for k in NAMES}
    for k in NAMES:
        a, b = results[1][k], results[2][k]
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b), f"{k} differs between 1 and 2 threads"
    r = results[1]
    assert np.all(np.isfinite(r["state_7"])) and r["traj_energy_7"].shape == (9, 3)  # steps 0..40 / 5
    # the noise matters: another seed gives another trajectory, and the trials differ
    assert not np.array_equal(r["state_7"], r["state_8"])
    assert not np.array_equal(r["state_7"][0], r["state_7"][1])
    assert r["t0_steps"].min() > 0


def test_same_seed_same_run_and_resume_continues_the_stream():
    t = Tissue.cube((6, 6, 6), stencil=18, activation="sigmoid", dtype="float32", seed=1)
    init = np.random.default_rng(2).normal(0, 1, (4, t.n))
    eng = Langevin(dt=0.2, temperature=0.1, seed=5)
    a = eng.settle(t, init=init, steps=30)
    b = eng.settle(t, init=init, steps=30)
    assert np.array_equal(a.state, b.state) and np.array_equal(a.energy, b.energy)
    # 30 steps == 18 steps, then 12 more continuing the global step counter
    first = eng.settle(t, init=init, steps=18)
    assert first.step_end == 18
    second = eng.settle(t, init=first.state, steps=12, start_step=first.step_end)
    assert second.step_end == 30
    assert np.array_equal(second.state, a.state)
    # restarting the counter instead replays the noise: a different trajectory
    wrong = eng.settle(t, init=first.state, steps=12)
    assert not np.array_equal(wrong.state, a.state)
    # a different seed gives a different trajectory
    c = Langevin(dt=0.2, temperature=0.1, seed=6).settle(t, init=init, steps=30)
    assert not np.array_equal(c.state, a.state)


def test_trials_are_independent_of_the_batch():
    """Trial b's noise depends on (seed, step, neuron, b) only: running a trial
    alone or within a batch gives the same trajectory (to rounding: the kernel may
    vectorise the trial loop, and fuse multiply-adds, differently for B = 1)."""
    t = Tissue.cube((5, 5, 5), stencil=26, activation="tanh", dtype="float64", seed=1)
    init = np.random.default_rng(3).normal(0, 1, (3, t.n))
    eng = Langevin(dt=0.25, temperature=0.2, seed=9)
    batch = eng.settle(t, init=init, steps=20)
    first = eng.settle(t, init=init[:1], steps=20)
    np.testing.assert_allclose(batch.state[0], first.state[0], rtol=0, atol=1e-12)
    other = Langevin(dt=0.25, temperature=0.2, seed=10).settle(t, init=init[:1], steps=20)
    assert np.abs(other.state[0] - first.state[0]).max() > 1e-3
