"""The ``tissue`` command: run, info, resume (after SIGKILL and after crashes at chosen
points), refusals, divergence and the demo, on real zarr stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from studies.cli import main
from studies.config import load_config
from tissue import load_tissue, open_run
from tissue.records import read_checkpoint

WALL_CLOCK = ("created", "finished", "wall_time_s")

TINY = """
seed = 3
name = "tiny"
[tissue]
shape = [8, 8, 8]
[patterns]
count = 2
gain = 4.0
cue_flip = 0.25
[dynamics]
dt = 0.2
[[dynamics.phases]]
temperature = 0.02
steps = 30
[[dynamics.phases]]
temperature = 0.0
steps = 400
[record]
every = 4
variables = ["activation", "velocity", "state", "energy"]
checkpoint_every = 10
"""

# slow to converge (weak gain, small dt), so that a kill lands part-way
LONG = """
seed = 7
name = "resume"
[tissue]
shape = [12, 12, 12]
[patterns]
count = 2
gain = 1.5
[dynamics]
dt = 0.05
[[dynamics.phases]]
temperature = 0.05
steps = 1500
[[dynamics.phases]]
temperature = 0.0
steps = 3000
[record]
every = 25
checkpoint_every = 100
"""


def tissue_cmd() -> list[str]:
    script = Path(sys.executable).with_name("tissue")
    return [str(script)] if script.exists() else [sys.executable, "-m", "studies.cli"]


def write(tmp_path, name, text) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def root_attrs(path) -> dict:
    return dict(zarr.open_group(path, mode="r").attrs)


def assert_same_store(a, b):
    """Every variable, coordinate and attribute equal (but wall-clock times), and the same tissue."""
    A, B = open_run(a), open_run(b)
    assert set(A.variables) == set(B.variables)
    assert dict(A.sizes) == dict(B.sizes)
    for name in A.variables:
        assert A[name].equals(B[name]), name
        assert A[name].attrs == B[name].attrs, name
    ta, tb = root_attrs(a), root_attrs(b)
    for k in WALL_CLOCK:
        ta.pop(k, None), tb.pop(k, None)
    assert ta == tb
    sa, sb = load_tissue(a), load_tissue(b)
    for x, y in ((sa.syn.nbr, sb.syn.nbr), (sa.syn.w, sb.syn.w), (sa.bias, sb.bias), (sa.alive, sb.alive)):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ a run
@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    cfg = write(d, "tiny.toml", TINY)
    assert main(["run", str(cfg), "--out", str(d / "run.zarr"), "--quiet"]) == 0
    return d / "run.zarr"


def test_run_writes_a_store_that_open_run_reads(tiny_store):
    from dynamics import Langevin
    from studies.run import build

    cfg = load_config(TINY)
    ds = open_run(tiny_store)
    attrs = root_attrs(tiny_store)
    assert attrs["status"] == "complete" and attrs["seed"] == 3 and attrs["package_version"]
    assert json.loads(attrs["config"]) == cfg.to_dict()
    assert dict(ds.sizes) == {"time": ds.sizes["time"], "trial": 2, "x": 8, "y": 8, "z": 8, "pattern": 2}

    # one time axis over both phases: every 4th step, plus the last step of each phase
    steps = ds.step.values
    starts = json.loads(attrs["phase_starts"])
    end = attrs["step_end"]
    assert starts == [0, 30] and 30 < end <= 430           # T > 0 runs all 30 steps; T = 0 stops early
    expected = sorted(set(range(0, end + 1, 4)) | {30, end})
    np.testing.assert_array_equal(steps, expected)
    np.testing.assert_allclose(ds.time.values, steps * 0.2)
    for name in ("activation", "velocity", "state", "energy", "overlap"):
        assert np.isfinite(ds[name].values).all(), name

    # the stored overlap is the documented formula applied to the stored frames
    pats = ds.patterns.values.reshape(2, -1).astype(float)
    act = ds.activation.values.reshape(len(steps), 2, -1).astype(float)
    m = np.einsum("tbi,pi->tbp", 2 * act - 1, 2 * pats - 1) / pats.shape[1]
    np.testing.assert_allclose(ds.overlap.values, m, rtol=0, atol=1e-12)
    # cues: exactly round(0.25 * 512) = 128 of 512 voxels flipped, so the first overlap is 1 - 2 * 128/512
    target = ds.target.values
    np.testing.assert_array_equal(target, [0, 1])
    np.testing.assert_allclose(m[0, [0, 1], target], 0.5, atol=1e-12)
    assert np.all(m[-1, [0, 1], target] > 0.9)               # recalled
    np.testing.assert_array_equal(pats.sum(1), [256, 256])  # thresholded at the median

    # the stored tissue is the one the config builds, and the energy matches it
    setup = build(cfg)
    stored = load_tissue(tiny_store)
    np.testing.assert_array_equal(stored.syn.w, setup.tissue.syn.w)
    np.testing.assert_array_equal(stored.bias, setup.tissue.bias)
    last = ds.state.isel(time=-1).values.reshape(2, -1)
    np.testing.assert_allclose(ds.energy.values[-1], Langevin.energy(stored, last), rtol=1e-6)
    # gradient flow (the T = 0 phase) never raised the energy between recorded frames
    e = ds.energy.values[steps >= 30]
    assert np.all(np.diff(e, axis=0) <= 1e-6 * np.abs(e[:-1]) + 1e-9)


def test_info(tiny_store, capsys):
    assert main(["info", str(tiny_store)]) == 0
    out = capsys.readouterr().out
    assert "status: complete" in out and "time=" in out and "trial=2" in out
    for name in ("activation", "velocity", "energy", "overlap", "patterns"):
        assert name in out
    assert "steps recorded" in out and "(every 4)" in out and "tissue 8x8x8 stencil 26" in out
    assert "T=0.02 x 30 from step 0" in out


def test_info_on_a_non_store(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a run store" in err


def test_existing_store_needs_resume_or_overwrite(tiny_store, tmp_path, capsys):
    cfg = write(tmp_path, "tiny.toml", TINY)
    before = (tiny_store / "zarr.json").read_bytes()
    assert main(["run", str(cfg), "--out", str(tiny_store), "-q"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--resume" in err and "--overwrite" in err
    assert (tiny_store / "zarr.json").read_bytes() == before
    # a complete store with --resume: nothing to do
    assert main(["run", str(cfg), "--out", str(tiny_store), "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert (tiny_store / "zarr.json").read_bytes() == before


def test_overwrite_replaces_a_store_but_never_other_directories(tmp_path, capsys):
    cfg = write(tmp_path, "c.toml", TINY.replace("steps = 400", "steps = 5").replace("[8, 8, 8]", "[4, 4, 4]"))
    store = tmp_path / "run.zarr"
    assert main(["run", str(cfg), "--out", str(store), "-q"]) == 0
    first = root_attrs(store)["step_end"]
    cfg2 = write(tmp_path, "c2.toml", cfg.read_text().replace("steps = 30", "steps = 20"))
    assert main(["run", str(cfg2), "--out", str(store), "--overwrite", "-q"]) == 0
    assert root_attrs(store)["step_end"] != first
    assert json.loads(root_attrs(store)["config"]) == load_config(cfg2).to_dict()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.txt").write_text("keep me")
    assert main(["run", str(cfg), "--out", str(other), "--overwrite", "-q"]) == 2
    assert "not a run store" in capsys.readouterr().err
    assert (other / "thesis.txt").read_text() == "keep me"


FULL = """
seed = 5
[tissue]
shape = [10, 9, 8]
radius = 1.8
small_world = 0.1
activation = "sigmoid"
init = "normal"
dtype = "float64"
[patterns]
count = 2
trials_per_pattern = 3
[input]
region = {slab = {axis = "y", lo = 2, hi = 4}}
value = 0.75
[dynamics]
dt = 0.1
tol = 1e-5
[[dynamics.phases]]
temperature = 0.1
steps = 50
[[dynamics.phases]]
temperature = 0
steps = 20
[record]
every = 3
variables = ["state", "energy"]
region = {ball = {center = [5, 4, 4], radius = 2.5}}
checkpoint_every = 20
"""


def test_every_option_reaches_the_store(tmp_path):
    """Radius wiring, small world, sigmoid, float64, a clamped slab and a recorded ball."""
    from tissue import Lattice

    cfg = write(tmp_path, "full.toml", FULL)
    out = tmp_path / "full.zarr"
    assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    ds = open_run(out)
    lat = Lattice((10, 9, 8))
    lo, hi = lat.bounding_box(lat.ball((5, 4, 4), 2.5))
    for a, l, h in zip("xyz", lo, hi):
        np.testing.assert_array_equal(ds[a].values, np.arange(l, h))
    assert set(ds.data_vars) == {"state", "energy", "role", "alive", "patterns", "target"}
    end = root_attrs(out)["step_end"]
    assert ds.sizes["trial"] == 6 and 50 < end <= 70
    np.testing.assert_array_equal(ds.step.values, sorted(set(range(0, end, 3)) | {50, end}))
    role = ds.role.values
    y_in = (ds.y.values >= 2) & (ds.y.values < 4)
    np.testing.assert_array_equal(role == 1, np.broadcast_to(y_in[None, :, None], role.shape))
    # the clamped slab keeps its value in every frame
    np.testing.assert_allclose(ds.state.values[..., role == 1], 0.75)
    t = load_tissue(out)
    assert t.syn.w.dtype == np.float64 and t.activation == "sigmoid" and t.meta["radius"] == 1.8
    np.testing.assert_array_equal(ds.target.values, [0, 0, 0, 1, 1, 1])


# ------------------------------------------------------------------ resume
@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    cfg = write(tmp_path, "long.toml", LONG)
    ref = tmp_path / "ref.zarr"
    assert main(["run", str(cfg), "--out", str(ref), "-q"]) == 0

    out = tmp_path / "killed.zarr"
    proc = subprocess.Popen(tissue_cmd() + ["run", str(cfg), "--out", str(out), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            try:
                ck = read_checkpoint(out) if (out / "zarr.json").exists() else None
            except Exception:  # caught mid-write: look again
                ck = None
            if ck is not None and ck[0] > 0:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert root_attrs(out).get("status") != "complete"
    killed_at = read_checkpoint(out)[0]
    assert 0 < killed_at < root_attrs(ref)["step_end"]

    r = subprocess.run(tissue_cmd() + ["run", str(cfg), "--out", str(out), "--resume"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "resumed from the checkpoint at step" in r.stdout
    assert root_attrs(out)["status"] == "complete"
    assert_same_store(ref, out)


class Crash(Exception):
    """Stands for a kill at a chosen point."""


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    cfg = write(d, "tiny.toml", TINY)
    assert main(["run", str(cfg), "--out", str(d / "ref.zarr"), "-q"]) == 0
    return cfg, d / "ref.zarr"


# where to stop: (phase, checkpoint status, how many such checkpoints to let through,
# crash before writing it?) and the checkpoint the resume must start from
CRASHES = {
    "inside-phase-0": ((0, "running", 1, False), (0, "running")),
    "just-before-end-of-phase-0": ((0, "settled", 0, True), (0, "running")),
    "end-of-phase-0": ((0, "settled", 0, False), (0, "settled")),
    "inside-phase-1": ((1, "running", 2, False), (1, "running")),
    "just-before-end-of-last-phase": ((1, "settled", 0, True), (1, "running")),
    "end-of-last-phase": ((1, "settled", 0, False), (1, "settled")),
    "mid-append": ((1, "running", 1, False), (1, "running")),
}


@pytest.mark.parametrize("where", [*CRASHES, "while-finishing"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_reference, tmp_path, monkeypatch, where):
    import studies.run as R

    cfg, ref = tiny_reference
    out = tmp_path / "run.zarr"
    with monkeypatch.context() as mp:
        if where == "while-finishing":
            real = R.save_tissue

            def save_then_crash(*a, **k):
                real(*a, **k)
                raise Crash

            mp.setattr(R, "save_tissue", save_then_crash)
        else:
            phase, crash_status, skip, before = CRASHES[where][0]
            real = R._PhaseRecorder.checkpoint
            seen = []

            def checkpoint_then_crash(self, step, s, status="running", message="", carry=None):
                hit = self.phase == phase and status == crash_status
                if hit and before and len(seen) >= skip:
                    self.flush()     # the final frame is out, its checkpoint is not
                    raise Crash
                real(self, step, s, status=status, message=message, carry=carry)
                if hit:
                    seen.append(step)
                    if len(seen) > skip:
                        raise Crash

            mp.setattr(R._PhaseRecorder, "checkpoint", checkpoint_then_crash)
        with pytest.raises(Crash):
            R.run(load_config(cfg), out, progress=False)
    assert root_attrs(out).get("status") != "complete"
    step, _, carry, ck_attrs = read_checkpoint(out)
    phase, status = CRASHES.get(where, (None, (1, "settled")))[1]
    assert (int(carry["phase"][0]), ck_attrs["status"]) == (phase, status)
    assert 0 < step < root_attrs(ref)["step_end"] or status == "settled"
    if where == "mid-append":
        # a kill during an append leaves arrays of unequal length with unwritten steps at the end
        root = zarr.open_group(out, mode="a")
        for name in ("step", "energy", "time"):
            root[name].resize((root[name].shape[0] + 3,) + root[name].shape[1:])
    assert main(["run", str(cfg), "--out", str(out), "--resume", "-q"]) == 0
    assert_same_store(ref, out)


def test_periodic_checkpoint_on_the_last_step_of_a_phase_is_skipped(tmp_path):
    """The rule that makes 'running' checkpoints always resumable inside their phase."""
    from studies.run import _PhaseRecorder
    from tissue import Tissue

    t = Tissue.cube((3, 3, 3))
    rec = _PhaseRecorder(tmp_path / "r.zarr", attrs={"config": {}})
    rec.open(t, type("E", (), {"dt": 0.1, "temperature": 0.0, "seed": 0})(), 2)
    s = np.zeros((t.n, 2), np.float32)
    busy = {"active": np.array([True, False]), "taken": np.array([5, 3]), "converged": np.array([False, True])}
    done = dict(busy, active=np.array([False, False]))

    rec.set_phase(1, [0, 10], steps=50, temperature=0.0)
    rec.checkpoint(20, s, carry=busy)
    step, _, carry, attrs = read_checkpoint(tmp_path / "r.zarr")
    assert step == 20 and attrs["status"] == "running"
    assert carry["phase"].tolist() == [1] and carry["phase_starts"].tolist() == [0, 10]
    rec.checkpoint(25, s, carry=done)                # T = 0, every trial converged: the end
    assert read_checkpoint(tmp_path / "r.zarr")[0] == 20
    rec.checkpoint(25, s, status="settled", carry=done)
    assert read_checkpoint(tmp_path / "r.zarr")[:1] == (25,)

    rec.set_phase(2, [0, 10, 25], steps=30, temperature=0.5)
    rec.checkpoint(54, s, carry=busy)
    rec.checkpoint(55, s, carry=busy)                # T > 0: step 25 + 30 is the phase's last
    step, _, carry, attrs = read_checkpoint(tmp_path / "r.zarr")
    assert step == 54 and carry["phase"].tolist() == [2]


def test_resume_with_another_config_is_refused(tiny_reference, tmp_path, capsys):
    cfg, ref = tiny_reference
    before = (ref / "zarr.json").read_bytes()
    other = write(tmp_path, "other.toml", cfg.read_text().replace("steps = 400", "steps = 500"))
    assert main(["run", str(other), "--out", str(ref), "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "config differs at dynamics.phases[1].steps (stored 400, given 500)" in err
    assert (ref / "zarr.json").read_bytes() == before


def test_resume_without_a_store_starts_afresh(tiny_reference, tmp_path):
    cfg, ref = tiny_reference
    out = tmp_path / "new.zarr"
    assert main(["run", str(cfg), "--out", str(out), "--resume", "-q"]) == 0
    assert_same_store(ref, out)


# ------------------------------------------------------------------ divergence
DIVERGING = """
[tissue]
shape = [6, 6, 6]
activation = "linear"
init = "constant"
weight_scale = 5.0
[dynamics]
dt = 0.1
[[dynamics.phases]]
temperature = 0.01
steps = 2000
[record]
every = 2
"""


def test_a_diverging_run_exits_3_and_stores_no_nan(tmp_path):
    cfg = write(tmp_path, "div.toml", DIVERGING)
    out = tmp_path / "div.zarr"
    r = subprocess.run(tissue_cmd() + ["run", str(cfg), "--out", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "diverged" in lines[0] and "Traceback" not in r.stderr
    attrs = root_attrs(out)
    assert attrs["status"] == "diverged" and "diverged" in attrs["message"]
    ds = open_run(out)
    assert ds.sizes["time"] >= 2
    for name in ("activation", "velocity", "energy"):
        assert np.isfinite(ds[name].values).all(), name
    last = ds.activation.isel(time=-1).values
    assert np.abs(last).max() > 10            # it did run away, and its last frame is finite
    ck = read_checkpoint(out)
    assert ck[3]["status"] == "diverged" and ck[0] == int(ds.step.values[-1])
    assert np.isfinite(ck[1]).all()
    r2 = subprocess.run(tissue_cmd() + ["run", str(cfg), "--out", str(out), "--resume"],
                        capture_output=True, text=True, timeout=300)
    assert r2.returncode == 2 and "diverged" in r2.stderr and len(r2.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ the demo
def test_demo_writes_stores_and_pictures(tmp_path, capsys):
    import matplotlib.image as mpimg

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "12", "--learn-epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "complete" in printed and "overlap cue 0.500 -> final" in printed and "slices.png" in printed
    ds = open_run(out / "run.zarr")
    assert ds.sizes["x"] == 12 and ds.sizes["trial"] == 3
    assert root_attrs(out / "run.zarr")["status"] == "complete"
    m = ds.overlap.isel(time=-1).values[np.arange(3), ds.target.values]
    assert np.all(m > 0.9), m
    # the learning step: one epoch of EqProp on the digits, beside the baselines
    assert root_attrs(out / "learn.zarr")["status"] == "complete"
    lds = open_run(out / "learn.zarr")
    # chance is 0.1 +- 0.014 over the 450 held-out digits: 0.15 is > 3.5 sigma above it
    assert lds.sizes["epoch"] == 1 and float(lds.test_accuracy[-1]) > 0.15
    assert "baseline_test_accuracy" in lds and "learning.png" in printed
    for name in ("slices.png", "energy_overlap.png", "learning.png", "trace_rgb.png"):
        img = mpimg.imread(out / name)[..., :3]
        assert img.shape[0] > 200 and img.std() > 0.05, name
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20, name
    # the movies: the recall settling, and one dreaming chain (frames read back: they change)
    import imageio.v3 as iio

    for movie in ("settling.gif", "dreaming.gif"):
        frames = iio.imread(out / movie, index=None)
        assert frames.shape[0] > 10 and np.abs(frames[-1].astype(float) - frames[0]).mean() > 1.0, movie
    # the trace of the trained tissue: free, then nudged, with the nudge recorded
    tds = open_run(out / "trace.zarr")
    assert tds.sizes["trial"] == 4 and float(np.abs(tds.nudge.isel(time=-1)).max()) > 0
    assert (tds.nudge_depth.values >= 0).all() and "nudge depth" in printed
    # `tissue view` on the demo's stores, as a user runs it: pictures and a movie that open
    for args in (["run.zarr", "--out", "v.png"], ["run.zarr", "--slice", "z=6", "--out", "p.png"],
                 ["run.zarr", "--out", "m.gif"], ["trace.zarr", "--rgb", "--slice", "y=4", "--out", "rgb.png"],
                 ["learn.zarr", "--var", "mean_abs_weight", "--out", "w.png"]):
        r = subprocess.run(tissue_cmd() + ["view", str(out / args[0])] + [str(out / a) if a.endswith(
            (".png", ".gif")) else a for a in args[1:]], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert (out / args[-1]).stat().st_size > 5000
    r = subprocess.run(tissue_cmd() + ["view", str(out / "run.zarr"), "--var", "nudge", "--out", str(out / "x.png")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "nudge" in r.stderr and "activation" in r.stderr
    # a second demo into the same directory replaces its store
    assert main(["demo", "--out", str(out), "--size", "8", "-q", "--learn-epochs", "0"]) == 0
    assert open_run(out / "run.zarr").sizes["x"] == 8


def test_module_entry_point_prints_help():
    r = subprocess.run([sys.executable, "-m", "studies.cli", "--help"], capture_output=True, text=True,
                       timeout=120, env={**os.environ})
    assert r.returncode == 0
    for word in ("run", "info", "demo", "check"):
        assert word in r.stdout
