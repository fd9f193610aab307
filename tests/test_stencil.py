"""The stencil view of the wiring (dynamics.stencil): exact view, exact step, thread determinism.

References are independent of the kernels: the lattice coordinates and the
synapse table's edges (NumPy) for the view, and a float64 NumPy step built
from ``Tissue.to_scipy()`` (with a NumPy SplitMix64 for the noise) for the
kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

from dynamics import Langevin
from dynamics import kernels as K
from dynamics import stencil as S
from tissue import Tissue

ACTS = ("hard_sigmoid", "sigmoid", "tanh", "linear")


# ------------------------------------------------------------------ tissues
def _edit(t, rng):
    """Kill a ball, add far and near synapses, remove some stencil synapses, zero some weights."""
    n = t.n
    t.kill(t.lattice.ball(tuple(np.array(t.lattice.shape) // 2), 1.0))
    alive = np.flatnonzero(t.alive)
    for _ in range(10):
        i, j = rng.choice(alive, 2, replace=False)
        t.syn.add(i, j, rng.normal())
    i, k = np.nonzero(t.syn.nbr >= 0)
    for e in rng.choice(len(i), min(10, len(i)), replace=False):
        j = int(t.syn.nbr[i[e], k[e]])
        if j >= 0:
            t.syn.remove(int(i[e]), j)
    for i in rng.choice(n, 5, replace=False):  # a removed stencil synapse comes back
        for j in (i + 1, i - 1):
            if 0 <= j < n and t.alive[i] and t.alive[j]:
                t.syn.add(int(i), int(j), 0.25)
    i, k = np.nonzero(t.syn.nbr >= 0)
    pick = rng.choice(len(i), min(6, len(i)), replace=False)
    for e in pick:  # explicit zero weights are still synapses
        a, b = int(i[e]), int(t.syn.nbr[i[e], k[e]])
        t.syn.w[a, k[e]] = 0
        t.syn.w[b, t.syn.rev[a, k[e]]] = 0
    t.syn.check()
    return t


CASES = {
    "cube26": lambda: Tissue.cube((6, 7, 5), stencil=26, seed=1),
    "cube18": lambda: Tissue.cube((5, 4, 6), stencil=18, seed=2),
    "cube6": lambda: Tissue.cube((7, 3, 4), stencil=6, seed=3),
    "radius2": lambda: Tissue.cube((6, 5, 6), radius=2.0, seed=4),
    "radius3": lambda: Tissue.cube((7, 7, 7), radius=3.0, seed=5),
    "small_world": lambda: Tissue.cube((6, 6, 6), stencil=26, small_world=0.3, seed=6),
    "edited": lambda: _edit(Tissue.cube((6, 5, 7), stencil=26, small_world=0.05, seed=7),
                            np.random.default_rng(0)),
    "edited6": lambda: _edit(Tissue.cube((5, 6, 4), stencil=6, seed=8), np.random.default_rng(1)),
    "thin_x": lambda: Tissue.cube((1, 5, 7), stencil=26, seed=9),
    "thin_z": lambda: Tissue.cube((4, 6, 1), stencil=26, seed=10),
    "line": lambda: Tissue.cube((1, 1, 9), stencil=26, seed=11),
    "line_x": lambda: Tissue.cube((9, 1, 1), stencil=18, seed=12),
    "z2": lambda: Tissue.cube((3, 4, 2), radius=2.0, seed=13),  # flat distances of offsets collide
    "2x3x5": lambda: Tissue.cube((2, 3, 5), stencil=26, seed=14),
    "one": lambda: Tissue.cube((1, 1, 1), stencil=26, seed=15),
    "float64": lambda: Tissue.cube((5, 5, 5), stencil=26, small_world=0.1, dtype="float64", seed=16),
}


def _expected_split(t, offs):
    """Independent of the builder: undirected edges (i < j) whose displacement
    ``coords(j) - coords(i)`` is one of ``offs`` (index k), else -1."""
    i, j, w = t.syn.edges()
    disp = t.lattice.coords(j) - t.lattice.coords(i)
    k = np.full(len(i), -1)
    for q, o in enumerate(offs):
        k[np.all(disp == o, axis=1)] = q
    return i, j, w, k


def _check_view(t, v):
    n = t.n
    i, j, w, k = _expected_split(t, v.offs)
    dia = k >= 0
    # the DIA part: exactly the stencil-regular synapses, with their weights, zero elsewhere
    expect = np.zeros((len(v.offs), n), dtype=t.dtype)
    expect[k[dia], i[dia]] = w[dia]
    np.testing.assert_array_equal(v.wT, expect)
    assert v.n_dia == int(dia.sum())
    np.testing.assert_array_equal(v.d, v.offs @ np.array([t.lattice.shape[1] * t.lattice.shape[2],
                                                          t.lattice.shape[2], 1]))
    # the residual: every other synapse, both directions, once, with its weight
    rows = np.repeat(np.arange(n), np.diff(v.rptr))
    got = sorted(zip(rows.tolist(), v.ridx.tolist(), v.rw.tolist()))
    ri, rj, rwv = i[~dia], j[~dia], w[~dia]
    want = sorted(zip(np.r_[ri, rj].tolist(), np.r_[rj, ri].tolist(), np.r_[rwv, rwv].tolist()))
    assert got == want
    assert v.n_residual == int((~dia).sum())
    assert v.n_dia + v.n_residual == t.syn.n_synapses
    # and the matrix they represent is the table's, value for value
    a, b = t.to_scipy(), v.to_scipy()
    a.eliminate_zeros()
    b.eliminate_zeros()
    assert a.shape == b.shape and (a != b).nnz == 0


@pytest.mark.parametrize("name", list(CASES))
def test_view_holds_every_synapse_once(name):
    t = CASES[name]()
    v = S.build_view(t.syn, t.lattice.shape)
    _check_view(t, v)
    # any other choice of offsets is exact too: none (all residual), and the full half 26-stencil
    _check_view(t, S.build_view(t.syn, t.lattice.shape, np.zeros((0, 3), np.int64)))
    half = S._half_box(1)
    nx, ny, nz = t.lattice.shape
    half = half[np.argsort(half @ np.array([ny * nz, nz, 1]), kind="stable")]
    ok = np.all(np.abs(half) < np.array(t.lattice.shape), axis=1)  # realisable offsets only
    _check_view(t, S.build_view(t.syn, t.lattice.shape, half[ok]))


@pytest.mark.parametrize("stencil,nk", [(6, 3), (18, 9), (26, 13)])
def test_plan_picks_the_stencil(stencil, nk):
    t = Tissue.cube((9, 8, 7), stencil=stencil, seed=0)
    offs, cover = S.plan(t.syn, t.lattice.shape)
    want = {tuple(o) for o in S._half_box(1) if 0 < (np.array(o) ** 2).sum() <= {6: 1, 18: 2, 26: 3}[stencil]}
    assert {tuple(o) for o in offs} == want and len(offs) == nk
    assert cover == 1.0
    rewired = Tissue.cube((9, 8, 7), stencil=stencil, small_world=1.0, seed=0)
    assert S.plan(rewired.syn, rewired.lattice.shape)[1] < 0.2


def test_bad_offsets_are_refused():
    t = Tissue.cube(4, stencil=6, seed=0)
    with pytest.raises(ValueError, match="positive"):
        S.build_view(t.syn, t.lattice.shape, np.array([[0, 0, -1]]))
    with pytest.raises(ValueError, match="rows"):
        S.build_view(t.syn, (3, 3, 3))


# ---------------------------------------------------------------- one step
_M = [np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)]


def _splitmix(x):
    z = x + _M[0]
    z = (z ^ (z >> np.uint64(30))) * _M[1]
    z = (z ^ (z >> np.uint64(27))) * _M[2]
    return z ^ (z >> np.uint64(31))


def normal_np(key, n, nb):
    """``hash_normal(key, i, b)`` for all (i, b), in NumPy (an independent SplitMix64 + Box-Muller)."""
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64)[:, None]
        b = np.arange(nb, dtype=np.uint64)[None, :]
        h = _splitmix(_splitmix(np.uint64(key) ^ i) ^ b)
        h2 = _splitmix(h)
    u1 = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    u2 = (h2 >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def rho_np(x, act):
    return {"hard_sigmoid": lambda: np.clip(x, 0, 1), "sigmoid": lambda: 1 / (1 + np.exp(-x)),
            "tanh": lambda: np.tanh(x), "linear": lambda: x}[act]()


def step_np(t, s, mask, dt, noise, key, ypos, Y, beta):
    """One step in float64 from the CSR matrix: ``(s_out, v, vpart, spart)``."""
    act = t.activation
    s = s.astype(np.float64)
    r = rho_np(s, act)
    h = t.to_scipy().astype(np.float64) @ r + t.bias.astype(np.float64)[:, None]
    out = ypos >= 0
    h[out] -= beta * (r[out] - Y[ypos[out]].astype(np.float64))
    if act == "hard_sigmoid":
        y = np.clip(s + dt * (h - s), 0, 1)
        v = (y - s) / dt
        f = h - s
    else:
        gain = {"linear": 1.0, "sigmoid": r * (1 - r), "tanh": 1 - r * r}[act]
        v = gain * h - s
        y = s + dt * v
        f = v
    if noise > 0:
        y = s + dt * f + noise * normal_np(key, *s.shape)
        if act == "hard_sigmoid":
            y = np.clip(y, 0, 1)
    s_out = s + mask[None, :] * (y - s)
    frozen = t.clamped
    s_out[frozen] = s[frozen]
    v[frozen] = 0
    nch = K.n_chunks(t.n)
    pad = nch * K.CHUNK - t.n
    vpart = np.pad(np.abs(v), ((0, pad), (0, 0))).reshape(nch, K.CHUNK, -1).max(1)
    spart = np.pad(np.abs(s_out), ((0, pad), (0, 0))).reshape(nch, K.CHUNK, -1).max(1)
    return s_out, v, vpart, spart


def _tissue_for_step(act, dtype, shape=(11, 12, 10)):
    rng = np.random.default_rng(5)
    t = Tissue.cube(shape, stencil=26, small_world=0.05, init="normal", weight_scale=0.3,
                    activation=act, dtype=dtype, seed=5)
    t.bias[:] = rng.normal(0, 0.3, t.n)
    t.set_input(t.lattice.face("x-"))
    t.set_output(t.lattice.face("x+"))
    t.kill(t.lattice.ball((5, 6, 5), 1.5))
    return t


def _run_kernels(t, s, mask, dt, noise, key, write_v, ypos, Y, beta):
    """The stencil kernel and the table kernel on the same input: two dicts of outputs."""
    act = K.ACT_CODES[t.activation]
    sep = act in (K.SIGMOID, K.TANH)
    r = np.ascontiguousarray(rho_np(s, t.activation).astype(s.dtype)) if sep else s
    view = S.build_view(t.syn, t.lattice.shape)
    outs = {}
    for name, step in (("stencil", S.Stepper(t.syn, view)), ("table", S.Stepper(t.syn))):
        s_out = np.full_like(s, np.nan)
        r_out = np.full_like(s, np.nan) if sep else s_out
        v_out = np.full_like(s, np.nan) if write_v else np.zeros((1, 1), s.dtype)
        nch = K.n_chunks(t.n)
        vpart = np.full((nch, s.shape[1]), np.nan)
        spart = np.full((nch, s.shape[1]), np.nan)
        step(t.bias, t.clamped.astype(np.uint8), s, r, s_out, r_out, v_out, mask, s.dtype.type(dt), noise,
             np.uint64(key), act, write_v, vpart, spart, ypos, Y, beta)
        outs[name] = dict(s=s_out, r=r_out, v=v_out, vpart=vpart, spart=spart)
    return outs


@pytest.mark.parametrize("nb", [1, 3, 16, 70])
@pytest.mark.parametrize("act", ACTS)
def test_one_step_matches_float64_reference(act, nb):
    dtype = "float64" if (act == "tanh" and nb == 3) else "float32"
    t = _tissue_for_step(act, dtype)
    rng = np.random.default_rng(nb)
    lo = 0.0 if act == "hard_sigmoid" else -1.5
    s = np.ascontiguousarray(rng.uniform(lo, 1.5 if act != "hard_sigmoid" else 1.0, (t.n, nb)).astype(dtype))
    s[~t.alive] = 0
    mask = np.ones(nb, dtype)
    mask[::3] = 0 if nb > 1 else 1
    n_out = len(t.region("output"))
    ypos = np.full(t.n, -1, np.int32)
    ypos[t.region("output")] = np.arange(n_out, dtype=np.int32)
    Y = rng.uniform(0, 1, (n_out, nb)).astype(dtype)
    atol = 1e-12 if dtype == "float64" else 2e-6
    for noise, write_v, beta in ((0.0, False, 0.0), (0.0, True, 0.7), (0.3, False, -0.4), (0.2, True, 0.0)):
        key = int(K.step_key(11, 3))
        outs = _run_kernels(t, s, mask, 0.3, noise, key, write_v, ypos, Y, beta)
        ref_s, ref_v, ref_vp, ref_sp = step_np(t, s, mask, 0.3, noise, key, ypos, Y, beta)
        o = outs["stencil"]
        np.testing.assert_allclose(o["s"], ref_s, atol=atol, rtol=0)
        np.testing.assert_allclose(o["vpart"], ref_vp, atol=atol / 0.3 * 4, rtol=0)
        np.testing.assert_allclose(o["spart"], ref_sp, atol=atol, rtol=0)
        if write_v:
            np.testing.assert_allclose(o["v"], ref_v, atol=atol / 0.3 * 4, rtol=0)
        if act in ("sigmoid", "tanh"):
            np.testing.assert_allclose(o["r"], rho_np(o["s"].astype(np.float64), act), atol=atol, rtol=0)
        # frozen neurons and frozen trials are copied exactly
        frozen = t.clamped
        np.testing.assert_array_equal(o["s"][frozen], s[frozen])
        np.testing.assert_array_equal(o["s"][:, mask == 0], s[:, mask == 0])
        # and the table kernel agrees to float rounding
        for key_ in ("s", "vpart", "spart"):
            np.testing.assert_allclose(o[key_], outs["table"][key_], atol=atol * 4 / 0.3, rtol=0)


def test_non_finite_states_propagate():
    """A NaN or inf neighbour makes the chunk's speed non-finite (as with the table)."""
    t = _tissue_for_step("linear", "float32", shape=(8, 8, 8))
    for nb in (1, 4):
        s = np.zeros((t.n, nb), np.float32)
        i = int(np.flatnonzero(~t.clamped)[200])
        s[i, 0] = np.nan
        outs = _run_kernels(t, s, np.ones(nb, np.float32), 0.1, 0.0, 0, False, np.full(t.n, -1, np.int32),
                            np.zeros((1, nb), np.float32), 0.0)
        for name in ("stencil", "table"):
            assert not np.isfinite(outs[name]["vpart"][:, 0]).all()
            if nb > 1:
                assert np.isfinite(outs[name]["vpart"][:, 1:]).all()


# ------------------------------------------------------------ determinism
SCRIPT = r"""
import numba
import numpy as np
from dynamics import Langevin, stencil as S, kernels as K
from tissue import Tissue

assert numba.get_num_threads() == {threads}
t = Tissue.cube((16, 16, 12), stencil=26, small_world=0.05, activation="{act}", dtype="float32", seed=3)
t.bias[:] = np.random.default_rng(0).normal(0, 0.2, t.n)
t.set_input(t.lattice.face("z-"))
rng = np.random.default_rng(1)
view = S.build_view(t.syn, t.lattice.shape)
np.save("wT.npy", view.wT)
np.save("ridx.npy", view.ridx)
for nb in (1, 3, 16):
    init = rng.uniform(0, 1, (nb, t.n))
    with S.use_kernel("stencil"):
        res = Langevin(dt=0.3, temperature=0.05, seed=7).settle(t, init=init, steps=25)
    np.save(f"state_{{nb}}.npy", res.state)
    np.save(f"speed_{{nb}}.npy", res.speed)
print("ok", K.n_chunks(t.n))
"""


@pytest.mark.parametrize("act", ["hard_sigmoid", "tanh"])
def test_bit_identical_with_1_and_2_threads(tmp_path, python_subprocess, act):
    got = {}
    for threads in (1, 2):
        d = tmp_path / f"t{threads}"
        d.mkdir()
        out = python_subprocess(SCRIPT.format(threads=threads, act=act), cwd=d,
                                env_extra={"NUMBA_NUM_THREADS": threads})
        assert out.split() == ["ok", "3"]  # 3072 neurons: three work chunks
        got[threads] = {p.stem: np.load(p) for p in d.glob("*.npy")}
    assert len(got[1]) == 8 and got[1].keys() == got[2].keys()
    for k in got[1]:
        assert np.array_equal(got[1][k], got[2][k]), f"{k} differs between 1 and 2 threads"
    assert not np.array_equal(got[1]["state_16"][0], got[1]["state_16"][1])


# ----------------------------------------------------------------- engine
def _contracting(act, dtype, shape=(9, 10, 11), nb=4, seed=0):
    """A tissue whose fixed point is unique (row sums of |W| <= 0.9), inputs and a nudge."""
    t = Tissue.cube(shape, stencil=26, small_world=0.05, init="normal", activation=act, dtype=dtype, seed=seed)
    rows = np.abs(t.syn.w).sum(1).max()
    t.syn.w *= 0.9 / rows
    rng = np.random.default_rng(seed)
    t.bias[:] = rng.uniform(-0.5, 1.0, t.n)
    t.set_input(t.lattice.face("y-"))
    t.set_output(t.lattice.face("y+"))
    inputs = rng.uniform(0, 1, (nb, len(t.region("input"))))
    target = rng.uniform(0, 1, (nb, len(t.region("output"))))
    init = rng.uniform(0, 1, (nb, t.n))
    return t, inputs, target, init


@pytest.mark.parametrize("act,dtype,nb", [("hard_sigmoid", "float32", 1), ("hard_sigmoid", "float32", 16),
                                          ("sigmoid", "float64", 3), ("linear", "float32", 5)])
def test_settle_same_state_with_either_kernel(act, dtype, nb):
    t, inputs, target, init = _contracting(act, dtype, nb=nb)
    eng = Langevin(dt=0.5, tol=1e-5, max_steps=5000)
    res = {}
    for kind in ("table", "stencil"):
        with S.use_kernel(kind):
            res[kind] = eng.settle(t, inputs=inputs, init=init, target=target, beta=0.3)
    a, b = res["table"], res["stencil"]
    assert a.converged.all() and b.converged.all()
    # both are within tol of the unique fixed point: |s - s*| <= tol / (1 - 0.9) each
    np.testing.assert_allclose(a.state, b.state, atol=2 * 1e-5 / 0.1, rtol=0)
    np.testing.assert_allclose(a.energy, b.energy, rtol=1e-4, atol=1e-4)
    assert np.all(np.abs(a.steps - b.steps) <= 0.1 * a.steps + 3)


def test_no_stale_view_after_plasticity():
    """The view is rebuilt at every settle: weights edited in place between settles count."""
    t, inputs, _, init = _contracting("hard_sigmoid", "float32", nb=2)
    eng = Langevin(dt=0.5, tol=1e-6, max_steps=50)
    with S.use_kernel("stencil"):
        first = eng.settle(t, inputs=inputs, init=init, steps=30)
        t.syn.w *= -1.0  # learning rewrites the weights in place
        t.bias[:] *= 0.5
        second = eng.settle(t, inputs=inputs, init=init, steps=30)
    with S.use_kernel("table"):
        ref = eng.settle(t, inputs=inputs, init=init, steps=30)
    np.testing.assert_allclose(second.state, ref.state, atol=1e-5, rtol=0)
    assert np.abs(first.state - second.state).max() > 0.1


def test_choice_rule():
    t = Tissue.cube((12, 12, 12), stencil=26, seed=0)
    assert S.choose(1, 1000, 1.0) == "stencil" and S.choose(S.MAX_TRIALS, 1000, 1.0) == "stencil"
    assert S.choose(S.MAX_TRIALS + 1, 1000, 1.0) == "table"
    assert S.choose(1, S.MIN_STEPS - 1, 1.0) == "table"
    assert S.choose(1, 1000, S.MIN_COVER / 2) == "table"
    assert S.stepper(t, 1, 1000).kind == "stencil"
    assert S.stepper(t, 1, 1).kind == "table"
    rewired = Tissue.cube((12, 12, 12), stencil=26, small_world=0.9, seed=0)
    assert S.stepper(rewired, 1, 1000).kind == "table"
    with S.use_kernel("table"):
        assert S.stepper(t, 1, 1000).kind == "table"
    with S.use_kernel("stencil"):
        st = S.stepper(rewired, 1, 1)
        assert st.kind == "stencil" and st.build_seconds > 0
    with pytest.raises(ValueError):
        with S.use_kernel("fast"):
            pass
