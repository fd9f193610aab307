"""The config schema's building blocks: :class:`Spec`, :func:`param`, :class:`Region`, and the
generic validator (:func:`_build`) that checks a parsed TOML table against a dataclass of params.

Sections of a run config are frozen dataclasses whose fields are made with :func:`param`; they live
in :mod:`studies.config` and in the study modules' own ``*_config`` modules, which import from here
(not from :mod:`studies.config`, which imports them).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from tissue.lattice import AXES, FACES, Lattice

__all__ = ["ConfigError", "MAX_RADIUS", "MAX_VOXELS", "REQUIRED", "Region", "Spec", "param"]

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


