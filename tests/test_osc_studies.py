"""Limit-cycle studies: entrainment (Adler), phase memory, the oscillator configs and runs.

Truths used: Adler's equation for one driven phase oscillator (locking iff
|detuning| < F, beat frequency sqrt(detuning^2 - F^2) outside); the mean-phase
reduction of a strongly coupled symmetric network driven on part of its voxels
(sum_i dtheta_i/dt = N omega + F sum_driven sin(Omega t - theta_i): a locked
network is one oscillator with drive F n_driven / N); the single-pattern phase
memory, whose stored pattern is the exact minimum of its energy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from dynamics.oscillators import Kuramoto, Network, drift
from plasticity.phase import (
    hebbian_phase_weights,
    phase_cues,
    phase_overlap,
    random_phase_patterns,
    recall,
)
from studies.config import ConfigError, load_config
from studies.oscillate import locking_map, memory_capacity, tongue_width
from tissue import Tissue
from tissue.wiring import Synapses


def one_oscillator():
    return Network.from_synapses(Synapses.from_edges(1, [], [], [], dtype=np.float64))


# ------------------------------------------------------------------ entrainment
def test_adler_locking_of_one_driven_phase_oscillator():
    drives = np.array([0.2, 0.5])
    det = np.linspace(-1.0, 1.0, 41)      # spacing 0.05
    ds, _ = locking_map(one_oscillator(), drives, det, omega=1.0, omega_ref=1.0, steps=8000, dt=0.05,
                        transient=0.25, sample_every=4, seed=3)
    for i, f in enumerate(drives):
        plv = ds.plv.values[i]
        ferr = ds.frequency_error.values[i]
        inside = np.abs(det) < 0.9 * f
        assert inside.any() and np.all(plv[inside] > 0.999) and np.all(np.abs(ferr[inside]) < 1e-3)
        # outside the tongue the phase slips at the beat frequency -sign(d) sqrt(d^2 - F^2)
        out = np.abs(det) > 1.1 * f
        beat = -np.sign(det[out]) * np.sqrt(det[out] ** 2 - f**2)
        np.testing.assert_allclose(ferr[out], beat, atol=0.03)
        far = np.abs(det) > 1.5 * f
        assert np.all(plv[far] < 0.9)
        # the frequency-locking width is Adler's 2F within the grid spacing
        assert abs(ds.frequency_tongue_width.values[i] - 2 * f) <= 0.05 + 1e-9


def test_strongly_coupled_tissue_locks_like_one_oscillator_with_the_mean_drive():
    t = Tissue.cube((3, 3, 3), stencil=26, init="constant", weight_scale=1.0, dtype="float64", seed=0)
    face = t.lattice.face("z-")
    drives = np.array([0.3, 0.6, 0.9])
    det = np.linspace(-0.4, 0.4, 17)      # spacing 0.05
    ds, _ = locking_map(t, drives, det, omega=1.0, coupling=2.0, region=face, steps=4000, dt=0.05,
                        transient=0.5, sample_every=4, init=np.zeros(t.n), seed=1)
    eff = drives * len(face) / t.n          # the mean drive on the synchronised network
    np.testing.assert_allclose(ds.frequency_tongue_width.values, 2 * eff, atol=0.05 + 1e-9)
    w = ds.tongue_width.values               # the locking region widens with the drive
    assert np.all(np.diff(w) > 0)
    assert ds.order_parameter.values.min() > 0.95


def test_tongue_width_interpolates_and_rejects_bad_grids():
    d = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert tongue_width([0.0, 0.5, 1.0, 0.5, 0.0], d, 0.75) == pytest.approx(1.0)
    assert tongue_width([1.0, 1.0, 1.0, 1.0, 1.0], d, 0.5) == pytest.approx(4.0)
    assert tongue_width([0.1] * 5, d, 0.5) == 0.0
    with pytest.raises(ValueError, match="increase"):
        tongue_width([0, 1, 0], [0, 0, 1])


# ------------------------------------------------------------------ phase memory
def test_hebbian_phase_weights_are_hermitian_and_store_one_pattern_exactly():
    t = Tissue.cube((4, 4, 4), stencil=26, dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    pats = random_phase_patterns(2, t.n, rng)
    c = hebbian_phase_weights(t.syn, pats)
    occ = t.syn.nbr >= 0
    j = np.where(occ, t.syn.nbr, 0)
    np.testing.assert_allclose(c[j, np.where(occ, t.syn.rev, 0)][occ], np.conj(c[occ]), rtol=0, atol=1e-15)
    dense = np.zeros((t.n, t.n), complex)
    for p in pats:                           # independent outer product, masked to the synapses
        dense += np.outer(np.exp(1j * p), np.exp(-1j * p))
    deg = occ.sum(1)
    norm = 0.5 * (1 / deg[:, None] + 1 / deg[None, :])
    i, k = np.nonzero(occ)
    np.testing.assert_allclose(c[i, k], (dense * norm)[i, t.syn.nbr[i, k]], atol=1e-14)
    # one stored pattern (any global phase) is a fixed point of the phase flow
    one = hebbian_phase_weights(t.syn, pats[:1])
    net = Network.from_tissue(t, weights=one)
    v = drift(Kuramoto(omega=0.0, coupling=1.0), net, (pats[0] + 0.7)[None, :])
    assert np.abs(v).max() < 1e-12


def test_phase_memory_retrieves_from_20_percent_randomised_cues_at_low_load():
    t = Tissue.cube((6, 6, 6), stencil=26, dtype="float64", seed=0)
    rng = np.random.default_rng(1)
    pats = random_phase_patterns(1, t.n, rng)
    cues, _ = phase_cues(pats, 0.2, 3, rng)
    m0 = phase_overlap(cues, pats)[:, 0]
    # exactly 20% re-drawn: the cue overlap is near 0.8 (the re-drawn phases add ~N^-1/2 noise)
    assert np.all(np.abs(m0 - 0.8) < 0.1)
    res = recall(t, hebbian_phase_weights(t.syn, pats), cues, steps=800, dt=0.1)
    m = phase_overlap(res.theta, pats)[:, 0]
    assert np.all(m > 0.999)                 # the single pattern is the energy's minimum
    # the study measure at the loads of the shipped config's start: low load retrieves >= 0.95
    ds = memory_capacity(Tissue.cube((8, 8, 8), stencil=26, dtype="float64", seed=0), [1, 2], 0.2, 2,
                         steps=1200, dt=0.1, seed=0)
    assert np.all(ds.overlap_mean.values >= 0.95)
    assert np.all(ds.cue_overlap_mean.values < 0.85)


def test_phase_overlap_is_invariant_to_a_global_phase():
    rng = np.random.default_rng(2)
    pats = random_phase_patterns(3, 50, rng)
    m = phase_overlap(pats[1] + 1.3, pats)
    assert m[1] == pytest.approx(1.0)
    assert m[0] < 0.5 and m[2] < 0.5


# ------------------------------------------------------------------ configs
ENTRAIN = """
seed = 0
[tissue]
shape = [3, 3, 3]
init = "constant"
weight_scale = 0.3
dtype = "float64"
[oscillators]
dt = 0.1
[entrain]
drive_max = 0.8
drive_points = 2
detuning_max = 0.5
detuning_points = 5
steps = 400
sample_every = 5
record_every = 50
"""


def _cfg(extra="", base=ENTRAIN, drop=None):
    text = base
    if drop:
        text = "\n".join(line for line in text.splitlines() if not line.startswith(drop))
    return load_config(text + extra)


@pytest.mark.parametrize("extra, names", [
    ("[oscillators]\nmodel = 'van_der_pol'\n", ["[oscillators] model", "stuart_landau", "kuramoto"]),
    ("[entrain]\ndetuning_points = 2\n", ["[entrain] detuning_points", ">= 3"]),
    ("[entrain]\nthreshold = 1.5\n", ["[entrain] threshold", "(0, 1]"]),
    ("[entrain]\nregion = {face = 'q+'}\n", ["[entrain] region.face", "z-"]),
    ("[entrain]\nregion = {box = [[0, 0, 0], [9, 9, 9]]}\n", ["[entrain] region", "outside the lattice"]),
    ("[phase_memory]\ncue_noise = 2.0\n", ["[phase_memory] cue_noise", "[0, 1]"]),
    ("[xy_learning]\noptimizer = 'rmsprop'\n", ["[xy_learning] optimizer", "adam", "sgd"]),
    ("[entrain]\nbogus = 1\n", ["unknown key 'bogus'", "drive_max"]),
])
def test_bad_keys_name_the_key_and_the_allowed_values(extra, names):
    sec = extra.split("]")[0] + "]"
    base = ENTRAIN
    if sec in base:     # replace the section's body by the bad key
        head, rest = base.split(sec)
        rest = rest.split("\n[", 1)
        base = head + ("\n[" + rest[1] if len(rest) > 1 else "")
    if sec in ("[phase_memory]", "[xy_learning]"):
        base = base.split("[entrain]")[0]
        if sec == "[xy_learning]":
            base = base.split("[oscillators]")[0].replace("[3, 3, 3]", "[8, 8, 3]")
    with pytest.raises(ConfigError) as err:
        load_config(base + extra)
    for n in names:
        assert n in str(err.value)


def test_cross_key_rules():
    with pytest.raises(ConfigError, match=r"exactly one of the sections \[entrain\]"):
        load_config(ENTRAIN.split("[entrain]")[0])
    with pytest.raises(ConfigError, match="one oscillator study per run"):
        _cfg("[phase_memory]\nmax_patterns = 2\n")
    with pytest.raises(ConfigError, match=r"section \[dynamics\] is not allowed"):
        _cfg("[dynamics]\ndt = 0.1\n")
    with pytest.raises(ConfigError, match=r"\[oscillators\] method"):
        load_config(ENTRAIN.replace("dt = 0.1", "dt = 0.1\nmethod = 'rk4'\nnoise = 0.1"))
    with pytest.raises(ConfigError, match=r"\[oscillators\] model.*kuramoto"):
        load_config(ENTRAIN.split("[entrain]")[0].replace("dt = 0.1", "dt = 0.1\nmodel = 'stuart_landau'")
                    + "[phase_memory]\n")
    with pytest.raises(ConfigError, match=r"\[tissue\] shape.*8x8"):
        load_config("[tissue]\nshape = [4, 4, 3]\n[xy_learning]\n")
    with pytest.raises(ConfigError, match=r"\[oscillators\] is not used by \[xy_learning\]"):
        load_config("[tissue]\nshape = [8, 8, 3]\n[oscillators]\n[xy_learning]\n")
    with pytest.raises(ConfigError, match=r"\[tissue\] is required"):
        load_config("[entrain]\n")


@pytest.mark.parametrize("name", ["oscillators-entrain", "oscillators-memory", "oscillators-xy"])
def test_shipped_configs_load_and_round_trip(name):
    from pathlib import Path

    from studies.config import to_toml

    path = Path(__file__).resolve().parents[1] / "configs" / f"{name}.toml"
    cfg = load_config(path)
    assert load_config(to_toml(cfg)) == cfg


# ------------------------------------------------------------------ runs
def test_entrain_run_writes_a_readable_store(tmp_path):
    import xarray as xr

    from studies.run import run

    out = tmp_path / "E.zarr"
    s = run(_cfg(), out, progress=False)
    assert s.status == "complete"
    ds = xr.open_zarr(out, consolidated=False)
    assert ds.plv.dims == ("drive", "detuning") and ds.plv.shape == (2, 5)
    assert ds.phase.dims == ("time", "trial", "x", "y", "z") and ds.phase.shape[1:] == (10, 3, 3, 3)
    assert ds.sizes["time"] == 9     # steps 0, 50, ..., 400
    assert np.all((ds.plv.values >= 0) & (ds.plv.values <= 1 + 1e-12))
    attrs = zarr.open_group(out, mode="r").attrs
    assert attrs["status"] == "complete"
    assert json.loads(attrs["config"])["entrain"]["detuning_points"] == 5
    assert (tmp_path / "E_tongue.png").stat().st_size > 1000
    assert (tmp_path / "E_phase_map.png").stat().st_size > 1000
    from tissue import load_tissue

    assert load_tissue(out).n == 27
    assert run(_cfg(), out, resume=True, progress=False).status == "already complete"
