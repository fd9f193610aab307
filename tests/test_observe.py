"""The observatory's measures and traces, checked against independent truths: brute-force
distances, hand-made speed series and nudge profiles, a direct two-phase settle, and the linear
response of the nudge to beta."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamics import Langevin
from tissue import Recorder, Tissue
from tissue.metrics import at_rest_fraction, distance_from_output, nudge_depth, nudge_profile, settling_time


# ------------------------------------------------------------------ measures
@given(st.tuples(st.integers(2, 6), st.integers(2, 6), st.integers(2, 6)), st.integers(0, 2**32 - 1))
def test_distance_from_output_is_the_brute_force_chebyshev_distance(shape, seed):
    rng = np.random.default_rng(seed)
    role = np.zeros(shape, np.int8)
    role[rng.random(shape) < 0.15] = 2
    role.flat[rng.integers(role.size)] = 2
    got = distance_from_output(role)
    outs = np.argwhere(role == 2)
    for idx in itertools.product(*(range(n) for n in shape)):
        want = np.abs(outs - np.array(idx)).max(axis=1).min()
        assert got[idx] == want


def test_settling_time_is_the_first_frame_below_tol_for_good():
    speed = np.array([[5, 5], [0.5, 0.05], [0.05, 0.5], [0.01, 0.05], [0.01, 0.01]])
    np.testing.assert_array_equal(settling_time(speed, 0.1), [2, 3])
    np.testing.assert_array_equal(settling_time(np.full((4, 1), 9.0), 0.1), [4])   # never settles
    np.testing.assert_array_equal(settling_time(np.zeros((4, 1)), 0.1), [0])       # settled from the start


def _slab_role(nz=9):
    role = np.zeros((4, 4, nz), np.int8)
    role[:, :, -1] = 2    # output on z+
    role[:, :, 0] = 1     # input on z-
    return role


@pytest.mark.parametrize("length", [0.7, 1.5, 3.0])
def test_nudge_depth_of_an_exponential_profile(length):
    role = _slab_role()
    d = distance_from_output(role)
    nudge = 0.01 * np.exp(-d / length) * np.where(np.arange(4)[:, None, None] % 2, 1, -1)   # signs do not matter
    prof = nudge_profile(nudge, role)
    np.testing.assert_allclose(prof[:8], 0.01 * np.exp(-np.arange(8) / length))
    assert np.isnan(prof[8])                                                  # the clamped input layer
    thr = 0.05
    want = min(7, int(np.floor(length * np.log(1 / thr))))                    # exp(-d/L) >= thr
    assert nudge_depth(nudge, role, threshold=thr) == want
    # a dead layer in between does not break the chain, and the depth does not scale with beta
    alive = np.ones(role.shape, bool)
    alive[:, :, 7] = False               # the layer next to the output (distance 1)
    assert nudge_depth(3 * nudge, role, alive, threshold=thr) == want
    assert nudge_depth(np.zeros_like(nudge), role) == -1


def test_at_rest_fraction_counts_living_free_units():
    role = _slab_role(3)
    v = np.full(role.shape, 1.0)
    v[:2] = 1e-5                        # half of every layer at rest
    alive = np.ones(role.shape, bool)
    alive[3] = False                    # a quarter dead (never counted)
    # free living units: layers z = 1, 2 (input z = 0 excluded), x = 0..2 -> 24; at rest x = 0, 1 -> 16
    assert at_rest_fraction(v, role, alive, tol=1e-3) == pytest.approx(16 / 24)
    assert at_rest_fraction(np.stack([v, 0 * v]), role, alive, tol=1e-3).tolist() == pytest.approx([16 / 24, 1])


# ------------------------------------------------------------------ traces
@pytest.fixture(scope="module")
def small():
    t = Tissue.cube((5, 5, 5), stencil=26, weight_scale=0.25, bias=0.1, seed=3)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=5)
    rng = np.random.default_rng(0)
    x = rng.random((3, 25))
    y = (rng.random((3, 25)) < 0.5).astype(float)
    eng = Langevin(dt=0.5, tol=1e-6, max_steps=4000)
    return t, eng, x, y


def test_recorder_nudge_is_zero_without_reference(small, tmp_path):
    t, eng, x, _ = small
    res = eng.settle(t, x, record=Recorder(tmp_path / "r.zarr", variables=("activation", "nudge")))
    assert float(np.abs(res.trajectory.nudge).max()) == 0.0


def test_trace_records_free_then_nudged_phase(small, tmp_path):
    from studies.observe import trace_settling

    t, eng, x, y = small
    beta = 0.05
    ds = trace_settling(t, eng, x, y, beta, tmp_path / "trace.zarr", labels=[0, 1, 2])
    start = int(ds.attrs["phase_starts"][1]) if not isinstance(ds.attrs["phase_starts"], str) else \
        int(__import__("json").loads(ds.attrs["phase_starts"])[1])
    steps = ds.step.values
    nudge = ds.nudge.values
    assert np.abs(nudge[steps <= start]).max() == 0.0               # free phase: no nudge
    assert np.abs(nudge[-1]).max() > 1e-4                           # nudged phase: some
    # the last frame's nudge is the difference of two independent settles (free, then nudged)
    free = eng.settle(t, x)
    nudged = eng.settle(t, x, init=free.state, target=y, beta=beta)
    want = (nudged.rates - free.rates).reshape(3, 5, 5, 5)
    np.testing.assert_allclose(nudge[-1], want, atol=1e-5)
    np.testing.assert_array_equal(ds.settling_steps.values, np.stack([free.steps, nudged.steps]))
    assert ds.at_rest.values[-1].min() == 1.0 and ds.at_rest.values[0].max() < 1.0
    assert ds.label.values.tolist() == [0, 1, 2]
    assert ds.attrs["beta"] == beta and "dt" in ds.attrs             # attributes survive the append


def test_nudge_responds_linearly_to_small_beta(small):
    """First-order response: the nudged fixed point moves by beta * (a fixed vector), so the nudge
    at 2 beta is twice the nudge at beta (to O(beta^2)), and the depth does not change."""
    t, eng, x, y = small
    role = t.lattice.grid(t.role)
    free = eng.settle(t, x)
    n1 = eng.settle(t, x, init=free.state, target=y, beta=1e-3).rates - free.rates
    n2 = eng.settle(t, x, init=free.state, target=y, beta=2e-3).rates - free.rates
    big = np.abs(n1) > 1e-5
    assert big.sum() > 20
    np.testing.assert_allclose(n2[big], 2 * n1[big], rtol=0.05)
    d1 = nudge_depth(n1.reshape(3, 5, 5, 5), role)
    d2 = nudge_depth(n2.reshape(3, 5, 5, 5), role)
    np.testing.assert_array_equal(d1, d2)
