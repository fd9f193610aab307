"""Run configurations: malformed configs are refused with one line naming the key (exit 2),
valid ones round-trip through their canonical form, and configs/demo.toml is the demo."""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from studies.cli import main
from studies.config import ConfigError, Phase, Region, load_config, to_toml

ROOT = Path(__file__).resolve().parents[1]


def toml(top="", tissue="", dynamics="", phase="", extra="", phases=None) -> str:
    """A small valid config with lines added to each part."""
    phases = phases if phases is not None else f"[[dynamics.phases]]\ntemperature = 0.0\nsteps = 10\n{phase}"
    return (f"seed = 1\n{top}\n[tissue]\nshape = [8, 8, 8]\n{tissue}\n"
            f"[dynamics]\ndt = 0.2\n{dynamics}\n{phases}\n{extra}\n")


# (id, TOML text, text the one-line message must contain)
BAD = [
    ("unknown-top-key", toml(top="colour = 3"), "unknown key 'colour'"),
    ("unknown-section", toml(extra="[learnin]\nrate = 0.1"), "unknown key 'learnin'"),
    ("unknown-section-key", toml(tissue="stencl = 26"), "[tissue] unknown key 'stencl'"),
    ("unknown-phase-key", toml(phase="temp = 1.0"), "[dynamics] phases[0] unknown key 'temp'"),
    ("unknown-region-key", toml(extra='[input]\nregion = {face = "z-", deep = 2}'), "[input] region"),
    ("wrong-type-shape", toml(tissue='shape = "8"').replace("shape = [8, 8, 8]\n", "", 1),
     "[tissue] shape = \"8\""),
    ("bool-as-int-seed", toml().replace("seed = 1", "seed = true"), "seed = true"),
    ("bool-as-int-steps", toml(phases="[[dynamics.phases]]\ntemperature = 0.0\nsteps = true"),
     "[dynamics] phases[0].steps = true"),
    ("float-as-int-every", toml(extra="[record]\nevery = 2.5"), "[record] every = 2.5"),
    ("string-as-float-dt", toml().replace("dt = 0.2", 'dt = "fast"'), '[dynamics] dt = "fast"'),
    ("negative-size", toml().replace("[8, 8, 8]", "[8, -1, 8]"), "[tissue] shape = [8, -1, 8]"),
    ("zero-size", toml().replace("[8, 8, 8]", "[0, 8, 8]"), "[tissue] shape = [0, 8, 8]"),
    ("two-sizes", toml().replace("[8, 8, 8]", "[8, 8]"), "[tissue] shape = [8, 8]"),
    ("zero-steps", toml(phases="[[dynamics.phases]]\ntemperature = 0.0\nsteps = 0"),
     "[dynamics] phases[0].steps = 0"),
    ("nan-temperature", toml(phases="[[dynamics.phases]]\ntemperature = nan\nsteps = 5"),
     "[dynamics] phases[0].temperature = nan"),
    ("negative-temperature", toml(phases="[[dynamics.phases]]\ntemperature = -0.1\nsteps = 5"),
     "[dynamics] phases[0].temperature = -0.1"),
    ("inf-dt", toml().replace("dt = 0.2", "dt = inf"), "[dynamics] dt = inf"),
    ("zero-dt", toml().replace("dt = 0.2", "dt = 0"), "[dynamics] dt = 0"),
    ("box-outside", toml(extra="[input]\nregion = {box = [[0, 0, 0], [9, 2, 2]]}"),
     "[input] region = {box = [[0, 0, 0], [9, 2, 2]]}"),
    ("ball-outside", toml(extra="[record]\nregion = {ball = {center = [20, 1, 1], radius = 2}}"),
     "[record] region"),
    ("slab-outside", toml(extra='[input]\nregion = {slab = {axis = "z", lo = 8}}'), "[input] region"),
    ("face-depth-outside", toml(extra='[input]\nregion = {face = "x+", depth = 9}'), "[input] region"),
    ("unknown-face", toml(extra='[input]\nregion = {face = "w+"}'), '[input] region.face = "w+"'),
    ("unknown-stencil", toml(tissue="stencil = 7"), "[tissue] stencil = 7: must be one of 6, 18, 26"),
    ("unknown-activation", toml(tissue='activation = "relu"'), '[tissue] activation = "relu"'),
    ("unknown-init", toml(tissue='init = "xavier"'), '[tissue] init = "xavier"'),
    ("unknown-dtype", toml(tissue='dtype = "float16"'), '[tissue] dtype = "float16"'),
    ("small-world-above-1", toml(tissue="small_world = 1.5"), "[tissue] small_world = 1.5"),
    ("radius-below-1", toml(tissue="radius = 0.5"), "[tissue] radius = 0.5"),
    ("stencil-and-radius", toml(tissue="stencil = 6\nradius = 2.0"), "[tissue] radius = 2.0"),
    ("negative-weight-scale", toml(tissue="weight_scale = -1.0"), "[tissue] weight_scale = -1.0"),
    ("empty-phases", toml(phases="phases = []"), "[dynamics] phases = []"),
    ("missing-phases", toml(phases=""), "[[dynamics.phases]] is required"),
    ("missing-steps", toml(phases="[[dynamics.phases]]\ntemperature = 0.0"),
     "[dynamics] phases[0].steps is required"),
    ("bad-variables", toml(extra='[record]\nvariables = ["activation", "speed"]'), "[record] variables"),
    ("empty-variables", toml(extra="[record]\nvariables = []"), "[record] variables = []"),
    ("repeated-variables", toml(extra='[record]\nvariables = ["energy", "energy"]'), "[record] variables"),
    ("zero-checkpoint-every", toml(extra="[record]\ncheckpoint_every = 0"), "[record] checkpoint_every = 0"),
    ("cue-flip-above-1", toml(extra="[patterns]\ncue_flip = 1.5"), "[patterns] cue_flip = 1.5"),
    ("zero-patterns", toml(extra="[patterns]\ncount = 0"), "[patterns] count = 0"),
    ("trials-with-patterns", toml(dynamics="trials = 4", extra="[patterns]\ncount = 2"), "[dynamics] trials = 4"),
    ("section-not-table", "tissue = 3\n[dynamics]\n[[dynamics.phases]]\ntemperature = 0.0\nsteps = 1\n",
     "tissue = 3: must be a table"),
    ("missing-tissue", "[dynamics]\n[[dynamics.phases]]\ntemperature = 0.0\nsteps = 1\n",
     "section [tissue] is required"),
    ("missing-shape", toml().replace("shape = [8, 8, 8]", ""), "[tissue] shape is required"),
    ("toml-syntax", toml().replace("[tissue]", "[tissue"), "invalid TOML"),
    ("toml-duplicate-key", toml(tissue="stencil = 6\nstencil = 18"), "invalid TOML"),
]


@pytest.mark.parametrize("text, expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_malformed_config_exits_2_with_one_line(tmp_path, capsys, text, expected):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    store = tmp_path / "run.zarr"
    code = main(["run", str(cfg), "--out", str(store), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("config error: ")
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert not store.exists()  # validated before any work


def test_at_least_fifteen_malformed_configs():
    assert len(BAD) >= 15


def test_messages_follow_the_documented_format():
    with pytest.raises(ConfigError) as e:
        load_config(toml(tissue="stencil = 7"))
    assert str(e.value) == "config error: [tissue] stencil = 7: must be one of 6, 18, 26"
    with pytest.raises(ConfigError) as e:
        load_config(toml(tissue="stencl = 26"))
    assert "(did you mean 'stencil'?)" in str(e.value)


def test_the_real_command_exits_2_without_traceback(tmp_path):
    """The console script, in a process of its own, for two kinds of error."""
    for i, (text, expected) in enumerate([(toml().replace("seed = 1", "seed = true"), "seed = true"),
                                          (toml().replace("[tissue]", "[tissue"), "invalid TOML")]):
        cfg = tmp_path / f"bad{i}.toml"
        cfg.write_text(text)
        r = subprocess.run([sys.executable, "-m", "studies.cli", "run", str(cfg), "--out",
                            str(tmp_path / "x.zarr")], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 2
        assert len(r.stderr.strip().splitlines()) == 1 and expected in r.stderr
        assert "Traceback" not in r.stderr


def test_missing_config_file_is_one_line(tmp_path, capsys):
    code = main(["run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "x.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot read" in err


# ------------------------------------------------------------------ valid configs
FULL = """
seed = 5
name = "full"
[tissue]
shape = [10, 9, 8]
radius = 1.8
small_world = 0.1
activation = "sigmoid"
init = "normal"
weight_scale = 0.3
bias = -0.5
dtype = "float64"
[patterns]
count = 2
smoothness = 1.5
gain = 2
cue_flip = 0.1
trials_per_pattern = 3
[input]
region = {slab = {axis = "y", lo = 2, hi = 4}}
value = 0.75
[dynamics]
dt = 0.1
tol = 1e-5
blowup = 1e4
[[dynamics.phases]]
temperature = 0.1
steps = 50
[[dynamics.phases]]
temperature = 0
steps = 100
[record]
every = 3
variables = ["state", "energy"]
region = {ball = {center = [5, 4, 4], radius = 2.5}}
checkpoint_every = 20
"""


def test_typed_values_and_defaults():
    cfg = load_config(toml())
    assert cfg.tissue.shape == (8, 8, 8) and cfg.tissue.stencil == 26
    assert cfg.tissue.activation == "hard_sigmoid" and cfg.tissue.dtype == "float32"
    assert cfg.dynamics.phases == (Phase(temperature=0.0, steps=10),)
    assert cfg.patterns is None and cfg.input is None and cfg.n_trials == 1
    assert cfg.record.every == 1 and cfg.record.variables == ("activation", "velocity", "energy")

    full = load_config(FULL)
    assert full.tissue.stencil is None and full.tissue.radius == 1.8
    assert isinstance(full.patterns.gain, float) and full.patterns.gain == 2.0   # int accepted for a float
    assert full.dynamics.phases[1].temperature == 0.0
    assert full.n_trials == 6
    assert full.input.region == Region("slab", ("y", 2, 4))
    assert full.record.region.to_dict() == {"ball": {"center": [5.0, 4.0, 4.0], "radius": 2.5}}


@pytest.mark.parametrize("text", [toml(), FULL, (ROOT / "configs" / "demo.toml").read_text()])
def test_canonical_form_round_trips(text):
    cfg = load_config(text)
    canon = cfg.to_dict()
    assert load_config(canon) == cfg
    assert load_config(canon).to_dict() == canon
    back = to_toml(cfg)
    assert tomllib.loads(back) == canon           # the TOML writer is exact
    assert load_config(back) == cfg
    assert all(v is not None for sec in canon.values() if isinstance(sec, dict) for v in sec.values())


def test_canonical_form_fills_every_default():
    canon = load_config(toml()).to_dict()
    assert canon["tissue"] == {"shape": [8, 8, 8], "stencil": 26, "small_world": 0.0,
                               "activation": "hard_sigmoid", "init": "uniform", "bias": 0.0,
                               "dtype": "float32"}
    assert canon["dynamics"]["tol"] == 1e-4 and canon["dynamics"]["trials"] == 1
    assert canon["record"] == {"every": 1, "variables": ["activation", "velocity", "energy"]}
    # written differently, same config: same canonical form
    other = toml(tissue="stencil = 26\nsmall_world = 0", dynamics="tol = 0.0001")
    assert load_config(other).to_dict() == canon


def test_regions_match_the_lattice():
    from tissue import Lattice

    lat = Lattice((8, 8, 8))
    cfg = load_config(toml(extra='[input]\nregion = {face = "z-", depth = 2}\n'
                                 '[record]\nregion = {box = [[1, 2, 3], [4, 5, 6]]}'))
    assert list(cfg.input.region.indices(lat)) == list(lat.face("z-", depth=2))
    c = lat.coords(cfg.record.region.indices(lat))
    assert len(c) == 27 and c.min(0).tolist() == [1, 2, 3] and c.max(0).tolist() == [3, 4, 5]


def test_demo_toml_is_the_embedded_demo():
    from studies.demo import DEMO, demo_config

    shipped = load_config(ROOT / "configs" / "demo.toml")
    assert shipped == demo_config()
    assert shipped.to_dict() == load_config(DEMO).to_dict()
    assert demo_config(size=12).tissue.shape == (12, 12, 12)


def test_check_command_prints_the_canonical_toml(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(FULL)
    assert main(["check", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert load_config(out) == load_config(FULL)
    assert main(["check", "--schema"]) == 0
    schema = capsys.readouterr().out
    for key in ("[tissue]", "stencil: one of 6, 18, 26", "[[dynamics.phases]]", "checkpoint_every"):
        assert key in schema


def test_nan_never_passes_any_float_key():
    for text in (toml(tissue="bias = nan"), toml(extra="[input]\nregion = {face = \"z-\"}\nvalue = nan"),
                 toml(dynamics="blowup = inf"), toml(extra="[patterns]\ngain = nan")):
        with pytest.raises(ConfigError, match="nan|inf"):
            load_config(text)
    assert math.isfinite(load_config(toml()).dynamics.blowup)
