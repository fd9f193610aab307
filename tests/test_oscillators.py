"""Limit-cycle tissue: Stuart-Landau and phase oscillators, their integrators and measures.

Every check is against an independent truth: closed-form solutions (one
Stuart-Landau oscillator, two coupled phase oscillators, the Kuramoto
transition with Lorentzian frequencies), dense NumPy drifts, finite
differences of the XY energy, statistical laws of the noise (diffusion,
Ornstein-Uhlenbeck variance), and the orders of convergence of the schemes.
"""

from __future__ import annotations

import numpy as np
import pytest

from dynamics import osc_kernels as OK
from dynamics import phase_measures as pm
from dynamics.langevin import SimulationDiverged
from dynamics.oscillators import (
    Drive,
    Integrator,
    Kuramoto,
    Network,
    StuartLandau,
    drift,
    xy_energy,
)
from tissue import Lattice, Tissue
from tissue.wiring import Synapses


def isolated(n):
    """``n`` uncoupled neurons."""
    return Network.from_synapses(Synapses.from_edges(n, [], [], []))


def lagged_network(shape=(4, 4, 4), stencil=18, seed=0, kill=True, inputs=True):
    """A tissue network with Hermitian complex weights, a clamped face and a dead ball."""
    t = Tissue.cube(shape, stencil=stencil, dtype="float64", seed=seed)
    if inputs:
        t.set_input(t.lattice.face("x-"))
    if kill:
        t.kill(t.lattice.ball((2, 2, 2), 1.0))
    rng = np.random.default_rng(seed + 1)
    a = rng.uniform(-np.pi, np.pi, (t.n, t.n))
    a = np.triu(a, 1)
    a = a - a.T  # antisymmetric lags: a Hermitian coupling
    occ = t.syn.nbr >= 0
    lag = np.where(occ, a[np.arange(t.n)[:, None], np.where(occ, t.syn.nbr, 0)], 0.0)
    return t, Network.from_tissue(t, weights=t.syn.w * np.exp(1j * lag))


# ----------------------------------------------------------- analytic checks
def test_one_stuart_landau_oscillator_follows_the_closed_form():
    # r(t)^2 = mu / (1 + (mu / r0^2 - 1) exp(-2 mu t)), theta = theta0 + omega t, one trial per (mu, omega)
    mu = np.array([1.0, 0.25, 2.0])
    omega = np.array([2.0, -1.0, 5.0])
    z0 = np.array([0.1, 1.5 * np.exp(0.3j), 0.02j])
    model = StuartLandau(mu=mu[:, None], omega=omega[:, None])
    res = Integrator(dt=0.0025).run(model, isolated(1), 16000, init=z0[:, None], record_every=40)
    t = res.time[:, None]
    r0 = np.abs(z0)
    r_exact = np.sqrt(mu / (1 + (mu / r0**2 - 1) * np.exp(-2 * mu * t)))
    th_exact = np.angle(z0) + omega * t
    assert np.abs(res.amplitude[..., 0] - r_exact).max() < 1e-8
    assert np.abs(pm.wrap(res.phase[..., 0] - th_exact)).max() < 1e-7  # 200 rad turned at omega = 5
    # the limit cycle: |z| = sqrt(mu) at angular frequency omega (errors < 1e-3 asked; far below)
    assert np.abs(np.abs(res.state[:, 0]) - np.sqrt(mu)).max() < 1e-9
    late = res.time > 20
    f = pm.mean_frequency(res.phase[late, :, 0], res.time[late])
    assert np.abs(f - omega).max() < 1e-8
    inst = pm.instantaneous_frequency(res.phase[late, :, 0], res.time[1] - res.time[0])
    assert np.abs(inst - omega).max() < 1e-6


def test_two_phase_oscillators_lock_below_2K_at_arcsin_and_drift_above():
    # phi = theta_2 - theta_1 obeys dphi/dt = dw - 2 K sin(phi): locked at arcsin(dw / 2K) when
    # |dw| < 2K, else drifting with mean frequency sqrt(dw^2 - 4 K^2)
    dw = 1.0
    x = np.array([0.2, 0.6, 0.95, -0.8, 1.05, 1.5, 3.0])  # dw / 2K per trial (the sign of K flips for -0.8)
    coupling = dw / (2 * x)
    net = Network.from_synapses(Synapses.from_edges(2, [0], [1], [1.0], dtype=np.float64))
    model = Kuramoto(omega=np.array([-dw / 2, dw / 2]), coupling=coupling)
    res = Integrator(dt=0.02).run(model, net, 15000, init=np.zeros(2), n_trials=len(x), record_every=5)
    phi = res.state[:, 1] - res.state[:, 0]
    locked = np.abs(x) < 1
    # locked trials: the exact phase difference (mod 2 pi; K < 0 locks at pi - arcsin)
    target = np.where(coupling > 0, np.arcsin(np.clip(x, -1, 1)), np.pi - np.arcsin(np.clip(x, -1, 1)))
    assert np.abs(pm.wrap(phi - target)[locked]).max() < 1e-7
    # drifting trials: the period of the phase slips, from the crossings of 2 pi multiples
    p = pm.unwrap(res.phase[:, :, 1] - res.phase[:, :, 0], axis=0)
    for b in np.flatnonzero(~locked):
        nu = np.sqrt(dw**2 - (2 * coupling[b]) ** 2)
        q = p[:, b] / (2 * np.pi)
        n0, n1 = int(np.ceil(q[len(q) // 4])), int(np.floor(q[-1]))
        assert n1 - n0 >= 2
        cross = [np.interp(n, q, res.time) for n in (n0, n1)]  # q increases monotonically here
        period = (cross[1] - cross[0]) / (n1 - n0)
        assert abs(period - 2 * np.pi / nu) / (2 * np.pi / nu) < 1e-5, (x[b], period, 2 * np.pi / nu)
    # and the locked trials do not slip at all in the second half
    assert np.abs(p[len(p) // 2:, locked] - p[-1, locked]).max() < 1e-3


def test_kuramoto_lorentzian_transition_on_a_complete_graph():
    # Lorentzian natural frequencies of width gamma (deterministic quantiles): r = 0 below
    # K_c = 2 gamma, r = sqrt(1 - K_c / K) above (Kuramoto 1975), here with a finite N = 500
    n, gamma = 500, 0.5
    kc = 2 * gamma
    k = np.arange(1, n + 1)
    omega = gamma * np.tan(np.pi * (k - 0.5) / n - np.pi / 2)
    ratios = np.array([0.5, 0.8, 1.5, 2.0, 4.0])
    model = Kuramoto(omega=omega, coupling=ratios * kc)
    res = Integrator(dt=0.1).run(model, Network.complete(n), 800, init=np.zeros(n), n_trials=len(ratios),
                                 record_every=5)
    late = res.time >= 30  # the Ott-Antonsen relaxation rate is K - K_c >= 0.5 above, Landau damping below
    r = np.abs(pm.order_parameter(res.phase[late])).mean(axis=0)
    theory = np.sqrt(np.clip(1 - 1 / ratios, 0, None))
    print("K/K_c", ratios, "r", np.round(r, 4), "theory", np.round(theory, 4))
    below = ratios < 1
    assert np.all(r[below] < 0.05)  # finite-size level ~ N^-1/2 = 0.045
    assert np.all(np.abs(r[~below] - theory[~below]) < 0.01)


# ---------------------------------------------------------- convergence orders
def _error(res, ref):
    return np.abs(res.state - ref.state).max()


def _order(dts, errs):
    return np.polyfit(np.log(dts), np.log(errs), 1)[0]


def test_rk4_converges_with_order_4_and_heun_with_order_2_without_noise():
    t, net = lagged_network()
    rng = np.random.default_rng(3)
    omega = rng.normal(1.0, 0.3, t.n)
    z0 = 0.8 * np.exp(1j * rng.uniform(0, 2 * np.pi, (2, t.n)))
    drive = Drive(amplitude=0.7, frequency=np.array([1.3, 0.4]), phase=rng.uniform(0, 6, t.n),
                  region=t.lattice.face("y+"))
    sl = StuartLandau(mu=1.0, omega=omega, coupling=np.array([0.8, -1.2]), drive=drive)
    ku = Kuramoto(omega=omega, coupling=np.array([0.8, -1.2]), drive=drive)
    T = 2.0
    orders = {}
    for name, model, init in (("sl", sl, z0), ("ku", ku, np.angle(z0))):
        ref = Integrator(dt=T / 2560, method="rk4").run(model, net, 2560, init=init)
        for method, dts in (("rk4", [0.2, 0.1, 0.05, 0.025]), ("heun", [0.05, 0.025, 0.0125, 0.00625])):
            errs = [_error(Integrator(dt=d, method=method).run(model, net, round(T / d), init=init), ref)
                    for d in dts]
            orders[name, method] = _order(dts, errs)
            print(name, method, "errors", errs, "order", orders[name, method],
                  "pairwise", np.log2(np.array(errs[:-1]) / errs[1:]))
    for name in ("sl", "ku"):
        assert abs(orders[name, "rk4"] - 4) < 0.3
        assert abs(orders[name, "heun"] - 2) < 0.2


def test_heun_strong_order_1_with_additive_noise_on_one_brownian_path():
    # the Brownian path lives on the grid h = 2^-11: a step of dt sums dt / h fine increments
    t = Tissue.cube((3, 3, 3), stencil=26, dtype="float64", seed=4)
    net = Network.from_tissue(t)
    rng = np.random.default_rng(5)
    n, b = t.n, 24
    z0 = np.exp(1j * rng.uniform(0, 2 * np.pi, (b, t.n)))
    model = StuartLandau(mu=1.0, omega=rng.normal(1.0, 0.5, n), coupling=0.5,
                         drive=Drive(0.5, 0.9, region=np.arange(5)))
    T, h, sigma = 1.0, 2.0**-11, 0.5
    ref = Integrator(dt=h, method="heun", noise=sigma, seed=9).run(model, net, round(T / h), init=z0)
    out = {}
    for method in ("heun", "euler"):
        dts = [2.0**-4, 2.0**-5, 2.0**-6, 2.0**-7]
        errs = []
        for d in dts:
            m = round(d / h)
            res = Integrator(dt=d, method=method, noise=sigma, seed=9, substeps=m).run(model, net, round(T / d),
                                                                                        init=z0)
            errs.append(np.sqrt(np.mean(np.abs(res.state - ref.state) ** 2)))  # strong (RMS) error
        out[method] = (_order(dts, errs), errs)
        print(method, "strong errors", errs, "order", out[method][0])
    assert 0.8 < out["heun"][0] < 1.3
    assert 0.8 < out["euler"][0] < 1.3
    assert np.all(np.array(out["heun"][1]) < np.array(out["euler"][1]))  # the same order, a smaller constant
    # another seed is another path: the error is then of the size of the noise itself
    other = Integrator(dt=h, method="heun", noise=sigma, seed=10).run(model, net, round(T / h), init=z0)
    assert np.sqrt(np.mean(np.abs(other.state - ref.state) ** 2)) > 10 * out["heun"][1][-1]


def test_brownian_increments_are_sums_of_the_fine_increments():
    out1 = np.empty((2, 7, 3))
    out4 = np.empty((2, 7, 3))
    acc = np.zeros((2, 7, 3))
    scale = np.sqrt(0.01)
    for k in range(4):
        OK.brownian(5, np.uint64(8 + k), 1, scale, out1)
        acc += out1
    OK.brownian(5, np.uint64(8), 4, scale, out4)
    assert np.allclose(out4, acc, rtol=0, atol=1e-14)
    assert np.abs(out4).std() > 0.1 and len(np.unique(out4)) == out4.size


# ---------------------------------------------------------------- noise laws
def test_phase_diffusion_and_ornstein_uhlenbeck_variance():
    # free phases: theta(T) - omega T ~ N(0, sigma^2 T)
    n, b, sigma, T = 200, 10, 0.3, 4.0
    res = Integrator(dt=0.1, noise=sigma, seed=1, substeps=3).run(Kuramoto(omega=1.0, coupling=0.0), isolated(n),
                                                                  40, init=np.zeros(n), n_trials=b)
    x = (res.state - T).ravel()
    s2 = sigma**2 * T
    m = x.size
    assert abs(x.mean()) < 4.5 * np.sqrt(s2 / m)
    assert abs(x.var() / s2 - 1) < 4.5 * np.sqrt(2 / m)
    # noisy Stuart-Landau: a gradient flow of V(z) = -mu |z|^2 / 2 + |z|^4 / 4 (plus a rotation that keeps
    # the density), so the stationary density is exp(-2 V / sigma^2); one trial below (mu < 0, a noisy
    # focus) and one above the Hopf bifurcation (mu > 0, a noisy limit cycle)
    mus, sigma = np.array([-1.0, 0.5]), 0.4
    mu = np.repeat(mus[:, None], 1000, axis=1)
    res = Integrator(dt=0.02, noise=sigma, seed=2).run(StuartLandau(mu=mu, omega=3.0), isolated(1000), 500,
                                                      init=np.sqrt(np.clip(mu, 0, None)) + 0j)
    rr = np.linspace(0, 4, 40001)
    for b, mu_b in enumerate(mus):
        dens = rr * np.exp(-2 * (-mu_b * rr**2 / 2 + rr**4 / 4) / sigma**2)
        m2 = np.trapezoid(rr**2 * dens, rr) / np.trapezoid(dens, rr)
        v2 = np.trapezoid(rr**4 * dens, rr) / np.trapezoid(dens, rr) - m2**2
        z = res.state[b]
        assert abs(np.mean(np.abs(z) ** 2) - m2) < 4.5 * np.sqrt(v2 / z.size), (mu_b, np.mean(np.abs(z) ** 2), m2)
        # isotropy: Re z and Im z are uncorrelated with equal variances
        assert abs(np.corrcoef(z.real, z.imag)[0, 1]) < 4.5 / np.sqrt(z.size)
        assert abs(np.mean(z.real**2 - z.imag**2)) < 4.5 * np.sqrt(np.var(z.real**2 - z.imag**2) / z.size)


# --------------------------------------------------------- drift and energy
def test_drift_matches_dense_numpy_with_lags_drive_pacemakers_and_dead_neurons():
    t, net = lagged_network()
    assert net.has_lag and net.clamped.sum() > 0 and (~net.alive).sum() > 0
    rng = np.random.default_rng(7)
    b, n = 3, t.n
    C = net.dense()
    assert np.allclose(C, C.conj().T)  # Hermitian
    mu = rng.normal(0.5, 0.3, n)
    omega = rng.normal(1, 0.5, (b, n))
    kc = np.array([0.7, -0.3, 1.1])
    amp, psi, freq = rng.uniform(0, 1, n), rng.uniform(0, 6, (b, n)), np.array([0.5, 1.0, 2.0])
    tt = 1.7
    z = rng.normal(size=(b, n)) + 1j * rng.normal(size=(b, n))
    z[:, ~t.alive] = 0
    free = ~net.clamped
    g = amp * np.exp(1j * (freq[:, None] * tt + psi))
    # Stuart-Landau
    sl = StuartLandau(mu=mu, omega=omega, coupling=kc, drive=Drive(amp, freq, psi))
    want = (mu + 1j * omega - np.abs(z) ** 2) * z + kc[:, None] * (z @ C.T) + g
    want = np.where(free, want, np.where(t.alive, 1j * omega * z, 0))
    assert np.allclose(drift(sl, net, z, tt), want, rtol=0, atol=1e-12)
    # phase model
    th = rng.uniform(-np.pi, np.pi, (b, n))
    u = np.exp(1j * th)
    ku = Kuramoto(omega=omega, coupling=kc, drive=Drive(amp, freq, psi))
    want = omega + kc[:, None] * np.imag(np.conj(u) * (u @ C.T)) + amp * np.sin(freq[:, None] * tt + psi - th)
    # the same, written as the sum of sines
    i, k = np.nonzero(np.arange(net.nbr.shape[1])[None, :] < net.deg[:, None])
    j = net.nbr[i, k]
    s = np.zeros((b, n))
    np.add.at(s.T, i, (np.abs(net.weights[i, k]) * np.sin(th[:, j] - th[:, i] + np.angle(net.weights[i, k]))).T)
    assert np.allclose(want, omega + kc[:, None] * s + amp * np.sin(freq[:, None] * tt + psi - th), atol=1e-12)
    want = np.where(free, want, np.where(t.alive, omega, 0))
    th[:, ~t.alive] = 0
    assert np.allclose(drift(ku, net, th, tt), want, rtol=0, atol=1e-12)


def test_xy_energy_gradient_is_the_phase_drift_and_the_flow_descends_it():
    t, net = lagged_network(inputs=False)
    rng = np.random.default_rng(8)
    n = t.n
    field, psi = rng.uniform(0, 0.5, n), rng.uniform(0, 6, n)
    th = rng.uniform(-np.pi, np.pi, (2, n))
    th[:, ~t.alive] = 0
    kc = np.array([1.0, 0.5])
    model = Kuramoto(omega=0.0, coupling=kc, drive=Drive(field, 0.0, psi))
    f = drift(model, net, th)
    eps = 1e-6
    for i in np.flatnonzero(t.alive)[::5]:
        d = np.zeros(n)
        d[i] = eps
        fd = (xy_energy(net, th + d, kc, field, psi) - xy_energy(net, th - d, kc, field, psi)) / (2 * eps)
        assert np.allclose(-fd, f[:, i], atol=1e-7)
    # a complex field is the same as (|F|, psi + arg F): the form of a sum of fields (e.g. input and nudge)
    cfield = field * np.exp(1j * psi)
    assert np.allclose(xy_energy(net, th, kc, cfield), xy_energy(net, th, kc, field, psi), atol=1e-12)
    assert np.allclose(drift(Kuramoto(omega=0.0, coupling=kc, drive=Drive(cfield, 0.0)), net, th), f, atol=1e-12)
    res = Integrator(dt=0.05).run(model, net, 400, init=th, record_every=10)
    e = np.array([xy_energy(net, np.where(t.alive, p, 0), kc, field, psi) for p in res.phase])
    assert np.all(np.diff(e, axis=0) <= 1e-10) and e[-1].max() < e[0].min()


# ------------------------------------------------------- clamped, dead, resume
def test_pacemakers_turn_freely_and_dead_neurons_stay_still_under_noise():
    t, net = lagged_network()
    rng = np.random.default_rng(9)
    omega = rng.normal(1, 0.3, t.n)
    z0 = 1.3 * np.exp(1j * rng.uniform(0, 6, (2, t.n)))
    steps, dt = 300, 0.01
    res = Integrator(dt=dt, noise=0.3, seed=2).run(StuartLandau(mu=1.0, omega=omega, coupling=1.0), net, steps,
                                                  init=z0)
    pace = t.alive & net.clamped
    T = steps * dt
    assert np.all(res.state[:, ~t.alive] == 0)
    # exactly the Heun map of dz/dt = i omega z, with no noise and no coupling
    x = omega[pace] * dt
    assert np.allclose(res.state[:, pace], z0[:, pace] * (1 + 1j * x - x**2 / 2) ** steps, rtol=0, atol=1e-12)
    assert np.allclose(res.state[:, pace], z0[:, pace] * np.exp(1j * omega[pace] * T), atol=1e-3)
    res = Integrator(dt=dt, noise=0.3, seed=2).run(Kuramoto(omega=omega, coupling=1.0), net, steps,
                                                  init=np.angle(z0))
    assert np.all(res.state[:, ~t.alive] == 0)
    assert np.allclose(res.state[:, pace], np.angle(z0)[:, pace] + omega[pace] * T, atol=1e-12)
    free = ~net.clamped
    assert np.abs(res.state[:, free] - np.angle(z0)[:, free] - omega[free] * T).max() > 0.1  # the others move


@pytest.mark.parametrize("model_name", ["stuart_landau", "kuramoto"])
def test_same_seed_same_run_and_resume_continues_the_stream(model_name):
    t, net = lagged_network()
    rng = np.random.default_rng(10)
    z0 = np.exp(1j * rng.uniform(0, 6, (2, t.n)))
    drive = Drive(0.5, np.array([0.7, 1.3]), region=t.lattice.face("z+"))
    if model_name == "stuart_landau":
        model, init = StuartLandau(omega=1.0, coupling=0.5, drive=drive), z0
    else:
        model, init = Kuramoto(omega=1.0, coupling=0.5, drive=drive), np.angle(z0)
    integ = Integrator(dt=0.02, noise=0.2, seed=4, substeps=2)
    a = integ.run(model, net, 30, init=init)
    b = integ.run(model, net, 30, init=init)
    assert np.array_equal(a.state, b.state)
    first = integ.run(model, net, 18, init=init)
    second = integ.run(model, net, 12, init=first.state, start_step=first.step_end)
    assert second.step_end == 30 and np.array_equal(second.state, a.state)
    # not resuming the counter restarts the noise and the drive clock: another trajectory
    wrong = integ.run(model, net, 12, init=first.state)
    assert not np.allclose(wrong.state, a.state)


THREAD_SCRIPT = r"""
import sys
import numba
import numpy as np
from dynamics.oscillators import Drive, Integrator, Kuramoto, Network, StuartLandau
from tissue import Tissue

threads = {threads}
assert numba.config.NUMBA_NUM_THREADS == threads and numba.get_num_threads() == threads
t = Tissue.cube((16, 16, 16), stencil=26, small_world=0.05, dtype="float64", seed=3)
t.set_input(t.lattice.face("z-"))
t.kill(t.lattice.ball((8, 8, 8), 2.0))
rng = np.random.default_rng(1)
w = t.syn.w * np.exp(1j * 0.3 * np.sign(t.syn.nbr - np.arange(t.n)[:, None]))  # Hermitian lags
net = Network.from_tissue(t, weights=w)
omega = rng.normal(1, 0.2, t.n)
z0 = np.exp(1j * rng.uniform(0, 6, (3, t.n)))
drive = Drive(0.5, np.array([0.9, 1.0, 1.1]), region=t.lattice.face("x-"))
out = {{}}
for name, model, init in (("sl", StuartLandau(omega=omega, coupling=0.7, drive=drive), z0),
                          ("ku", Kuramoto(omega=omega, coupling=0.7, drive=drive), np.angle(z0))):
    for method, noise in (("rk4", 0.0), ("heun", 0.3), ("euler", 0.3)):
        res = Integrator(dt=0.05, method=method, noise=noise, seed=7).run(model, net, 12, init=init,
                                                                          record_every=4)
        out[f"{{name}}_{{method}}_state"] = res.state
        out[f"{{name}}_{{method}}_phase"] = res.phase
np.savez("out.npz", **out)
print("ok", t.n, numba.get_num_threads())
"""


def test_bit_identical_with_1_and_2_threads(tmp_path, python_subprocess):
    results = {}
    for threads in (1, 2):
        d = tmp_path / f"threads{threads}"
        d.mkdir()
        out = python_subprocess(THREAD_SCRIPT.format(threads=threads), cwd=d, env_extra={"NUMBA_NUM_THREADS": threads})
        assert out.split() == ["ok", "4096", str(threads)]  # 4 work chunks
        results[threads] = dict(np.load(d / "out.npz"))
    assert len(results[1]) == 12
    for k, a in results[1].items():
        assert np.all(np.isfinite(a)) and np.array_equal(a, results[2][k]), k
    assert not np.array_equal(results[1]["sl_heun_state"], results[1]["sl_euler_state"])


# ------------------------------------------------------------------ records
def test_records_dataset_and_entrainment_wave_from_a_pacemaker():
    # a chain entrained by a faster pacemaker at x = 0: everyone turns at its frequency and the
    # phase lags grow away from it (a wave travelling towards +x: k_x < 0)
    t = Tissue.cube((10, 1, 1), stencil=6, init="constant", weight_scale=1.0, dtype="float64")
    t.set_input(t.lattice.face("x-"))
    omega = np.full(t.n, 1.0)
    omega[0] = 1.02
    res = Integrator(dt=0.05).run(Kuramoto(omega=omega, coupling=2.0), t, 6000, init=np.zeros(t.n),
                                  record_every=4)
    late = res.time > 200
    f = pm.mean_frequency(res.phase[late], res.time[late])
    assert np.allclose(f, 1.02, atol=1e-6)
    wave = pm.travelling_wave(res.phase[-1, 0], t.lattice)
    assert wave.k[0] < -0.01 and wave.strength > 0.9
    ds = res.to_dataset()
    assert ds.phase.dims == ("time", "trial", "x", "y", "z") and ds.phase.shape == (1501, 1, 10, 1, 1)
    assert np.array_equal(ds.step.values, np.arange(0, 6001, 4)) and ds.attrs["method"] == "rk4"
    assert np.all(ds.amplitude.values == 1)
    frames = []
    sub = Integrator(dt=0.05).run(StuartLandau(), t, 10, init=np.ones(t.n, complex), record_every=3,
                                  neurons=[2, 5], on_frame=lambda *a: frames.append(a), keep_frames=False)
    assert sub.amplitude is None and [f[0] for f in frames] == [0, 3, 6, 9, 10]
    assert np.isclose(frames[-1][1], 0.5) and frames[-1][2].shape == (1, 2)
    assert np.allclose(frames[-1][3], pm.wrap(np.angle(sub.state[:, [2, 5]])))
    sub = Integrator(dt=0.05).run(StuartLandau(), t, 10, init=np.ones(t.n, complex), record_every=3,
                                  neurons=[2, 5])
    ds = sub.to_dataset()
    assert ds.amplitude.dims == ("time", "trial", "neuron") and list(ds.step.values) == [0, 3, 6, 9, 10]
    assert list(ds.x.values) == [2, 5]


def test_divergence_and_bad_arguments_raise():
    net = Network.from_synapses(Synapses.from_edges(2, [0], [1], [1.0], dtype=np.float64))
    with pytest.raises(SimulationDiverged):  # mu + K lambda > 0 with a huge dt
        Integrator(dt=5.0, method="euler").run(StuartLandau(mu=1.0, coupling=3.0), net, 50,
                                               init=np.ones(2, complex))
    with pytest.raises(ValueError, match="RK4"):
        Integrator(method="rk4", noise=0.1)
    with pytest.raises(ValueError, match="trials"):
        Integrator().run(Kuramoto(coupling=np.ones(3)), net, 1, init=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="omega"):
        Integrator().run(Kuramoto(omega=np.ones(3)), net, 1)
    with pytest.raises(ValueError, match="real"):
        Integrator().run(Kuramoto(), net, 1, init=np.zeros(2, complex))


# ------------------------------------------------------------------ measures
def test_order_parameter_of_synchronised_and_splay_states():
    n = 360
    assert np.isclose(pm.order_parameter(np.full(n, 0.7)), np.exp(0.7j), atol=1e-14)
    splay = 2 * np.pi * np.arange(n) / n + 0.3
    assert abs(pm.order_parameter(splay)) < 1e-13
    rand = np.random.default_rng(0).uniform(0, 2 * np.pi, (50, 4000))
    r2 = np.abs(pm.order_parameter(rand)) ** 2
    assert abs(r2.mean() * 4000 - 1) < 0.5  # E r^2 = 1 / N for independent uniform phases
    # regions and masks
    ph = np.where(np.arange(n) < n // 2, 1.0, 2 * splay)  # the second half: one uniform turn
    both = pm.region_order_parameter(ph, {"a": np.arange(n // 2), "b": np.arange(n // 2, n)})
    assert np.isclose(both["a"], np.exp(1j)) and abs(both["b"]) < 0.02
    assert np.isclose(pm.order_parameter(ph, mask=np.arange(n) < n // 2), np.exp(1j))
    stacked = pm.region_order_parameter(np.stack([ph, ph]), [np.arange(10), np.arange(5, 20)])
    assert stacked.shape == (2, 2)


def test_frequency_and_phase_locking_measures():
    dt = 0.01
    t = np.arange(0, 20, dt)
    w, a, nu = 3.0, 0.5, 0.7
    th = w * t + a * np.sin(nu * t)
    inst = pm.instantaneous_frequency(pm.wrap(th), dt)
    assert np.abs(inst[1:-1] - (w + a * nu * np.cos(nu * t[1:-1]))).max() < 1e-4
    assert abs(pm.mean_frequency(pm.wrap(w * t), t) - w) < 1e-10
    rng = np.random.default_rng(1)
    ref = pm.drive_phase(t, 3.0)
    locked = pm.wrap(3.0 * t + 0.7 + 0.1 * rng.normal(size=t.size))
    plv, lag = pm.phase_locking_value(locked, ref)
    assert abs(plv - np.exp(-0.1**2 / 2)) < 0.01 and abs(lag - 0.7) < 0.01
    plv, _ = pm.phase_locking_value(rng.uniform(0, 2 * np.pi, t.size), ref)
    assert plv < 5 / np.sqrt(t.size)
    # 1:2 locking: theta turns at half the reference frequency
    plv, _ = pm.phase_locking_value(1.5 * t + 0.2, ref, ratio=(1, 2))
    assert plv > 1 - 1e-12


def test_travelling_wave_fit_recovers_a_noisy_plane_wave():
    lat = Lattice((10, 8, 6), spacing=2.0)
    k = np.array([0.3, -0.45, 0.2])
    x = lat.positions
    rng = np.random.default_rng(2)
    sigma = 0.3
    th = pm.wrap(x @ k + 1.1 + sigma * rng.normal(size=(2, lat.size)))  # two trials
    wave = pm.travelling_wave(th, lat)
    assert np.abs(wave.k - k).max() < 0.01
    assert np.allclose(wave.strength, np.exp(-sigma**2 / 2), atol=0.02)  # |E exp(i eps)| for Gaussian eps
    assert np.allclose(wave.wavelength, 2 * np.pi / np.linalg.norm(k), rtol=0.03)
    assert np.allclose(wave.direction, k / np.linalg.norm(k), atol=0.02)
    clean = pm.travelling_wave(pm.wrap(x @ k + 1.1), lat)
    assert np.allclose(clean.k, k, atol=1e-12) and np.isclose(clean.strength, 1)
    assert np.isclose(clean.offset, 1.1) and np.allclose(clean.coherence, 1)
    noise = pm.travelling_wave(rng.uniform(-np.pi, np.pi, lat.size), lat)
    assert noise.strength < 0.15
    sync = pm.travelling_wave(np.full(lat.size, 0.4), lat)
    assert np.allclose(sync.k, 0, atol=1e-12) and np.isclose(sync.strength, 1) and sync.wavelength > 1e10


def test_one_neuron_phase_state_with_many_trials_ignores_the_dummy_imaginary_part():
    # regression: with N = 1 the (1, 1) dummy imaginary part of a phase state was taken for a
    # complex state and read out of bounds for trials b >= 1 (spurious "diverged")
    ur = np.array([[0.5, -2.0, 3.0, 1.0]])
    part = np.zeros((OK.n_chunks(1), 4))
    OK.finite_max_abs2(ur, np.full((1, 1), np.nan), part)
    np.testing.assert_array_equal(part.max(axis=0), ur[0] ** 2)
    drive = Drive(amplitude=np.full((40, 1), 0.5), frequency=np.linspace(0, 2, 40))
    res = Integrator(dt=0.05).run(Kuramoto(omega=1.0, coupling=1.0, drive=drive), isolated(1), 200, n_trials=40)
    assert np.all(np.isfinite(res.state))
