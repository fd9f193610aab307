"""The Langevin integrator samples the right stationary law.

Euler-Maruyama on a quadratic energy ``E = 1/2 s^T H s - b^T s`` is the
linear recursion (exact, in distribution)

    s' - mu = A (s - mu) + sqrt(2 T dt) xi,    A = I - dt H,    mu = H^{-1} b,

whose stationary covariance ``C_dt`` solves the discrete Lyapunov equation
``C = A C A^T + 2 T dt I``. Closed form: ``C_dt = T H^{-1} + (T dt / 2)(I - dt H / 2)^{-1}``,
so ``C_dt -> T H^{-1}`` (the continuous-time Gibbs law) with an O(dt) bias.
For one uncoupled unit (H = 1): ``Var = T / (1 - dt / 2)``.

Samples are taken every ``gap`` steps from many independent trials (the
batch axis). Their serial correlation is known exactly (lag-k covariance
``A^(k gap) C_dt``), so the variance of each estimator is computed exactly
(Isserlis' theorem for the second moments) and the tests use z-scores
against it: no effective-sample-size guesswork.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from dynamics import Langevin
from tissue import Tissue

Z_MAX = 5.0  # per-statistic bound; the runs are seeded, so the outcome is fixed


def sample(tissue, engine, n_trials, burn, gap, n_samples, init=None):
    """``(n_samples, n_trials, N)`` states every ``gap`` steps after ``burn`` steps,
    continuing one noise stream through ``start_step``."""
    res = engine.settle(tissue, n_trials=n_trials, init=init, steps=burn)
    out = []
    for _ in range(n_samples):
        res = engine.settle(tissue, init=res.state, steps=gap, start_step=res.step_end)
        out.append(res.state)
    return np.stack(out)


def lag_covariances(A, C, gap, m):
    """``G[k] = Cov(x_{t + k gap}, x_t) = A^(k gap) C`` for k < m."""
    Ag = np.linalg.matrix_power(A, gap)
    G = [C]
    for _ in range(m - 1):
        G.append(Ag @ G[-1])
    return np.array(G)


def pair_weights(m):
    """Number of sample pairs (k, l) at each lag |k - l| (for the variance of a mean over k)."""
    return np.array([m] + [2 * (m - d) for d in range(1, m)], dtype=float)


def var_of_mean(G, n_trials):
    """Variance of the mean over trials and samples of each unit."""
    m = len(G)
    diag = np.einsum("kii->ki", G)  # (lag, unit)
    return pair_weights(m) @ diag / (n_trials * m**2)


def var_of_cov(G, n_trials):
    """Variance of each entry of the (known-mean) sample covariance, by Isserlis:
    Cov(x_i x_j (t+k), x_i x_j (t)) = G_ii G_jj + G_ij G_ji at lag k."""
    m = len(G)
    d = np.einsum("kii->ki", G)
    term = d[:, :, None] * d[:, None, :] + G * np.transpose(G, (0, 2, 1))
    return np.einsum("k,kij->ij", pair_weights(m), term) / (n_trials * m**2)


# ------------------------------------------------------ uncoupled units
def test_ar1_closed_forms_agree():
    """The discrete stationary variance: closed form = Lyapunov solution, -> T as dt -> 0."""
    T = 0.7
    for dt in (0.5, 0.1, 0.01, 1e-4):
        a = 1 - dt
        v = 2 * T * dt / (1 - a * a)
        assert v == pytest.approx(T / (1 - dt / 2), rel=1e-12)
        lyap = scipy.linalg.solve_discrete_lyapunov(np.array([[a]]), np.array([[2 * T * dt]]))
        assert lyap[0, 0] == pytest.approx(v, rel=1e-10)
        assert abs(v - T) <= T * dt  # O(dt) bias towards the continuous law N(b, T)


@pytest.mark.parametrize("dt", [0.2, 0.05])
def test_uncoupled_units_sample_normal_b_T(dt):
    """Linear activation, no synapses: each s_i is stationary N(b_i, T/(1 - dt/2))."""
    T = 0.5
    t = Tissue.cube((2, 2, 2), stencil=6, init="zero", activation="linear", dtype="float64")
    assert np.all(t.syn.w == 0)
    b = np.linspace(-1.0, 1.5, t.n)
    t.bias[:] = b
    n_trials = 1000
    gap = max(1, int(round(0.5 / dt)))            # correlation (1 - dt)^gap ~ 0.6 between samples
    burn = int(np.ceil(10 / dt))                  # from s = b: Var(s) = v (1 - (1 - dt)^(2 burn)), < 1e-8 off
    m = 25
    eng = Langevin(dt=dt, temperature=T, seed=11)
    x = sample(t, eng, n_trials, burn, gap, m, init=b)    # (m, trials, N)
    assert x.shape == (m, n_trials, t.n) and np.all(np.isfinite(x))

    v_dt = T / (1 - dt / 2)
    A = np.array([[1 - dt]])
    G = lag_covariances(A, np.array([[v_dt]]), gap, m)  # (m, 1, 1), the same for every unit
    se_mean = np.sqrt(var_of_mean(G, n_trials)[0])
    se_var = np.sqrt(var_of_cov(G, n_trials)[0, 0])

    mean = x.mean(axis=(0, 1))
    var = ((x - b) ** 2).mean(axis=(0, 1))        # known-mean variance estimator
    z_mean = (mean - b) / se_mean
    z_var = (var - v_dt) / se_var
    assert np.all(np.abs(z_mean) < Z_MAX), z_mean
    assert np.all(np.abs(z_var) < Z_MAX), z_var
    # pooled over the 8 independent units: a sharper test of the variance
    z_pool = (var.mean() - v_dt) / (se_var / np.sqrt(t.n))
    assert abs(z_pool) < Z_MAX
    if dt == 0.2:
        # the test is sharp enough to see the O(dt) discretisation bias: T itself is rejected
        assert abs((var.mean() - T) / (se_var / np.sqrt(t.n))) > 3 * Z_MAX
    else:
        # at small dt the continuous-time law N(b, T) is within the bias bound T * dt
        assert abs(var.mean() - T) < T * dt + Z_MAX * se_var / np.sqrt(t.n)

    # the law itself is normal: one time slice, independent across trials and units
    z = ((x[-1] - b) / np.sqrt(v_dt)).ravel()
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-4
    # and the samples are not frozen copies: consecutive samples decorrelate as (1 - dt)^gap
    r = np.mean((x[1:] - b) * (x[:-1] - b)) / v_dt
    assert abs(r - (1 - dt) ** gap) < 0.05  # its standard error is below 0.01 here


# ------------------------------------------------------- coupled units
def coupled_tissue(seed=5, rho=0.6):
    """A 2x2x2 tissue, all 28 pairs wired, random symmetric W with spectral radius ``rho``."""
    t = Tissue.cube((2, 2, 2), stencil=26, init="normal", weight_scale=1.0, activation="linear",
                    dtype="float64", seed=seed)
    W = t.to_scipy().toarray()
    assert t.syn.n_synapses == 28
    t.syn.w *= rho / np.max(np.abs(np.linalg.eigvalsh(W)))
    t.bias[:] = np.random.default_rng(seed).uniform(-0.5, 0.5, t.n)
    return t


@pytest.mark.parametrize("dt", [0.2, 0.05])
def test_coupled_quadratic_covariance_is_T_inverse_hessian(dt):
    T = 0.3
    t = coupled_tissue()
    W = t.to_scipy().toarray()
    n = t.n
    H = np.eye(n) - W
    lam = np.linalg.eigvalsh(H)
    assert lam.min() > 0.39 and lam.max() < 1.61
    b = t.bias.astype(np.float64)
    mu = np.linalg.solve(H, b)
    A = np.eye(n) - dt * H
    C_dt = scipy.linalg.solve_discrete_lyapunov(A, 2 * T * dt * np.eye(n))
    C_inf = T * np.linalg.inv(H)
    # the exact discrete covariance, in closed form, is within O(dt) of T H^-1
    np.testing.assert_allclose(C_dt, C_inf + 0.5 * T * dt * np.linalg.inv(np.eye(n) - 0.5 * dt * H),
                               rtol=1e-10, atol=1e-12)
    assert np.abs(C_dt - C_inf).max() <= T * dt / (1 - dt * lam.max() / 2) / 2 + 1e-12

    n_trials = 2000
    gap = max(1, int(round(1.0 / dt)))
    burn = int(np.ceil(8 / (dt * lam.min())))     # from s = mu: covariance within e^-16 of C_dt
    m = 20
    eng = Langevin(dt=dt, temperature=T, seed=23)
    x = sample(t, eng, n_trials, burn, gap, m, init=mu)
    G = lag_covariances(A, C_dt, gap, m)

    z_mean = (x.mean(axis=(0, 1)) - mu) / np.sqrt(var_of_mean(G, n_trials))
    assert np.all(np.abs(z_mean) < Z_MAX), z_mean
    d = (x - mu).reshape(-1, n)
    C_hat = d.T @ d / len(d)
    z_cov = (C_hat - C_dt) / np.sqrt(var_of_cov(G, n_trials))
    assert np.all(np.abs(z_cov) < Z_MAX), np.abs(z_cov).max()
    # a global check that cannot hide in per-entry noise
    assert np.linalg.norm(C_hat - C_dt) < 0.05 * np.linalg.norm(C_dt)
    # the coupling is visible: the off-diagonal covariances are far from 0 in z units
    off = ~np.eye(n, dtype=bool)
    assert np.abs((C_dt / np.sqrt(var_of_cov(G, n_trials)))[off]).max() > 10
    if dt == 0.05:
        # against the continuous-time law directly, allowing the exact O(dt) bias bound
        bias = T * dt / (1 - dt * lam.max() / 2) / 2
        assert np.abs(C_hat - C_inf).max() < bias + Z_MAX * np.sqrt(var_of_cov(G, n_trials)).max()
