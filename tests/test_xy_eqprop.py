"""Equilibrium Propagation on the XY energy (plasticity.xy_eqprop).

Truths used: central finite differences of the re-settled loss (the exact
implicit-differentiation gradient must match them), the analytic gradient
of the XY energy (a settled state has zero force and a positive-definite
Hessian), pure RK4 gradient flow (the Newton finish must find the same
minimum), and the EqProp theorem (the symmetric-nudging update tends to the
exact gradient as beta -> 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from plasticity.xy_eqprop import (
    XYEqProp,
    XYSettler,
    exact_xy_gradient,
    xy_cost,
    xy_hessian,
)
from tissue import Tissue


def tiny(seed=0, weight_scale=0.6):
    t = Tissue.cube((3, 3, 3), stencil=26, dtype="float64", seed=seed, weight_scale=weight_scale)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=3, layout="interleaved")
    return t


def problem(seed=0, batch=4):
    t = tiny(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-np.pi / 2, np.pi / 2, (batch, len(t.region("input"))))
    y = np.arange(batch) % 3
    field = 0.3 * np.exp(1j * rng.uniform(-np.pi, np.pi, t.n))
    field[t.clamped] = 0
    tr = XYEqProp(beta=0.01, field=field)
    return t, x, y, tr


TIGHT = XYSettler(dt=0.1, tol=1e-11, max_steps=200000, check_every=50)


def test_settled_state_is_a_minimum_and_newton_finds_the_flows_minimum():
    t, x, y, tr = problem(batch=2)
    tau = tr.targets(t, y)
    res = TIGHT.settle(t, inputs=x, target=tau, beta=0.2, field=tr.field)
    assert res.converged.all()
    flow = XYSettler(dt=0.2, tol=1e-9, max_steps=200000, check_every=100, newton=False)
    ref = flow.settle(t, inputs=x, target=tau, beta=0.2, field=tr.field)
    assert ref.converged.all()
    np.testing.assert_allclose(res.state, ref.state, atol=1e-7)
    assert res.steps.max() < ref.steps.min()          # the Newton finish saves steps
    # independent check of the force: -dF/dtheta from the explicit formula is 0 on free neurons
    th = res.state
    w = t.to_scipy().toarray()
    eff = np.broadcast_to(tr.field, th.shape).copy()
    eff[:, t.region("output")] += 0.2 * tau
    force = (w * np.sin(th[:, None, :] - th[:, :, None])).sum(-1) - (np.conj(eff) * np.exp(1j * th)).imag
    free = ~t.clamped
    assert np.abs(force[:, free]).max() < 1e-9
    h, _ = xy_hessian(t, th[0], eff[0])
    assert np.linalg.eigvalsh(h.toarray()).min() > 0
    np.testing.assert_array_equal(th[:, t.region("input")], x)


def test_exact_gradient_matches_finite_differences_of_the_resettled_loss():
    t, x, y, tr = problem(seed=1, batch=2)
    tau = tr.targets(t, y)
    free = TIGHT.settle(t, inputs=x, target=tau, field=tr.field)
    gw, gb = exact_xy_gradient(t, free.state, tau, tr.field)

    def loss():
        r = TIGHT.settle(t, inputs=x, init=free.state, target=tau, field=tr.field)
        return xy_cost(r.state, t, tau).mean()

    eps = 1e-5
    syn = t.syn
    for i, k in [(13, 0), (13, 5), (22, 3), (4, 2)]:          # hidden-hidden, hidden-output, input-hidden
        j, kr = syn.nbr[i, k], syn.rev[i, k]
        w0 = syn.w[i, k]
        vals = []
        for s in (1, -1):
            syn.w[i, k] = syn.w[j, kr] = w0 + s * eps
            vals.append(loss())
        syn.w[i, k] = syn.w[j, kr] = w0
        fd = (vals[0] - vals[1]) / (2 * eps)
        assert gw[i, k] == pytest.approx(fd, rel=1e-4, abs=1e-8)
        assert gw[j, kr] == gw[i, k]
    for i in (13, 22):
        for part in (1.0, 1j):
            b0 = tr.field[i]
            vals = []
            for s in (1, -1):
                tr.field[i] = b0 + s * eps * part
                vals.append(loss())
            tr.field[i] = b0
            fd = (vals[0] - vals[1]) / (2 * eps)
            exact = gb[i].real if part == 1.0 else gb[i].imag
            assert exact == pytest.approx(fd, rel=1e-4, abs=1e-8)


def _cosine(t, tr, free, plus, minus, gw, gb):
    g, gbe = tr.gradient(t, free, plus, minus)
    occ = t.syn.nbr >= 0
    fm = ~t.clamped
    est = np.concatenate([g[occ], gbe[fm].real, gbe[fm].imag])
    ex = -np.concatenate([gw[occ], gb[fm].real, gb[fm].imag])
    return est @ ex / (np.linalg.norm(est) * np.linalg.norm(ex)), g


def test_symmetric_eqprop_update_aligns_with_the_exact_gradient():
    t, x, y, tr = problem(seed=2, batch=4)
    tr._prepare(t)
    tau = tr.targets(t, y)
    free = TIGHT.settle(t, inputs=x, target=tau, field=tr.field)
    gw, gb = exact_xy_gradient(t, free.state, tau, tr.field)
    cos = {}
    for beta in (0.01, 0.3):
        tr.beta = beta
        plus = TIGHT.settle(t, inputs=x, init=free.state, target=tau, beta=beta, field=tr.field)
        minus = TIGHT.settle(t, inputs=x, init=free.state, target=tau, beta=-beta, field=tr.field)
        cos[beta], g = _cosine(t, tr, free, plus, minus, gw, gb)
    assert cos[0.01] >= 0.99
    assert cos[0.01] > cos[0.3]           # the estimate improves as beta -> 0
    # the update is exactly symmetric on the table
    occ = t.syn.nbr >= 0
    j = np.where(occ, t.syn.nbr, 0)
    np.testing.assert_array_equal(g[j, np.where(occ, t.syn.rev, 0)][occ], g[occ])


def test_train_step_lowers_the_loss_and_keeps_weights_symmetric():
    t, x, y, tr = problem(seed=3, batch=6)
    tr.beta, tr.lr, tr.optimizer = 0.05, 0.05, "sgd"
    eng = XYSettler(dt=0.1, tol=1e-8, max_steps=20000)
    before = tr.evaluate(t, eng, x, y)["loss"]
    for _ in range(5):
        tr.train_step(t, eng, x, y)
    after = tr.evaluate(t, eng, x, y)["loss"]
    assert after < before
    t.syn.check()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="beta"):
        XYEqProp(beta=0)
    with pytest.raises(ValueError, match="optimizer"):
        XYEqProp(optimizer="rmsprop")
    with pytest.raises(ValueError, match="tol"):
        XYSettler(tol=-1)
    t = tiny()
    with pytest.raises(ValueError, match="inputs must have shape"):
        XYSettler().settle(t, inputs=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="needs a target"):
        XYSettler().settle(t, inputs=np.zeros((1, 9)), beta=0.1)


def test_xy_run_writes_a_readable_store(tmp_path):
    import xarray as xr
    import zarr

    from studies.config import load_config
    from studies.run import run

    text = """
seed = 0
[tissue]
shape = [8, 8, 2]
init = "uniform"
weight_scale = 0.3
[xy_learning]
task = "patterns"
classes = 2
n_train = 40
n_test = 20
epochs = 1
lr = 0.05
batch_size = 20
max_steps = 300
alignment_samples = 2
"""
    out = tmp_path / "XY.zarr"
    s = run(load_config(text), out, progress=False)
    assert s.status == "complete"
    ds = xr.open_zarr(out, consolidated=False)
    assert ds.sizes["epoch"] == 1 and ds.sizes["sample"] == 20
    assert 0 <= float(ds.test_accuracy.values[-1]) <= 1
    assert float(np.mean(ds.test_pred.values == ds.test_label.values)) == pytest.approx(s.figures["test_accuracy"])
    assert ds.alignment.dims == ("beta_check",) and np.isfinite(ds.alignment.values).all()
    attrs = zarr.open_group(out, mode="r").attrs
    assert attrs["status"] == "complete" and attrs["epochs_done"] == 1
    assert (tmp_path / "XY_learning.png").stat().st_size > 1000
    from tissue import load_tissue

    load_tissue(out).syn.check()
