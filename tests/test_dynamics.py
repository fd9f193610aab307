"""T = 0 gradient flow: energy descent, settled states, energy and force kernels.

Every reference here is computed in NumPy/SciPy from the CSR weight matrix
(``Tissue.to_scipy``), independently of the Numba kernels:

    rho(s), E = 1/2 sum_alive s^2 - 1/2 r^T W r - b^T r,   f = -s + rho'(s) (W r + b).

With the weights scaled so that the largest row sum of |W| is <= 0.9, every
critical point of E has a Hessian >= 0.1 I (for sigmoid and tanh the
curvature of rho adds a non-negative diagonal at a critical point), so the
settled state is the unique minimiser and can be found independently: by a
linear solve (linear), by the contraction s <- clip(W s + b) (hard sigmoid) or
by L-BFGS on the NumPy energy (sigmoid, tanh).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from hypothesis import given
from hypothesis import strategies as st

from dynamics import Langevin
from tissue import Recorder, Tissue

ACTS = ("hard_sigmoid", "sigmoid", "tanh", "linear")
TOL = 1e-7


# ------------------------------------------------------ numpy references
def rho_np(s, act):
    if act == "hard_sigmoid":
        return np.clip(s, 0.0, 1.0)
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-s))
    if act == "tanh":
        return np.tanh(s)
    return s


def drho_np(s, act):
    if act == "sigmoid":
        r = 1.0 / (1.0 + np.exp(-s))
        return r * (1.0 - r)
    if act == "tanh":
        return 1.0 - np.tanh(s) ** 2
    return np.ones_like(s)


def energy_np(t, s):
    """Energy of one ``(N,)`` state over the living units, from the CSR matrix."""
    W = t.to_scipy().astype(np.float64)
    a = t.alive
    s = np.asarray(s, np.float64)
    r = rho_np(s, t.activation)
    b = t.bias.astype(np.float64)
    return 0.5 * np.sum(s[a] ** 2) - 0.5 * r[a] @ (W @ r)[a] - b[a] @ r[a]


def force_np(t, s):
    """``-dE/ds`` of one ``(N,)`` state (0 on clamped and dead voxels)."""
    W = t.to_scipy().astype(np.float64)
    s = np.asarray(s, np.float64)
    f = -s + drho_np(s, t.activation) * (W @ rho_np(s, t.activation) + t.bias.astype(np.float64))
    f[t.clamped] = 0.0
    return f


def speed_np(t, s, dt):
    """``|ds/dt|`` of the drift: projected onto the box [0, 1] for the hard sigmoid."""
    f = force_np(t, s)
    if t.activation == "hard_sigmoid":
        return np.abs(np.clip(s + dt * f, 0.0, 1.0) - s) / dt
    return np.abs(f)


def fixed_point_np(t, s0):
    """The unique settled state with the clamped/dead units of ``s0`` held fixed."""
    W = t.to_scipy().astype(np.float64).tocsr()
    b = t.bias.astype(np.float64)
    free = ~t.clamped
    s = np.array(s0, np.float64)
    s[~t.alive] = 0.0
    fi = np.flatnonzero(free)
    if len(fi) == 0:
        return s
    act = t.activation
    h_c = W[fi][:, ~free] @ rho_np(s[~free], act) + b[fi]  # field from the clamped units
    W_ff = W[fi][:, fi]
    if act == "linear":
        s[fi] = np.linalg.solve(np.eye(len(fi)) - W_ff.toarray(), h_c)
    elif act == "hard_sigmoid":  # a contraction in the max norm (row sums <= 0.9)
        x = np.clip(s[fi], 0, 1)
        for _ in range(5000):
            x_new = np.clip(W_ff @ x + h_c, 0.0, 1.0)
            done = np.max(np.abs(x_new - x)) < 1e-15
            x = x_new
            if done:
                break
        s[fi] = x
    else:
        def fun(x):
            r = rho_np(x, act)
            e = 0.5 * x @ x - 0.5 * r @ (W_ff @ r) - h_c @ r
            g = x - drho_np(x, act) * (W_ff @ r + h_c)
            return e, g

        res = scipy.optimize.minimize(fun, np.zeros(len(fi)), jac=True, method="L-BFGS-B",
                                      options=dict(gtol=1e-12, ftol=1e-15, maxiter=10000))
        # polish: the minimiser is the root of the gradient (Newton-like hybrid method)
        root = scipy.optimize.root(lambda x: fun(x)[1], res.x, method="hybr", tol=1e-15)
        assert np.max(np.abs(fun(root.x)[1])) < 1e-11, root.message
        s[fi] = root.x
    return s


# ------------------------------------------------------- random tissues
@st.composite
def tissue_cases(draw):
    shape = tuple(draw(st.integers(1, 5)) for _ in range(3))
    act = draw(st.sampled_from(ACTS))
    # descent needs dt < 2 / L: L <= 1.9 for the quadratic cases (hard sigmoid on its box,
    # linear); L <= 1 + 0.77 * 1.9 + 0.9 < 3.4 for tanh (|rho''| <= 0.77, |h| <= 1.9)
    dts = [0.2, 0.5, 0.9] if act in ("hard_sigmoid", "linear") else [0.2, 0.5]
    return dict(
        shape=shape,
        stencil=draw(st.sampled_from([6, 18, 26])),
        act=act,
        small_world=draw(st.sampled_from([0.0, 0.0, 0.15])),
        seed=draw(st.integers(0, 2**20)),
        gain=draw(st.floats(0.05, 1.0)),          # max row sum of |W| = 0.9 * gain
        bias_scale=draw(st.floats(0.0, 1.0)),
        clamp_frac=draw(st.sampled_from([0.0, 0.1, 0.3])),
        kill_frac=draw(st.sampled_from([0.0, 0.0, 0.15])),
        n_trials=draw(st.integers(1, 3)),
        dt=draw(st.sampled_from(dts)),
    )


def build(case):
    """A float64 tissue with |W| row sums <= 0.9, random biases, clamps and deaths,
    plus ``(inputs, init)`` for a batch of trials."""
    rng = np.random.default_rng(case["seed"])
    t = Tissue.cube(case["shape"], stencil=case["stencil"], small_world=case["small_world"],
                    init="normal", weight_scale=1.0, activation=case["act"], dtype="float64",
                    seed=case["seed"])
    rows = np.abs(t.syn.w).sum(1).max() if t.syn.n_synapses else 0.0
    if rows > 0:
        t.syn.w *= 0.9 * case["gain"] / rows
    t.bias[:] = rng.uniform(-case["bias_scale"], case["bias_scale"], t.n)
    n = t.n
    clamp = rng.random(n) < case["clamp_frac"]
    if clamp.any():
        t.set_input(np.flatnonzero(clamp))
    dead = rng.random(n) < case["kill_frac"]
    if dead.any():
        t.kill(np.flatnonzero(dead))
    b = case["n_trials"]
    lo = 0.0 if case["act"] == "hard_sigmoid" else -1.0
    n_in = len(t.region("input"))
    inputs = rng.uniform(lo, 1.0, (b, n_in)) if n_in else None
    init = rng.uniform(lo - 0.5, 1.5, (b, n))  # hard sigmoid: clipped into the box
    return t, inputs, init


def check_kernels_against_numpy(t, states):
    e = Langevin.energy(t, states)
    f = Langevin.force(t, states)
    for b, s in enumerate(states):
        ref = energy_np(t, s)
        assert e[b] == pytest.approx(ref, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(f[b], force_np(t, s), rtol=1e-12, atol=1e-13)


@given(tissue_cases())
def test_gradient_flow_descends_and_settles(case):
    t, inputs, init = build(case)
    dt = case["dt"]
    eng = Langevin(dt=dt, temperature=0.0, tol=TOL, max_steps=20_000, seed=1)
    rec = Recorder(None, every=1, variables=("energy",))
    res = eng.settle(t, inputs=inputs, init=init, record=rec)

    # 1. the energy never increases between consecutive steps (float rounding only)
    E = res.trajectory.energy.values  # (time, trial), one frame per step
    assert E.shape == (res.step_end + 1, case["n_trials"])
    assert np.all(np.isfinite(E))
    rise = np.diff(E, axis=0)
    allowed = 1e-10 * (1 + np.abs(E[:-1]))
    assert np.all(rise <= allowed), f"energy rose by {rise.max():.3g}"

    # 2. every trial settles, and its state is a fixed point by an independent force
    assert res.converged.all() and np.all(res.steps < 20_000)
    s0 = eng.initial_state(t, inputs=inputs, init=init).T
    for b in range(case["n_trials"]):
        s = res.state[b]
        assert np.max(speed_np(t, s, dt)) < TOL
        # clamped units kept their value, dead units rest at 0
        np.testing.assert_array_equal(s[t.clamped], s0[b][t.clamped])
        assert np.all(s[~t.alive] == 0)
        if t.activation == "hard_sigmoid":
            assert s.min() >= 0 and s.max() <= 1
        # 3. ... and it is the unique minimiser found by NumPy/SciPy
        np.testing.assert_allclose(s, fixed_point_np(t, s0[b]), atol=2e-5, rtol=0)
    np.testing.assert_allclose(res.rates, rho_np(res.state, t.activation), rtol=1e-15, atol=0)

    # 4. the energy kernel and the force kernel agree with NumPy, start and end
    check_kernels_against_numpy(t, np.concatenate([s0, res.state]))
    np.testing.assert_allclose(res.energy, [energy_np(t, s) for s in res.state], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(E[0], [energy_np(t, s) for s in s0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(E[-1], res.energy, rtol=0, atol=0)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_energy_and_force_kernels_on_random_states(act, dtype):
    """Arbitrary (not settled) states, including states outside [0, 1] for the
    hard sigmoid and non-zero values on dead voxels (which must not count)."""
    rng = np.random.default_rng(3)
    t = Tissue.cube((5, 4, 6), stencil=26, small_world=0.1, init="normal", weight_scale=0.5,
                    activation=act, dtype=dtype, seed=4)
    t.bias[:] = rng.normal(0, 1, t.n)
    t.set_input(t.lattice.face("x-"))
    t.kill(t.lattice.ball((3, 2, 3), 1.0))
    states = rng.normal(0, 2, (4, t.n)).astype(dtype)
    e = Langevin.energy(t, states)
    f = Langevin.force(t, states)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    for b, s in enumerate(states):
        assert e[b] == pytest.approx(energy_np(t, s), rel=rtol)
        np.testing.assert_allclose(f[b], force_np(t, s), rtol=rtol, atol=rtol)
        # the force is minus the gradient: compare with central differences of the numpy energy
        if dtype == "float64":
            free = np.flatnonzero(~t.clamped)[:10]
            for i in free:
                if act == "hard_sigmoid" and not 0.01 < s[i] < 0.99:
                    continue  # clip has a kink at 0 and 1
                h = 1e-6
                sp, sm = s.copy(), s.copy()
                sp[i] += h
                sm[i] -= h
                g = (energy_np(t, sp) - energy_np(t, sm)) / (2 * h)
                assert f[b, i] == pytest.approx(-g, rel=1e-5, abs=1e-6)


def test_trajectory_is_explicit_euler():
    """Recorded frames equal a NumPy Euler integration of ds/dt = f(s)."""
    rng = np.random.default_rng(0)
    t = Tissue.cube((4, 4, 3), stencil=18, init="normal", weight_scale=0.2, activation="tanh",
                    dtype="float64", seed=2)
    t.bias[:] = rng.uniform(-0.5, 0.5, t.n)
    s = rng.uniform(-1, 1, t.n)
    eng = Langevin(dt=0.3, tol=1e-12, max_steps=25)
    rec = Recorder(None, every=1, variables=("state", "energy"))
    res = eng.settle(t, init=s, record=rec)
    frames = res.trajectory.state.values.reshape(-1, t.n)  # float32 frames
    for k in range(25):
        np.testing.assert_allclose(frames[k], s, rtol=1e-6, atol=1e-7)
        s = s + 0.3 * force_np(t, s)
    np.testing.assert_allclose(res.state[0], s, rtol=1e-12, atol=1e-13)
    assert not res.converged[0] and res.steps[0] == 25


def test_converged_flag_and_step_cap():
    t = Tissue.cube((4, 4, 4), stencil=26, init="uniform", weight_scale=0.1, activation="linear",
                    dtype="float64", seed=0)
    t.bias[:] = 0.3
    short = Langevin(dt=0.5, tol=1e-10, max_steps=5).settle(t)
    assert not short.converged.any() and short.steps.tolist() == [5]
    full = Langevin(dt=0.5, tol=1e-10, max_steps=5000).settle(t)
    assert full.converged.all() and 5 < full.steps[0] < 5000
    assert np.abs(force_np(t, full.state[0])).max() < 1e-10
    # |f| ~ 1e-10 is the difference of O(1) terms (h - s): the two summation orders agree to ~eps |h|
    assert full.speed[0] == pytest.approx(np.abs(force_np(t, full.state[0])).max(), rel=1e-9, abs=1e-14)


def test_speed_is_that_of_the_returned_state_at_the_step_cap():
    t = Tissue.cube((4, 4, 4), stencil=26, init="uniform", weight_scale=0.1, activation="linear",
                    dtype="float64", seed=0)
    t.bias[:] = 0.3
    short = Langevin(dt=0.5, tol=1e-10, max_steps=5).settle(t)
    assert short.speed[0] == pytest.approx(np.abs(force_np(t, short.state[0])).max(), rel=1e-12)
