"""Trajectories in zarr: read-back equality, CF attributes, regions, flat memory, divergence."""

from __future__ import annotations

import json
from importlib.metadata import version

import numpy as np
import pytest
import xarray as xr

from dynamics import Langevin, SimulationDiverged
from tissue import Recorder, Tissue, open_run
from tissue.records import read_checkpoint

ALL_VARS = ("activation", "velocity", "state", "energy")


def small_tissue(act="tanh", dtype="float32", shape=(4, 5, 3), seed=0):
    t = Tissue.cube(shape, stencil=26, init="normal", weight_scale=0.15, activation=act, dtype=dtype,
                    seed=seed)
    t.bias[:] = np.random.default_rng(seed).uniform(-0.3, 0.3, t.n)
    t.set_input(t.lattice.face("x-"))
    return t


def run(t, record, temperature=0.05, steps=37, n_trials=3, seed=4):
    rng = np.random.default_rng(1)
    inputs = rng.uniform(0, 1, (n_trials, len(t.region("input"))))
    init = rng.uniform(-1, 1, (n_trials, t.n))
    eng = Langevin(dt=0.2, temperature=temperature, tol=1e-6, seed=seed)
    return eng.settle(t, inputs=inputs, init=init, steps=steps, record=record)


def grid_frames(res, ds, name):
    """``(time, trial, N)`` view of a recorded grid variable."""
    a = ds[name].transpose("time", "trial", "x", "y", "z").values
    return a.reshape(a.shape[0], a.shape[1], -1)


# ---------------------------------------------------------- read-back
@pytest.mark.parametrize("act", ["tanh", "hard_sigmoid"])
def test_store_equals_in_memory_trajectory_and_result(tmp_path, act):
    t = small_tissue(act)
    mem = run(t, Recorder(None, every=1, variables=ALL_VARS))
    path = tmp_path / "run.zarr"
    disk = run(t, Recorder(path, every=1, variables=ALL_VARS))
    np.testing.assert_array_equal(mem.state, disk.state)  # the recorder does not perturb the run

    ds_mem = mem.trajectory
    ds = open_run(path)
    assert dict(ds.sizes) == {"time": 38, "trial": 3, "x": 4, "y": 5, "z": 3}
    assert ds["time"].dims == ("time",) and ds["activation"].dims == ("time", "trial", "x", "y", "z")
    for name in ALL_VARS + ("alive", "role", "step", "time", "x", "y", "z", "trial"):
        np.testing.assert_array_equal(ds[name].values, ds_mem[name].values, err_msg=name)
        assert ds[name].dims == ds_mem[name].dims
        assert ds[name].dtype == ds_mem[name].dtype
    xr.testing.assert_equal(ds.drop_attrs(), ds_mem.drop_attrs())
    # record=True: the in-memory default (activation, velocity, energy every step)
    plain = run(t, True).trajectory
    assert set(plain.data_vars) == {"activation", "velocity", "energy", "alive", "role"}
    xr.testing.assert_equal(plain.drop_attrs(), ds[list(plain.variables)].drop_attrs())
    # the last frame is the SettleResult's final state (float32 storage of a float32 run)
    np.testing.assert_array_equal(grid_frames(disk, ds, "state")[-1], disk.state)
    np.testing.assert_array_equal(grid_frames(disk, ds, "activation")[-1], disk.rates)
    np.testing.assert_array_equal(ds.energy.values[-1], disk.energy)
    np.testing.assert_array_equal(ds.step.values, np.arange(38))
    np.testing.assert_allclose(ds.time.values, 0.2 * np.arange(38), rtol=1e-15)
    # the stored masks are the tissue's
    np.testing.assert_array_equal(ds.role.values.ravel(), t.role)
    np.testing.assert_array_equal(ds.alive.values.ravel(), t.alive)


def test_frames_are_the_dynamics(tmp_path):
    """Frame k holds s_k of an Euler integration done here in NumPy (linear, T = 0),
    its velocity the drift -s + W s + b, its energy the NumPy energy."""
    t = Tissue.cube((3, 4, 5), stencil=18, init="uniform", weight_scale=0.1, activation="linear",
                    dtype="float64", seed=2)
    t.bias[:] = np.random.default_rng(0).normal(0, 0.5, t.n)
    W = t.to_scipy().toarray()
    b = t.bias
    s = np.random.default_rng(1).uniform(-1, 1, (2, t.n))
    eng = Langevin(dt=0.25, tol=1e-12, max_steps=15)
    res = eng.settle(t, init=s, record=Recorder(tmp_path / "r.zarr", every=1, variables=ALL_VARS))
    ds = open_run(tmp_path / "r.zarr")
    states, vel = grid_frames(res, ds, "state"), grid_frames(res, ds, "velocity")
    for k in range(16):
        f = -s + s @ W + b
        np.testing.assert_allclose(states[k], s, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(vel[k], f, rtol=1e-5, atol=1e-6)
        e = 0.5 * (s**2).sum(1) - 0.5 * np.einsum("bi,ij,bj->b", s, W, s) - s @ b
        np.testing.assert_allclose(ds.energy.values[k], e, rtol=1e-12)
        if k < 15:
            s = s + 0.25 * f
    np.testing.assert_allclose(res.state, s, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("every", [4, 5])
def test_every_k_steps_and_final_frame(tmp_path, every):
    t = small_tissue()
    res = run(t, Recorder(tmp_path / "r.zarr", every=every, variables=("activation", "energy")))
    ds = open_run(tmp_path / "r.zarr")
    expected = list(range(0, 37, every))
    if expected[-1] != 37:
        expected.append(37)  # the final state is always recorded
    assert ds.step.values.tolist() == expected
    assert set(ds.data_vars) == {"activation", "energy", "alive", "role"}
    np.testing.assert_array_equal(grid_frames(res, ds, "activation")[-1], res.rates)


def test_cf_attributes_and_run_metadata(tmp_path):
    config = {"tissue": {"shape": [4, 5, 3], "stencil": 26}, "dynamics": {"dt": 0.2, "seed": 4}}
    t = small_tissue()
    res = run(t, Recorder(tmp_path / "r.zarr", every=2, variables=ALL_VARS, attrs={"config": config}))
    for ds in (open_run(tmp_path / "r.zarr"), res.trajectory):
        for name, var in ds.variables.items():
            assert isinstance(var.attrs.get("units"), str) and var.attrs["units"], name
            assert isinstance(var.attrs.get("long_name"), str) and var.attrs["long_name"], name
        assert json.loads(ds.attrs["config"]) == config
        assert ds.attrs["package_version"] == version("neural-tissue")
        assert ds.attrs["tissue_seed"] == 0
        assert ds.attrs["dt"] == 0.2
        assert ds.attrs["activation_function"] == "tanh"


def test_region_recording_is_the_bounding_box(tmp_path):
    t = small_tissue(shape=(6, 7, 5))
    region = t.lattice.ball((3, 2, 3), 1.5)
    c = t.lattice.coords(region)
    lo, hi = c.min(0), c.max(0) + 1  # brute-force bounding box of the region
    full = run(t, Recorder(tmp_path / "full.zarr", every=3, variables=ALL_VARS))
    part = run(t, Recorder(tmp_path / "part.zarr", every=3, variables=ALL_VARS, region=region))
    np.testing.assert_array_equal(full.state, part.state)
    dsf, dsp = open_run(tmp_path / "full.zarr"), open_run(tmp_path / "part.zarr")
    assert [dsp.sizes[a] for a in "xyz"] == (hi - lo).tolist() == [3, 3, 3]
    for a, l, h in zip("xyz", lo, hi):
        assert dsp[a].values.tolist() == list(range(l, h))
    sub = dsf.isel(x=slice(lo[0], hi[0]), y=slice(lo[1], hi[1]), z=slice(lo[2], hi[2]))
    for name in ("activation", "velocity", "state", "alive", "role"):
        np.testing.assert_array_equal(dsp[name].values, sub[name].values, err_msg=name)
    np.testing.assert_array_equal(dsp.energy.values, dsf.energy.values)  # energy: whole tissue


# ------------------------------------------------------------- memory
MEM_SCRIPT = r"""
import resource, sys, tracemalloc
import numpy as np
from dynamics import Langevin
from tissue import Recorder, Tissue, open_run

steps = int(sys.argv[1])
t = Tissue.cube((16, 16, 16), stencil=26, seed=0)
eng = Langevin(dt=0.2, temperature=0.01, seed=1)   # T > 0: every step is run
variables = ("activation", "velocity", "state", "energy")
eng.settle(t, n_trials=4, steps=3, record=Recorder("warm.zarr", variables=variables))  # compile, imports
tracemalloc.start()
res = eng.settle(t, n_trials=4, steps=steps, record=Recorder("run.zarr", every=1, variables=variables))
traced_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
ds = open_run("run.zarr")
assert ds.sizes["time"] == steps + 1
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, traced_peak,
      sum(ds[v].nbytes for v in ("activation", "velocity", "state")))
"""


def test_recording_memory_is_flat(tmp_path, python_subprocess):
    """Peak memory of a 1000-step recording exceeds a 100-step one by < 30 MB,
    while the 1000-step trajectory itself is ~190 MB (so streaming is real)."""
    out = {}
    for steps in (100, 1000):
        d = tmp_path / str(steps)
        d.mkdir()
        code = MEM_SCRIPT.replace("int(sys.argv[1])", str(steps))
        rss, traced, nbytes = map(int, python_subprocess(code, cwd=d, env_extra={"NUMBA_NUM_THREADS": 1}).split())
        out[steps] = rss, traced, nbytes
    print({k: tuple(round(v / 2**20, 1) for v in val) for k, val in out.items()})  # MB, shown with -s
    bound = 30 * 2**20
    for steps, (_, _, nbytes) in out.items():  # 3 float32 grids of 4 trials x 4096 voxels per frame
        assert nbytes == 3 * (steps + 1) * 4 * 4096 * 4
    assert out[1000][2] > 5 * bound, "the long trajectory must dwarf the bound for the test to mean anything"
    assert out[1000][0] - out[100][0] < bound, f"peak RSS grew by {(out[1000][0] - out[100][0]) / 2**20:.1f} MB"
    assert out[1000][1] - out[100][1] < bound, f"traced peak grew by {(out[1000][1] - out[100][1]) / 2**20:.1f} MB"


# ---------------------------------------------------------- divergence
@pytest.mark.parametrize("weight_scale,blowup", [(1.0, 1e6), (1e30, 1e300)])
def test_diverging_settle_stops_cleanly(tmp_path, weight_scale, blowup):
    """Linear activation, positive weights with row sums >> 1: the state explodes.
    (1e30, 1e300): float32 overflow to inf within one step, caught as non-finite."""
    t = Tissue.cube((6, 6, 6), stencil=26, init="constant", weight_scale=weight_scale,
                    activation="linear", dtype="float32", seed=0)
    init = np.random.default_rng(0).uniform(0, 1, (2, t.n))
    eng = Langevin(dt=0.5, temperature=0.0, blowup=blowup, max_steps=1000)
    path = tmp_path / "div.zarr"
    with pytest.raises(SimulationDiverged, match="diverged") as info:
        eng.settle(t, init=init, record=Recorder(path, every=1, variables=ALL_VARS))
    exc = info.value
    assert exc.state.shape == (2, t.n) and np.all(np.isfinite(exc.state))
    assert np.abs(exc.state.astype(np.float64)).max() <= blowup
    ds = open_run(path)
    for name in ALL_VARS:
        assert np.all(np.isfinite(ds[name].values)), f"non-finite values written to {name}"
    assert ds.step.values[-1] == exc.step
    assert ds.step.values.tolist() == list(range(exc.step + 1))
    last = grid_frames(None, ds, "state")[-1]
    np.testing.assert_array_equal(last, exc.state.astype(np.float32))
    np.testing.assert_array_equal(grid_frames(None, ds, "activation")[-1], exc.state.astype(np.float32))
    step, state, _, attrs = read_checkpoint(path)
    assert attrs["status"] == "diverged" and step == exc.step
    np.testing.assert_array_equal(state.T, exc.state)
    if weight_scale == 1.0:  # the state grows geometrically over several steps before the stop
        assert exc.step > 3
