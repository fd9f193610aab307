"""``tissue sweep``: a grid of learning runs on a real 2-worker dask LocalCluster (processes).

A 2 x 2 sweep (depth x seed) of tiny learning runs completes and combines into one
Dataset whose values are the job stores' own; a rerun does no work; killing a worker
process while its job is part-way still completes the sweep, with the killed job
resumed to the same result as the uninterrupted sweep; bad sweep files exit 2 with
one line naming the key, before any work.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from studies.cli import main
from studies.sweep import RESERVED, SweepError, jobs, load_sweep, local_cluster, run_sweep

pytestmark = pytest.mark.slow

# a tiny, quick learning run: 8 x 8 x nz tissue, 4-class pattern task, 2 epochs of a few seconds
BASE = """
name = "tiny"
seed = 0
[tissue]
shape = [8, 8, 3]
bias = 0.2
[task]
name = "patterns"
n_classes = 4
[learning]
epochs = 1
batch_size = 64
blends = 0
alignment_samples = 0
[dynamics]
dt = 0.5
tol = 1e-2
max_steps = 40
"""

SWEEP = """
base = "base.toml"
[grid]
"tissue.shape" = [[8, 8, 3], [8, 8, 4]]
seed = [0, 1]
[overrides]
"learning.epochs" = 2          # two epochs: a killed job can resume from its first
[dims]
"tissue.shape" = {name = "depth", values = [2, 3]}
"""

PER_EPOCH = ("train_accuracy", "test_accuracy", "loss", "test_loss")


def _write(d: Path, sweep: str = SWEEP) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "base.toml").write_text(BASE)
    (d / "sweep.toml").write_text(sweep)
    return d / "sweep.toml"


def _store(out: Path, name: str) -> tuple[dict, zarr.Group]:
    root = zarr.open_group(out / "jobs" / f"{name}.zarr", mode="r")
    return dict(root.attrs), root


def _mtimes(path: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in path.rglob("*")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The 2 x 2 sweep, run once on the command's own LocalCluster of 2 worker processes."""
    d = tmp_path_factory.mktemp("sweep")
    spec = load_sweep(_write(d))
    out = d / "out"
    t0 = time.perf_counter()
    summary = run_sweep(spec, out, workers=2, progress=False)
    return spec, out, summary, time.perf_counter() - t0


def test_sweep_jobs_are_the_grid_with_overrides(tmp_path):
    spec = load_sweep(_write(tmp_path))
    js = jobs(spec)
    assert [j.name for j in js] == ["depth=2_seed=0", "depth=2_seed=1", "depth=3_seed=0", "depth=3_seed=1"]
    assert [(j.config.tissue.shape, j.config.seed) for j in js] == [
        ((8, 8, 3), 0), ((8, 8, 3), 1), ((8, 8, 4), 0), ((8, 8, 4), 1)]
    assert all(j.config.learning.epochs == 2 and j.config.dynamics.max_steps == 40 for j in js)
    assert spec.dims == ("depth", "seed") and spec.shape == (2, 2)
    # the record round-trips (combine reads it back from DIR/sweep.json)
    again = load_sweep(json.loads(json.dumps(spec.to_dict())))
    assert [j.config for j in jobs(again)] == [j.config for j in js]


def test_sweep_completes_with_every_result_once(finished):
    import xarray as xr

    spec, out, s, _ = finished
    assert s.n_run == 4 and sorted(s.ran) == sorted(j.name for j in spec.jobs)
    assert s.failed == {} and s.skipped == []
    ds = xr.open_zarr(out / "sweep.zarr", consolidated=False)
    assert ds.test_accuracy.dims == ("depth", "seed", "epoch")
    assert ds.depth.values.tolist() == [2, 3] and ds.seed.values.tolist() == [0, 1]
    assert ds.epoch.values.tolist() == [0, 1]
    assert bool(ds.complete.all()) and json.loads(ds.attrs["incomplete_jobs"]) == []
    assert ds.test_accuracy.attrs["units"] == "1" and ds.loss.attrs["long_name"]
    assert json.loads(ds.attrs["sweep"])["grid"]["seed"] == [0, 1]
    # the neuron count of each grid point is that of its shape: 8 x 8 x (depth + 1)
    assert ds.n_neurons.values.tolist() == [[192.0, 192.0], [256.0, 256.0]]
    for job in spec.jobs:
        attrs, root = _store(out, job.name)
        assert attrs["status"] == "complete"
        cfg = json.loads(attrs["config"])
        assert cfg["tissue"]["shape"] == [8, 8, job.coords["depth"] + 1] and cfg["seed"] == job.coords["seed"]
        at = ds.sel(depth=job.coords["depth"], seed=job.coords["seed"])
        for v in PER_EPOCH + ("test_steps", "test_pred"):
            np.testing.assert_array_equal(at[v].values, root[v][...], err_msg=f"{job.name} {v}")
        assert float(at.final_test_accuracy) == attrs["test_accuracy"]
        assert float(at.auroc_misclassified) == pytest.approx(attrs["auroc_misclassified"], nan_ok=True)
        # this job's losses sit at exactly one grid point
        hits = [(dp, sd) for dp in (2, 3) for sd in (0, 1)
                if np.array_equal(ds.loss.sel(depth=dp, seed=sd).values, root["loss"][...])]
        assert hits == [(job.coords["depth"], job.coords["seed"])]
    ds.close()


def test_finished_jobs_lists_each_complete_store_once(finished, tmp_path):
    from studies.sweep import finished_jobs

    spec, out, _, _ = finished
    found = finished_jobs(out)
    assert [p.name for p, _, _ in found] == sorted(f"{j.name}.zarr" for j in spec.jobs)
    for p, attrs, cfg in found:
        job = next(j for j in spec.jobs if f"{j.name}.zarr" == p.name)
        assert attrs["status"] == "complete" and cfg["seed"] == job.coords["seed"]
    # an unfinished store is left out
    import zarr

    d = tmp_path / "part"
    zarr.create_group(d / "jobs" / "a.zarr", attributes={"status": "running", "config": "{}"})
    assert finished_jobs(d) == []


def test_rerun_does_no_work(finished, capsys):
    spec, out, _, _ = finished
    before = _mtimes(out / "jobs")
    combined = _mtimes(out / "sweep.zarr")
    record = (out / "sweep.json").read_text()
    # an unreachable scheduler: with nothing to run, no cluster is contacted
    s = run_sweep(spec, out, scheduler="tcp://127.0.0.1:9", progress=False)
    assert s.n_run == 0 and s.ran == [] and sorted(s.skipped) == sorted(j.name for j in spec.jobs)
    assert s.table and s.table[0].split()[0] == "depth"
    rc = main(["sweep", spec.source, "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "4 complete, 0 to run" in printed
    assert _mtimes(out / "jobs") == before and _mtimes(out / "sweep.zarr") == combined
    # a changed sweep into the same DIR is refused before any work (its job stores hold other configs)
    changed = Path(spec.source).with_name("changed.toml")
    changed.write_text(SWEEP.replace('"learning.epochs" = 2', '"learning.epochs" = 3'))
    assert main(["sweep", str(changed), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "learning.epochs" in err[0] and "stored 2, given 3" in err[0]
    assert _mtimes(out / "jobs") == before and (out / "sweep.json").read_text() == record


def test_killed_worker_still_completes_every_job_once(finished, tmp_path):
    """SIGKILL the worker of a job after its first epoch: the job reruns elsewhere, resumes from
    its epoch checkpoint and ends where the uninterrupted sweep (``finished``) did."""
    import xarray as xr
    from distributed import Client

    spec, ref_out, _, _ = finished
    cluster = local_cluster(2)
    client = Client(cluster)
    try:
        pids = client.run(os.getpid)
        assert len(pids) == 2 and os.getpid() not in pids.values()
        env = client.run(lambda: (os.environ.get("NUMBA_NUM_THREADS"), __import__("numba").config.NUMBA_NUM_THREADS))
        assert set(env.values()) == {("1", 1)}
        out = tmp_path / "out"
        box = {}

        def sweep():
            try:
                box["summary"] = run_sweep(spec, out, scheduler=client, progress=False)
            except BaseException as err:   # reported by the main thread
                box["error"] = err

        th = threading.Thread(target=sweep, daemon=True)
        th.start()
        killed = None
        deadline = time.monotonic() + 150
        while killed is None and th.is_alive() and time.monotonic() < deadline:
            for job in spec.jobs:
                try:
                    attrs, _ = _store(out, job.name)
                except Exception:           # not there yet, or being written
                    continue
                if attrs.get("status") == "running" and attrs.get("epochs_done") == 1:
                    where = [a for a, keys in client.processing().items()
                             if any(str(k).startswith(f"tissue-job-{job.name}-") for k in keys)]
                    if where:
                        os.kill(pids[where[0]], signal.SIGKILL)
                        killed = job.name
                        break
            time.sleep(0.02)
        th.join(timeout=max(1.0, deadline - time.monotonic()))
        assert not th.is_alive(), "the sweep did not finish"
        assert "error" not in box, box.get("error")
        assert killed is not None, "no job was caught between its epochs"
        s = box["summary"]
        assert s.failed == {} and sorted(s.ran) == sorted(j.name for j in spec.jobs)
        assert killed in s.resumed
        assert pids[where[0]] not in client.run(os.getpid).values()    # that process is gone
    finally:
        client.close()
        cluster.close()
    ds = xr.open_zarr(out / "sweep.zarr", consolidated=False)
    ref = xr.open_zarr(ref_out / "sweep.zarr", consolidated=False)
    assert bool(ds.complete.all())
    for v in PER_EPOCH + ("test_steps", "test_pred", "final_test_accuracy"):
        np.testing.assert_array_equal(ds[v].values, ref[v].values, err_msg=v)
    attrs, root = _store(out, killed)
    assert attrs["epochs_done"] == 2 and root["test_accuracy"].shape == (2,)
    ds.close()
    ref.close()


BAD = [
    # (sweep file, words the one-line message must hold)
    ('base = "nope.toml"\n[grid]\nseed = [0, 1]\n', ["base", "nope.toml"]),
    ('[grid]\nseed = [0, 1]\n', ["base is required"]),
    ('base = "base.toml"\ngird = {seed = [0]}\n', ["'gird'", "'grid'"]),
    ('base = "base.toml"\n[grid]\n"tissue.shap" = [[8, 8, 3]]\n', ['"tissue.shap"', "'tissue.shape'"]),
    ('base = "base.toml"\n[grid]\n"learning.rate" = [0.1]\n', ['"learning.rate"', "unknown config key"]),
    ('base = "base.toml"\n[grid]\nseed = 3\n', ['[grid] "seed" = 3', "list"]),
    ('base = "base.toml"\n[grid]\nseed = [0, 0]\n', ['"seed"', "twice"]),
    ('base = "base.toml"\n[grid]\n"tissue.shape" = [[8, 8]]\n', ['"tissue.shape"', "3 integers"]),
    ('base = "base.toml"\n[grid]\n"learning.epochs" = [1, -2]\n', ['"learning.epochs"', ">= 1"]),
    ('base = "base.toml"\n[grid]\ntissue = [1]\n', ['"tissue"', "section"]),
    ('base = "base.toml"\n[grid]\nseed = [0]\n[overrides]\n"task.nam" = "digits"\n', ['"task.nam"']),
    ('base = "base.toml"\n[grid]\nseed = [0]\n[dims]\nseed = {name = "s", values = [1, 2]}\n',
     ['[dims] "seed"', "1 distinct"]),
    ('base = "base.toml"\n[grid]\nseed = [0]\n[dims]\nseed = {name = "epoch"}\n', ['"epoch"', "taken"]),
    # a bad combination: named by the job's coordinates and the config key
    ('base = "base.toml"\n[grid]\n"tissue.shape" = [[8, 8, 3], [8, 8, 1]]\nseed = [0, 1]\n'
     '[dims]\n"tissue.shape" = {name = "depth", values = [2, 0]}\n',
     ["job depth=0 seed=0", "[tissue] shape", "2 layers"]),
    ('base = "base.toml"\n[grid]\n"task.upsample" = [1, 2]\n', ["job upsample=2", "[tissue] shape", "16x16"]),
]


@pytest.mark.parametrize("text, words", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_sweep_exits_2_with_one_line_naming_the_key(tmp_path, capsys, text, words):
    path = _write(tmp_path, text)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sweep error:"), err
    for w in words:
        assert w in err[0], (w, err[0])
    assert not out.exists()          # nothing was started
    with pytest.raises(SweepError):
        load_sweep(path)


def test_reserved_names_cover_the_run_store_dims(finished):
    """The names a grid dim may not take include every dim of a learning store."""
    import xarray as xr

    _, out, _, _ = finished
    job = xr.open_zarr(next((out / "jobs").iterdir()), consolidated=False)
    assert set(job.dims) <= RESERVED
    job.close()

