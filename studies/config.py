"""Run configurations: TOML files validated into typed, frozen objects.

A run config has sections named after the packages::

    seed = 0                      # seeds wiring, patterns, cues and noise
    name = "demo"

    [tissue]                      # tissue.Tissue.cube
    shape = [32, 32, 32]
    stencil = 26

    [patterns]                    # optional: plasticity.store_patterns
    count = 3

    [input]                       # optional: a clamped region
    region = {face = "z-"}
    value = 1.0

    [dynamics]                    # dynamics.Langevin, one engine per phase
    dt = 0.2
    [[dynamics.phases]]
    temperature = 0.02
    steps = 200

    [record]                      # tissue.Recorder
    every = 5

The schema is declarative: every field of the dataclasses below carries a
:class:`Spec` (kind, range or choices, default, doc) in its metadata, and one
generic walker (:func:`_build`) validates a parsed TOML document against it.
Validation is complete before any work starts; the first problem raises
:class:`ConfigError` whose message is one line naming the key and what is
allowed, e.g. ``config error: [tissue] stencil = 7: must be one of 6, 18, 26``.

:meth:`RunConfig.to_dict` gives the *canonical* form: every key with its
default filled in, absent optional keys left out, keys in schema order. It is
stored in a run's attributes (as JSON) and compared on ``--resume``;
``load_config(cfg.to_dict()) == cfg`` and :func:`to_toml` writes it back as
TOML.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tissue.core import ACTIVATIONS, DTYPES
from tissue.lattice import AXES, FACES, Lattice
from tissue.records import VARIABLES
from tissue.wiring import INIT_SCHEMES, STENCILS

__all__ = [
    "BaselinesConfig", "ConfigError", "DynamicsConfig", "HomeostasisConfig", "InputConfig", "LearningConfig",
    "PatternsConfig", "Phase", "RecordConfig", "Region", "RunConfig", "Spec", "TaskConfig", "TissueConfig",
    "describe", "load_config", "to_toml",
]

REQUIRED = MISSING         # the default of a required key
MAX_VOXELS = 2**31 - 1     # voxel indices are int32 in the wiring table
MAX_RADIUS = 8.0           # a radius-8 ball already holds 2144 synapses per neuron


class ConfigError(ValueError):
    """An invalid run configuration; ``str(err)`` is one line starting ``config error:``."""

    def __init__(self, message: str):
        message = " ".join(str(message).split())  # one line, whatever the cause said
        super().__init__(message if message.startswith("config error:") else f"config error: {message}")


# ------------------------------------------------------------------ the schema
@dataclass(frozen=True)
class Spec:
    """How one key is checked.

    ``kind`` is one of ``int``, ``float``, ``str``, ``choice``, ``ints`` (a list
    of ``length`` integers), ``strs`` (a list of distinct ``choices``),
    ``region`` (a :class:`Region` table), ``section`` (a sub-table of class
    ``cls``) or ``tables`` (an array of tables of class ``cls``). ``lo``/``hi``
    bound numbers (``lo_open``: strictly above ``lo``). ``default`` is
    ``REQUIRED`` for a required key and ``None`` for an optional one.
    """

    kind: str
    doc: str = ""
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple = ()
    length: int | None = None
    cls: type | None = None

    def allowed(self) -> str:
        """What the key accepts, in words (used in error messages)."""
        k = self.kind
        if k == "int":
            return "an integer" + self._range()
        if k == "float":
            return "a finite number" + self._range()
        if k == "str":
            return "a string"
        if k == "bool":
            return "true or false"
        if k == "choice":
            return "one of " + ", ".join(_fmt(c) for c in self.choices)
        if k == "ints":
            return f"a list of {self.length} integers" + self._range()
        if k == "strs":
            return "a non-empty list of distinct values among " + ", ".join(_fmt(c) for c in self.choices)
        if k == "region":
            return Region.ALLOWED
        if k == "section":
            return "a table"
        if k == "tables":
            return "a non-empty array of tables"
        raise AssertionError(k)

    def _range(self) -> str:
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            return f" in [{_num(lo)}, {_num(hi)}]" if not self.lo_open else f" in ({_num(lo)}, {_num(hi)}]"
        if lo is not None:
            return f" {'>' if self.lo_open else '>='} {_num(lo)}"
        if hi is not None:
            return f" <= {_num(hi)}"
        return ""


def param(kind: str, doc: str, default: Any = REQUIRED, **rules):
    """A dataclass field carrying its :class:`Spec` (``default=REQUIRED``: required)."""
    spec = Spec(kind, doc, default, **rules)
    if default is REQUIRED:
        return field(metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _fmt(v, limit: int = 60) -> str:
    """A value as TOML-ish text for messages."""
    if isinstance(v, bool):
        s = "true" if v else "false"
    elif isinstance(v, str):
        s = json.dumps(v)
    elif isinstance(v, float):
        s = "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    elif isinstance(v, Mapping):
        s = "{" + ", ".join(f"{k} = {_fmt(x, limit)}" for k, x in v.items()) + "}"
    elif isinstance(v, (list, tuple)):
        s = "[" + ", ".join(_fmt(x, limit) for x in v) + "]"
    else:
        s = str(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _typename(v) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, Mapping):
        return "a table"
    if isinstance(v, (list, tuple)):
        return "an array"
    return f"a {type(v).__name__}"


class _Key:
    """A key path for messages: ``seed``, ``[tissue] stencil``, ``[dynamics] phases[0].steps``."""

    def __init__(self, section: str | None = None, path: str = ""):
        self.section, self.path = section, path

    def __truediv__(self, name) -> "_Key":
        if isinstance(name, int):
            return _Key(self.section, f"{self.path}[{name}]")
        return _Key(self.section, f"{self.path}.{name}" if self.path else str(name))

    def __str__(self) -> str:
        if self.section is None:
            return self.path
        return f"[{self.section}] {self.path}" if self.path else f"[{self.section}]"

    def bad(self, value, problem: str) -> ConfigError:
        return ConfigError(f"{self} = {_fmt(value)}: {problem}")

    def must(self, spec: Spec, value, wrong_type: bool = False) -> ConfigError:
        got = f" (got {_typename(value)})" if wrong_type else ""
        return self.bad(value, f"must be {spec.allowed()}{got}")


# ------------------------------------------------------------------ regions
@dataclass(frozen=True)
class Region:
    """A named region of the lattice, as written in TOML.

    One of ``{face = "z-"}`` (optionally ``depth = 2``),
    ``{box = [[x0, y0, z0], [x1, y1, z1]]}`` (half-open, like slicing),
    ``{ball = {center = [x, y, z], radius = r}}`` or
    ``{slab = {axis = "z", lo = 0, hi = 2}}`` (``hi`` defaults to ``lo + 1``).
    """

    kind: str
    args: tuple  # canonical arguments, see to_dict

    ALLOWED = ('a table with exactly one of face, box, ball, slab, e.g. {face = "z-"}, '
               '{box = [[0, 0, 0], [4, 4, 4]]}, {ball = {center = [8, 8, 8], radius = 3}}, '
               '{slab = {axis = "z", lo = 0, hi = 2}}')

    def to_dict(self) -> dict:
        if self.kind == "face":
            return {"face": self.args[0], "depth": self.args[1]}
        if self.kind == "box":
            return {"box": [list(self.args[0]), list(self.args[1])]}
        if self.kind == "ball":
            return {"ball": {"center": list(self.args[0]), "radius": self.args[1]}}
        return {"slab": {"axis": self.args[0], "lo": self.args[1], "hi": self.args[2]}}

    def indices(self, lattice: Lattice):
        """The sorted voxel indices of this region on ``lattice``."""
        if self.kind == "face":
            return lattice.face(self.args[0], depth=self.args[1])
        if self.kind == "box":
            return lattice.box(*self.args)
        if self.kind == "ball":
            return lattice.ball(self.args[0], self.args[1])
        return lattice.slab(*self.args)

    @classmethod
    def parse(cls, value, key: _Key) -> "Region":
        if not isinstance(value, Mapping):
            raise key.bad(value, f"must be {cls.ALLOWED}")
        kinds = [k for k in ("face", "box", "ball", "slab") if k in value]
        unknown = [k for k in value if k not in ("face", "box", "ball", "slab", "depth")]
        if unknown:
            raise _unknown(key / unknown[0], ("face", "depth", "box", "ball", "slab"))
        if len(kinds) != 1:
            raise key.bad(value, f"must be {cls.ALLOWED}")
        kind = kinds[0]
        v = value[kind]
        if "depth" in value and kind != "face":
            raise (key / "depth").bad(value["depth"], "is only allowed with face")
        if kind == "face":
            if not isinstance(v, str) or v not in FACES:
                raise (key / "face").bad(v, "must be one of " + ", ".join(_fmt(f) for f in FACES))
            depth = _check(Spec("int", lo=1), value.get("depth", 1), key / "depth")
            return cls("face", (v, depth))
        if kind == "box":
            corner = Spec("ints", length=3, lo=0)
            if not (isinstance(v, list) and len(v) == 2):
                raise (key / "box").bad(v, "must be two corners [[x0, y0, z0], [x1, y1, z1]] "
                                           "(half-open, like slicing)")
            lo = _check(corner, v[0], key / "box" / 0)
            hi = _check(corner, v[1], key / "box" / 1)
            return cls("box", (lo, hi))
        if kind == "ball":
            if not isinstance(v, Mapping):
                raise (key / "ball").bad(v, "must be a table {center = [x, y, z], radius = r}")
            _no_unknown(v, ("center", "radius"), key / "ball")
            center = v.get("center")
            if not (isinstance(center, list) and len(center) == 3
                    and all(_is_number(c) and math.isfinite(c) for c in center)):
                raise (key / "ball" / "center").bad(center, "must be a list of 3 finite numbers")
            if "radius" not in v:
                raise ConfigError(f"{key / 'ball' / 'radius'} is required: a number >= 0")
            radius = _check(Spec("float", lo=0), v["radius"], key / "ball" / "radius")
            return cls("ball", (tuple(float(c) for c in center), radius))
        if not isinstance(v, Mapping):
            raise (key / "slab").bad(v, 'must be a table {axis = "x"|"y"|"z", lo = i, hi = j}')
        _no_unknown(v, ("axis", "lo", "hi"), key / "slab")
        axis = v.get("axis")
        if axis not in AXES:
            raise (key / "slab" / "axis").bad(axis, "must be one of " + ", ".join(_fmt(a) for a in AXES))
        if "lo" not in v:
            raise ConfigError(f"{key / 'slab' / 'lo'} is required: an integer >= 0")
        lo = _check(Spec("int", lo=0), v["lo"], key / "slab" / "lo")
        hi = _check(Spec("int", lo=lo + 1), v.get("hi", lo + 1), key / "slab" / "hi")
        return cls("slab", (axis, lo, hi))


def _check_region_fits(region: Region, lattice: Lattice, key: _Key) -> None:
    """Raise a ConfigError naming ``key`` unless ``region`` lies in ``lattice`` and is non-empty."""
    shape = lattice.shape
    problem = None
    if region.kind == "face":
        face, depth = region.args
        n = shape[AXES.index(face[0])]
        if depth > n:
            problem = f"face depth {depth} exceeds the {n} voxels along {face[0]}"
    elif region.kind in ("box", "slab"):
        if region.kind == "box":
            spans = list(zip("xyz", *region.args))
        else:
            axis, lo, hi = region.args
            spans = [(axis, lo, hi)]
        for a, lo, hi in spans:
            n = shape[AXES.index(a)]
            if not 0 <= lo < hi <= n:
                problem = (f"{region.kind} along {a} is [{lo}, {hi}) but must be a non-empty part of "
                           f"[0, {n})")
                break
    else:
        center, _ = region.args
        if any(not 0 <= c <= n - 1 for c, n in zip(center, shape)):
            problem = "ball centre must lie in the lattice: " + " x ".join(f"[0, {n - 1}]" for n in shape)
    if problem is None and len(region.indices(lattice)) == 0:
        problem = "holds no voxel of the lattice"
    if problem is not None:
        raise key.bad(region.to_dict(), f"outside the lattice {list(shape)}: {problem}"
                      if "no voxel" not in problem else problem)


# ------------------------------------------------------------------ sections
@dataclass(frozen=True, kw_only=True)
class TissueConfig:
    """[tissue]: the substrate, built with :meth:`tissue.Tissue.cube`."""

    shape: tuple = param("ints", "voxels along x, y and z", length=3, lo=1)
    stencil: int | None = param("choice", "neighbourhood: 6, 18 or 26 neighbours "
                                "(26 unless radius is given)", 26, choices=STENCILS)
    radius: float | None = param("float", "wire all pairs within this distance in voxels "
                                 "(instead of a stencil)", None, lo=1, hi=MAX_RADIUS)
    small_world: float = param("float", "fraction of synapses rewired to distant voxels", 0.0, lo=0, hi=1)
    activation: str = param("choice", "rate function rho(s)", "hard_sigmoid", choices=ACTIVATIONS)
    init: str = param("choice", "weight initialisation", "uniform", choices=INIT_SCHEMES)
    weight_scale: float | None = param("float", "weight scale (default 1/sqrt(K))", None, lo=0)
    bias: float = param("float", "initial bias of every neuron", 0.0)
    dtype: str = param("choice", "floating point type of states and weights", "float32",
                       choices=tuple(DTYPES))


@dataclass(frozen=True, kw_only=True)
class PatternsConfig:
    """[patterns]: Hebbian storage of smooth random 3D binary patterns
    (gaussian-filtered noise thresholded at its median), and the corrupted cues
    the trials start from."""

    count: int = param("int", "number of stored patterns", 3, lo=1)
    smoothness: float = param("float", "gaussian filter width (voxels)", 2.0, lo=0, lo_open=True)
    gain: float = param("float", "Hebbian coupling strength", 4.0, lo=0, lo_open=True)
    cue_flip: float = param("float", "fraction of voxels flipped in each cue", 0.25, lo=0, hi=1)
    trials_per_pattern: int = param("int", "cued trials per pattern", 1, lo=1)


@dataclass(frozen=True, kw_only=True)
class InputConfig:
    """[input]: a region clamped to a value in every trial."""

    region: Region = param("region", "the clamped voxels")
    value: float = param("float", "the clamped state", 1.0)


@dataclass(frozen=True, kw_only=True)
class Phase:
    """[[dynamics.phases]]: one Langevin engine run after the previous one."""

    temperature: float = param("float", "noise temperature; 0 is gradient flow, which stops when "
                                "every trial has converged", lo=0)
    steps: int = param("int", "number of steps; at T > 0 all are run, at T = 0 it is a cap", lo=1)


@dataclass(frozen=True, kw_only=True)
class DynamicsConfig:
    """[dynamics]: Langevin settling in phases (an annealing schedule)."""

    dt: float = param("float", "time step in membrane time constants", 0.2, lo=0, lo_open=True)
    tol: float = param("float", "convergence: max |ds/dt| below this", 1e-4, lo=0, lo_open=True)
    blowup: float = param("float", "max |s| beyond which the run has diverged", 1e6, lo=0, lo_open=True)
    trials: int | None = param("int", "trials without [patterns] (with patterns: count x "
                               "trials_per_pattern)", None, lo=1)
    init: str = param("choice", "initial state without [patterns]: rest (0) or random in [0, 1)",
                      "random", choices=("rest", "random"))
    max_steps: int = param("int", "step cap of every settle of a [learning] run", 1000, lo=1)
    phases: tuple | None = param("tables", "one [[dynamics.phases]] table per phase, run in order "
                                 "(required without [learning])", None, cls=Phase)


@dataclass(frozen=True, kw_only=True)
class RecordConfig:
    """[record]: what the run store keeps (see tissue.Recorder)."""

    every: int = param("int", "record a frame every this many steps", 1, lo=1)
    variables: tuple = param("strs", "recorded variables", ("activation", "velocity", "energy"),
                             choices=VARIABLES)
    region: Region | None = param("region", "record only this region's bounding box", None)
    checkpoint_every: int | None = param("int", "steps between checkpoints", None, lo=1)


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """[task]: what a [learning] run learns; the input is the z- face, the output the z+ face."""

    name: str = param("choice", "digits: scikit-learn's 8x8 digits; patterns: synthetic prototypes",
                      "digits", choices=("digits", "patterns"))
    upsample: int = param("int", "each pixel covers upsample x upsample input voxels", 1, lo=1, hi=16)
    test_size: float = param("float", "held-out fraction (stratified, seeded by seed)", 0.25, lo=0.05, hi=0.9)
    output_layout: str = param("choice", "output groups: contiguous blocks or interleaved voxels",
                               "interleaved", choices=("blocks", "interleaved"))
    n_classes: int = param("int", "classes of the patterns task", 4, lo=2, hi=64)
    noise: float = param("float", "flipped pixel fraction of the patterns task", 0.1, lo=0, hi=0.5)


@dataclass(frozen=True, kw_only=True)
class LearningConfig:
    """[learning]: Equilibrium Propagation (plasticity.EqProp)."""

    epochs: int = param("int", "passes over the training set", 30, lo=1)
    beta: float = param("float", "nudge strength", 0.1, lo=0, lo_open=True)
    symmetric: bool = param("bool", "nudge with +beta and -beta (else free and +beta)", True)
    lr: float = param("float", "learning rate of the weights", 0.003, lo=0)
    lr_bias: float | None = param("float", "learning rate of the biases (default lr)", None, lo=0)
    depth_lr: float = param("float", "learning-rate factor per voxel of distance from the output", 1.0,
                            lo=0, lo_open=True)
    optimizer: str = param("choice", "sgd, or adam (per-synapse adaptive steps)", "adam",
                           choices=("sgd", "adam"))
    batch_size: int = param("int", "examples settled together", 32, lo=1)
    persistent: bool = param("bool", "warm-start free phases from each example's last fixed point", False)
    nudged_steps: int | None = param("int", "step cap of the nudged phases (default max_steps)", None, lo=1)
    target_on: float = param("float", "target rate of the correct output group", 1.0)
    target_off: float = param("float", "target rate of the other output groups", 0.0)
    cost: str = param("choice", "squared error per output voxel, on the group means, or softmax "
                      "cross-entropy of the group means", "squared",
                      choices=("squared", "group_squared", "cross_entropy"))
    tau: float = param("float", "temperature of the cross-entropy read-out", 0.1, lo=0, lo_open=True)
    schedule: str = param("choice", "learning-rate schedule over the epochs", "constant",
                          choices=("constant", "cosine"))
    lr_final: float = param("float", "cosine schedule: final learning rate / lr", 0.05, lo=0, hi=1)
    weight_clip: float | None = param("float", "clip weights to [-c, c] after each update", None,
                                      lo=0, lo_open=True)
    blends: int = param("int", "ambiguous 50/50 blends of two test digits for the uncertainty AUROC",
                        200, lo=0)
    alignment_samples: int = param("int", "test samples of the final gradient-alignment check "
                                   "(0: skip it)", 8, lo=0)


@dataclass(frozen=True, kw_only=True)
class HomeostasisConfig:
    """[homeostasis]: Lipschitz braking (plasticity.LipschitzBrake)."""

    enabled: bool = param("bool", "brake when a free phase stalls or diverges", True)
    target: float = param("float", "contraction to brake down to", 0.9, lo=0, lo_open=True)
    trigger: float = param("float", "brake only above this contraction (>= target)", 0.95,
                           lo=0, lo_open=True)
    stall_fraction: float = param("float", "a free phase has stalled when this share of its trials "
                                  "hits max_steps", 0.25, lo=0, lo_open=True, hi=1)


@dataclass(frozen=True, kw_only=True)
class BaselinesConfig:
    """[baselines]: backprop references trained on the same split."""

    mlp: bool = param("bool", "scikit-learn MLPClassifier with as many weights as the tissue", True)
    logistic: bool = param("bool", "logistic regression on the pixels", True)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A whole run: top-level keys and one field per section."""

    seed: int = param("int", "seeds wiring, patterns, cues and noise", 0, lo=0)
    name: str = param("str", "a name for the run", "run")
    tissue: TissueConfig = param("section", "the substrate", cls=TissueConfig)
    patterns: PatternsConfig | None = param("section", "stored patterns and cues", None, cls=PatternsConfig)
    input: InputConfig | None = param("section", "a clamped input region", None, cls=InputConfig)
    dynamics: DynamicsConfig = param("section", "settling phases", cls=DynamicsConfig)
    record: RecordConfig = param("section", "what to record", RecordConfig(), cls=RecordConfig)
    task: TaskConfig | None = param("section", "the task of a learning run", None, cls=TaskConfig)
    learning: LearningConfig | None = param("section", "Equilibrium Propagation", None, cls=LearningConfig)
    homeostasis: HomeostasisConfig | None = param("section", "Lipschitz braking", None, cls=HomeostasisConfig)
    baselines: BaselinesConfig | None = param("section", "backprop baselines", None, cls=BaselinesConfig)

    @property
    def n_trials(self) -> int:
        if self.patterns is not None:
            return self.patterns.count * self.patterns.trials_per_pattern
        return self.dynamics.trials

    def to_dict(self) -> dict:
        """The canonical dict: defaults filled in, absent optional keys omitted."""
        return _to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


# ------------------------------------------------------------------ validation
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _in_range(spec: Spec, v) -> bool:
    if spec.lo is not None and (v <= spec.lo if spec.lo_open else v < spec.lo):
        return False
    return spec.hi is None or v <= spec.hi


def _unknown(key: _Key, allowed) -> ConfigError:
    name = key.path.rsplit(".", 1)[-1] if key.path else ""
    where = _Key(key.section, key.path.rsplit(".", 1)[0] if "." in key.path else "")
    close = difflib.get_close_matches(name, list(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    prefix = f"{where} " if str(where) else ""
    return ConfigError(f"{prefix}unknown key {name!r}{hint}; allowed: {', '.join(allowed)}")


def _no_unknown(data: Mapping, allowed, key: _Key) -> None:
    for k in data:
        if k not in allowed:
            raise _unknown(key / k, allowed)


def _check(spec: Spec, v, key: _Key):
    """Validate one value against its spec; returns the typed value."""
    k = spec.kind
    if k == "int":
        if not (isinstance(v, int) and not isinstance(v, bool)):
            raise key.must(spec, v, wrong_type=True)
        if not _in_range(spec, v):
            raise key.must(spec, v)
        return int(v)
    if k == "float":
        if not _is_number(v):
            raise key.must(spec, v, wrong_type=True)
        if not (math.isfinite(v) and _in_range(spec, v)):
            raise key.must(spec, v)
        return float(v)
    if k == "str":
        if not isinstance(v, str):
            raise key.must(spec, v, wrong_type=True)
        return v
    if k == "bool":
        if not isinstance(v, bool):
            raise key.must(spec, v, wrong_type=True)
        return v
    if k == "choice":
        if isinstance(v, bool) or v not in spec.choices or type(v) is not type(spec.choices[0]):
            close = difflib.get_close_matches(v, spec.choices, n=1) if isinstance(v, str) else []
            hint = f" (did you mean {_fmt(close[0])}?)" if close else ""
            raise key.bad(v, f"must be {spec.allowed()}{hint}")
        return v
    if k in ("ints", "strs") and not isinstance(v, list):
        raise key.must(spec, v, wrong_type=True)
    if k == "ints":
        if not (len(v) == spec.length
                and all(isinstance(x, int) and not isinstance(x, bool) and _in_range(spec, x) for x in v)):
            raise key.must(spec, v)
        return tuple(int(x) for x in v)
    if k == "strs":
        if not (v and all(isinstance(x, str) and x in spec.choices for x in v)
                and len(set(v)) == len(v)):
            raise key.must(spec, v)
        return tuple(v)
    if k == "region":
        return Region.parse(v, key)
    if k == "section":
        if not isinstance(v, Mapping):
            raise ConfigError(f"{key.path} = {_fmt(v)}: must be a table [{key.path}]")
        return _build(spec.cls, v, _Key(key.path))
    if k == "tables":
        if not isinstance(v, list) or not v or not all(isinstance(x, Mapping) for x in v):
            raise key.bad(v, f"must be a non-empty array of tables [[{key.section}.{key.path}]], "
                             f"each with {', '.join(f.name for f in fields(spec.cls))}")
        return tuple(_build(spec.cls, x, key / i) for i, x in enumerate(v))
    raise AssertionError(k)


def _build(cls, data: Mapping, key: _Key):
    """Validate the table ``data`` against dataclass ``cls``."""
    specs = {f.name: f.metadata["spec"] for f in fields(cls)}
    allowed = [n if specs[n].kind != "section" else f"[{n}]" for n in specs]
    for name in data:
        if name not in specs:
            raise _unknown(key / name, allowed)
    values = {}
    for name, spec in specs.items():
        if name in data:
            values[name] = _check(spec, data[name], key / name)
        elif spec.default is REQUIRED:
            what = f"[{name}]" if spec.kind == "section" else str(key / name)
            if spec.kind == "section":
                raise ConfigError(f"section {what} is required ({spec.doc})")
            raise ConfigError(f"{what} is required: {spec.allowed()} ({spec.doc})")
        else:
            values[name] = spec.default
    return cls(**values)


def _cross_checks(cfg: RunConfig, raw: Mapping) -> RunConfig:
    """Rules that involve several keys; regions checked against the lattice."""
    t = cfg.tissue
    raw_t = raw.get("tissue", {})
    if t.radius is not None:
        if "stencil" in raw_t:
            raise _Key("tissue", "radius").bad(t.radius, "give either stencil or radius, not both")
        cfg = replace(cfg, tissue=replace(t, stencil=None))
    if math.prod(t.shape) > MAX_VOXELS:
        raise _Key("tissue", "shape").bad(list(t.shape), f"too many voxels (at most {MAX_VOXELS})")
    d = cfg.dynamics
    if cfg.learning is not None or cfg.task is not None:
        return _learning_checks(cfg, raw)
    for name in ("homeostasis", "baselines"):
        if getattr(cfg, name) is not None:
            raise ConfigError(f"section [{name}] needs [learning] and [task]")
    if d.phases is None:
        raise ConfigError("[[dynamics.phases]] is required: at least one phase "
                          "(temperature, steps), unless the run has [learning]")
    if "max_steps" in raw.get("dynamics", {}):
        raise _Key("dynamics", "max_steps").bad(d.max_steps, "only for [learning] runs "
                                                "(settle runs cap each phase with its steps)")
    cfg = replace(cfg, dynamics=replace(d, max_steps=None))
    d = cfg.dynamics
    if cfg.patterns is not None:
        if d.trials is not None:
            raise _Key("dynamics", "trials").bad(
                d.trials, "not allowed with [patterns] (trials = count x trials_per_pattern)")
        if "init" in raw.get("dynamics", {}):
            raise _Key("dynamics", "init").bad(d.init, "not allowed with [patterns] (trials start from cues)")
        cfg = replace(cfg, dynamics=replace(d, init=None))
    elif d.trials is None:
        cfg = replace(cfg, dynamics=replace(d, trials=1))
    lattice = Lattice(t.shape)
    if cfg.input is not None:
        _check_region_fits(cfg.input.region, lattice, _Key("input", "region"))
    if cfg.record.region is not None:
        _check_region_fits(cfg.record.region, lattice, _Key("record", "region"))
    return cfg


def _learning_checks(cfg: RunConfig, raw: Mapping) -> RunConfig:
    """A learning run: [task] and [learning] together, no settle-run sections."""
    if cfg.learning is None:
        raise ConfigError("section [learning] is required with [task]")
    if cfg.task is None:
        raise ConfigError("section [task] is required with [learning]")
    for name in ("patterns", "input"):
        if getattr(cfg, name) is not None:
            raise ConfigError(f"section [{name}] is not allowed with [learning] "
                              f"(the task's images are clamped on the z- face)")
    raw_d = raw.get("dynamics", {})
    for key in ("phases", "trials", "init"):
        if key in raw_d:
            raise _Key("dynamics", key).bad(raw_d[key], "not allowed with [learning] "
                                            "(every settle runs at T = 0 up to max_steps)")
    h = cfg.homeostasis
    if h is not None and h.target > h.trigger:
        raise _Key("homeostasis", "target").bad(h.target, f"must be <= trigger ({h.trigger})")
    t, tk = cfg.tissue, cfg.task
    side = 8 * tk.upsample
    if t.shape[0] < side or t.shape[1] < side:
        raise _Key("tissue", "shape").bad(list(t.shape), f"the z- face must hold the {side}x{side} "
                                          f"input (8x8 images, upsample {tk.upsample})")
    if t.shape[2] < 2:
        raise _Key("tissue", "shape").bad(list(t.shape), "needs at least 2 layers along z "
                                          "(input face z-, output face z+)")
    if tk.name == "digits" and t.shape[0] * t.shape[1] < 10:
        raise _Key("tissue", "shape").bad(list(t.shape), "the z+ face needs a voxel per class (10)")
    return replace(cfg, dynamics=replace(cfg.dynamics, init=None))


def _to_dict(obj) -> dict:
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if v is None:
            continue
        if isinstance(v, Region):
            v = v.to_dict()
        elif hasattr(v, "__dataclass_fields__"):
            v = _to_dict(v)
        elif isinstance(v, tuple):
            v = [_to_dict(x) if hasattr(x, "__dataclass_fields__") else x for x in v]
        out[f.name] = v
    return out


# ------------------------------------------------------------------ loading
def load_config(source) -> RunConfig:
    """Validate a run config given as a TOML path, a TOML string or a dict.

    A ``str`` naming an existing file or ending in ``.toml`` is read as a path;
    any other ``str`` is parsed as TOML text.

    Raises
    ------
    ConfigError
        One line naming the key and what it allows (also for unreadable files
        and TOML syntax errors).
    """
    if isinstance(source, Mapping):
        raw = source
    else:
        is_path = isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and (
            source.endswith(".toml") or Path(source).exists()))
        if is_path:
            path = Path(source)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                raise ConfigError(f"cannot read {path}: {reason}") from None
            where = f"{path}: "
        else:
            text, where = str(source), ""
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{where}invalid TOML: {err}") from None
    cfg = _build(RunConfig, raw, _Key())
    return _cross_checks(cfg, raw)


def to_toml(cfg: RunConfig | Mapping) -> str:
    """Write a config (or its canonical dict) as TOML text that loads back to it."""
    d = cfg.to_dict() if isinstance(cfg, RunConfig) else dict(cfg)

    def val(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, Mapping):
            return "{" + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return str(v)

    lines = [f"{k} = {val(v)}" for k, v in d.items() if not isinstance(v, Mapping)]
    for sec, body in d.items():
        if not isinstance(body, Mapping):
            continue
        lines += ["", f"[{sec}]"]
        lines += [f"{k} = {val(v)}" for k, v in body.items()
                  if not (isinstance(v, list) and v and isinstance(v[0], Mapping))]
        for k, v in body.items():
            if isinstance(v, list) and v and isinstance(v[0], Mapping):
                for item in v:
                    lines += ["", f"[[{sec}.{k}]]"] + [f"{a} = {val(b)}" for a, b in item.items()]
    return "\n".join(lines) + "\n"


def describe() -> str:
    """The schema as text: every section and key with its default and what it allows."""
    lines = []

    def walk(cls, title):
        doc = " ".join((cls.__doc__ or "").split("\n\n")[0].split())
        doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc)   # drop reST roles
        lines.append(f"{title}  # {doc.split(': ', 1)[-1]}")
        for f in fields(cls):
            s = f.metadata["spec"]
            if s.kind in ("section", "tables"):
                continue
            if s.default is REQUIRED:
                default = "required"
            elif s.default is None:
                default = "optional"
            else:
                d = list(s.default) if isinstance(s.default, tuple) else s.default
                default = f"default {_fmt(d)}"
            lines.append(f"  {f.name}: {s.allowed()}; {default}. {s.doc}")
        for f in fields(cls):
            s = f.metadata["spec"]
            if s.kind == "section":
                walk(s.cls, f"[{f.name}]")
            elif s.kind == "tables":
                walk(s.cls, f"[[{title.strip('[]')}.{f.name}]]")

    walk(RunConfig, "(top level)")
    return "\n".join(lines)
