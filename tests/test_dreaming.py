"""Dreaming: the sampler draws from exp(-E/T)/Z, dreams read back into images, the
generative rule teaches a tissue to dream its classes, and the [dream] run and its config."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from plasticity.dreaming import GenerativeTrainer, dream, dream_view, face_to_images, parse_schedule
from plasticity.readout import style_targets
from studies.config import ConfigError, load_config
from studies.run import run
from studies.tasks import InputMap
from tissue import INPUT, Tissue

# ------------------------------------------------------------------ a 3-neuron chain
W01, W12, B0, B1, Y = 0.6, 0.8, 0.2, -0.2, 0.7   # input 0 - hidden 1 - output 2 (clamped to Y)


def chain_tissue(bias=(B0, B1, 0.0)):
    t = Tissue.cube((3, 1, 1), stencil=6, init="zero", dtype="float64")
    W = np.zeros((3, 3))
    W[0, 1] = W[1, 0] = W01
    W[1, 2] = W[2, 1] = W12
    for i in range(3):
        for k in range(t.syn.deg[i]):
            t.syn.w[i, k] = W[i, t.syn.nbr[i, k]]
    t.bias[:] = bias
    t.set_input([0])
    t.set_output([2], groups=1)
    return t


def gibbs_bins(T, bins, grid=400, b0=B0, b1=B1):
    """P(bin) of exp(-E(s0, s1 | s2 = Y) / T) on [0, 1]^2 by midpoint quadrature (the hard
    sigmoid keeps the state in the box, where rho(s) = s), and the marginal of s0 on the grid."""
    u = (np.arange(grid) + 0.5) / grid
    s0, s1 = np.meshgrid(u, u, indexing="ij")
    E = 0.5 * (s0**2 + s1**2) - W01 * s0 * s1 - W12 * s1 * Y - b0 * s0 - b1 * s1
    p = np.exp(-(E - E.min()) / T)
    p /= p.sum()
    k = grid // bins
    return p.reshape(bins, k, bins, k).sum(axis=(1, 3)), u, p.sum(axis=1)


def marginal_cdf(u, marg):
    cdf = np.concatenate([[0.0], np.cumsum(marg)])
    grid = np.concatenate([[0.0], u + 0.5 / len(u)])
    return lambda x: np.interp(x, grid, cdf)


def test_dream_samples_the_gibbs_law_of_a_three_neuron_tissue():
    """Independent chains (one sample each, so the effective sample size is the number of
    chains) against the quadrature of exp(-E/T)/Z over the box: chi-square on an 8 x 8 grid of
    the two free states and KS on the input's marginal. The same samples reject the law of
    another temperature (the test has power)."""
    T, bins, n, dt = 0.03, 8, 2000, 0.01
    t = chain_tissue()
    w_before = t.syn.w.copy()
    res = dream(t, [0], chains=n, schedule=[(0.1, 200), (T, 1000)], dt=dt, init="random", target_on=Y, seed=3)
    np.testing.assert_array_equal(t.syn.w, w_before)          # the tissue is not touched
    assert np.all(t.role[[0, 2]] == [INPUT, 2])
    s = res.final
    assert np.all(s[:, 2] == Y)                               # the output stays clamped
    assert s[:, :2].min() >= 0 and s[:, :2].max() <= 1
    obs, _, _ = np.histogram2d(s[:, 0], s[:, 1], bins=bins, range=[[0, 1], [0, 1]])
    ref, u, marg0 = gibbs_bins(T, bins)
    chi = scipy.stats.chisquare(obs.ravel(), ref.ravel() * n)
    assert chi.pvalue > 1e-3, chi
    ks = scipy.stats.kstest(s[:, 0], marginal_cdf(u, marg0))
    assert ks.pvalue > 1e-3, ks
    wrong, _, _ = gibbs_bins(0.7 * T, bins)
    assert scipy.stats.chisquare(obs.ravel(), wrong.ravel() * n).pvalue < 1e-6
    # the energies reported are those of the samples
    E = 0.5 * (s**2).sum(1) - W01 * s[:, 0] * s[:, 1] - W12 * s[:, 1] * s[:, 2] - B0 * s[:, 0] - B1 * s[:, 1]
    np.testing.assert_allclose(res.energy[-1], E, rtol=1e-9, atol=1e-12)


def test_a_unit_pushed_against_the_wall_converges_as_dt_shrinks():
    """The engine keeps the hard sigmoid's state in [0, 1] by clipping each Euler step; a unit
    whose drift pushes it against s = 1 then sits on the wall a share of the time of order
    sqrt(dt) (an atom the continuous law does not have): a 4 x smaller step halves the atom,
    and brings the unit's mean closer to the quadrature mean."""
    T, n = 0.05, 2000
    bias = (0.3, 0.5, 0.0)                                    # the hidden unit's fixed point is beyond 1
    t = chain_tissue(bias)
    ref, _, _ = gibbs_bins(T, 400, grid=400, b0=bias[0], b1=bias[1])
    mean1 = float((ref.sum(0) * (np.arange(400) + 0.5) / 400).sum())
    out = {dt: dream(t, [0], chains=n, schedule=[(T, int(5 / dt))], dt=dt, init="random", target_on=Y,
                     seed=4).final for dt in (0.04, 0.01)}
    atom = {dt: np.mean(s[:, 1] == 1) for dt, s in out.items()}
    assert atom[0.04] > 0.1 and 1.5 < atom[0.04] / atom[0.01] < 3, atom
    err = {dt: abs(s[:, 1].mean() - mean1) for dt, s in out.items()}
    assert err[0.01] < err[0.04], err


def test_thinned_samples_of_few_chains_follow_the_law_with_their_effective_size():
    """Many samples of 8 chains: the mean of s0 agrees with the quadrature mean within a z-test
    whose standard error uses the effective sample size from the samples' autocorrelation."""
    T = 0.03
    t = chain_tissue()
    res = dream(t, [0], chains=8, schedule=[(T, 300), (T, 6000)], dt=0.02, init="random", target_on=Y,
                samples=200, thin=30, seed=5)
    x = res.state[:, :, 0]                                    # (sample, chain)
    _, u, marg0 = gibbs_bins(T, 8)
    mean_ref = float((u * marg0).sum())
    xc = x - x.mean(0)
    var = xc.var()
    acf = [1.0] + [float((xc[k:] * xc[:-k]).mean() / var) for k in range(1, 40)]
    tau = 1 + 2 * sum(a for a in acf[1:] if a > 0.02)         # integrated autocorrelation time (in samples)
    assert tau > 1.5                                          # the samples are correlated: n_eff < n
    n_eff = x.size / tau
    z = (x.mean() - mean_ref) / np.sqrt(var / n_eff)
    assert abs(z) < 4, (z, tau)


def test_schedules_and_arguments_are_checked():
    assert parse_schedule((0.1, 5)) == [(0.1, 5)]
    assert parse_schedule([(0.2, 3), (0, 4)]) == [(0.2, 3), (0.0, 4)]
    for bad, needle in (([], "at least one"), ([(-1, 3)], "temperature"), ([(0.1, 0)], "steps"),
                        ([(0.1,)], r"schedule\[0\]")):
        with pytest.raises(ValueError, match=needle):
            parse_schedule(bad)
    t = chain_tissue()
    with pytest.raises(ValueError, match="init"):
        dream(t, [0], init="noise", schedule=[(0.1, 10)])
    with pytest.raises(ValueError, match="samples"):
        dream(t, [0], schedule=[(0.1, 10)], samples=3, thin=5)
    plain = Tissue.cube((3, 1, 1), stencil=6)
    with pytest.raises(ValueError, match="output region"):
        dream_view(plain)


def test_face_to_images_inverts_the_input_map():
    rng = np.random.default_rng(0)
    t = Tissue.cube((10, 9, 3), stencil=26)
    imap = InputMap(t.lattice, (4, 3), "z-", upsample=2)
    img = rng.random((5, 4, 3))
    s = np.zeros((5, t.n))
    s[:, imap.region] = imap(img)
    back = face_to_images(s, imap.region, imap.source, 12)
    np.testing.assert_allclose(back.reshape(5, 4, 3), img, rtol=1e-12)
    # block means: perturb one voxel of a 2x2 block by d, the pixel moves by d / 4
    v = int(imap.region[np.flatnonzero(imap.source == 7)[0]])
    s[0, v] -= 0.2
    assert face_to_images(s, imap.region, imap.source, 12)[0, 7] == pytest.approx(img.reshape(5, -1)[0, 7] - 0.05)


# ------------------------------------------------------------------ the generative rule
def two_class_task(rng, n=64):
    """4 x 4 images: class 0 bright on the left half, class 1 on the right, with noise."""
    x = np.clip(rng.normal(0.15, 0.1, (n, 4, 4)), 0, 1)
    y = np.arange(n) % 2
    x[y == 0, :, :2] += 0.7
    x[y == 1, :, 2:] += 0.7
    return np.clip(x, 0, 1).reshape(n, 16), y


@pytest.mark.slow
def test_generative_rule_teaches_a_tissue_to_dream_its_classes():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x, y = two_class_task(rng)
    clf = LogisticRegression().fit(x, y)
    t = Tissue.cube((4, 4, 3), stencil=26, bias=0.2, seed=1)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=2, layout="interleaved")
    imap = InputMap(t.lattice, (4, 4), "z-", 1)
    xin = imap(x, tissue=t)

    def dreams(tissue):
        r = dream(tissue, [0, 1], chains=16, schedule=[(0.02, 1000)], seed=2)
        img = face_to_images(r.final, imap.region, imap.source, 16)
        return np.mean(clf.predict(img) == r.labels), img, r.labels

    before, _, _ = dreams(t)
    gen = GenerativeTrainer(lr=3e-3, temperature=0.02, steps=20, batch_size=16, seed=0)
    w0 = t.syn.w.copy()
    for ep in range(15):
        gen.fit_epoch(t, xin, y, epoch=ep)
    t.syn.check()                                             # still symmetric
    assert not np.allclose(t.syn.w, w0)
    after, img, lab = dreams(t)
    assert after >= 0.9, (before, after)
    assert before <= 0.75, before                             # the untrained tissue does not dream them
    # first moments match: the mean dream of each class is close to the class mean image
    for c in (0, 1):
        assert np.abs(img[lab == c].mean(0) - x[y == c].mean(0)).mean() < 0.15


def test_style_targets_code_the_class_and_a_style():
    t = Tissue.cube((6, 6, 3), stencil=26, seed=0)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=3, layout="interleaved")
    from plasticity.readout import one_hot_targets, predict_groups

    assert np.array_equal(style_targets(t, 1, 0.9, 0.1)[:, 0], one_hot_targets([0, 1, 2], t, 0.9, 0.1))
    Y = style_targets(t, 4)
    out = t.region("output")
    g = t.group[out]
    for c in range(3):
        on = Y[c] == 1.0
        assert np.array_equal(on.sum(0) == 1, g == c) and on.sum(0).max() == 1   # the styles tile the class
        assert np.ptp(on.sum(1)) <= 1                                           # balanced
        state = np.zeros((4, t.n))
        state[:, out] = Y[c]
        assert np.all(predict_groups(state, t) == c)                            # the class is still read
    soft = style_targets(t, 2, sibling=0.5)
    assert np.all(soft[0, 0][(g == 0) & (Y[0, 1] == 1)] == 0.5) and np.all(soft[0, 0][g != 0] == 0)
    with pytest.raises(ValueError, match="styles must be an integer in"):
        style_targets(t, 13)


@pytest.mark.slow
def test_style_codes_give_a_class_one_attractor_per_style():
    """Two classes (bright left or right half of a 4 x 4 image), each written in two styles (top or
    bottom quadrant). Fitted with class-and-style clamps, the quenched dreams of each (class,
    style) sit on that style's mean image, not the other style's: the class has two attractors."""
    rng = np.random.default_rng(0)
    n = 128
    x = np.clip(rng.normal(0.15, 0.1, (n, 4, 4)), 0, 1)
    y, k = np.arange(n) % 2, (np.arange(n) // 2) % 2
    for c in (0, 1):
        for s in (0, 1):
            x[(y == c) & (k == s), 2 * s:2 * s + 2, 2 * c:2 * c + 2] += 0.7
    x = np.clip(x, 0, 1).reshape(n, 16)
    t = Tissue.cube((4, 4, 3), stencil=26, bias=0.2, seed=1)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=2, layout="interleaved")
    imap = InputMap(t.lattice, (4, 4), "z-", 1)
    codes = style_targets(t, 2)
    gen = GenerativeTrainer(lr=3e-3, temperature=0.02, steps=20, batch_size=16, seed=0)
    for ep in range(20):
        gen.fit_epoch(t, imap(x, tissue=t), y, epoch=ep, clamp=codes[y, k])
    t.syn.check()
    lab, sty = np.repeat([0, 0, 1, 1], 4), np.repeat([0, 1, 0, 1], 4)
    r = dream(t, lab, chains=1, schedule=[(0.02, 1000), (0.0, 1000)], clamp=codes[lab, sty], seed=2)
    img = face_to_images(r.final, imap.region, imap.source, 16)
    for c in (0, 1):
        for s in (0, 1):
            dreamt = img[(lab == c) & (sty == s)].mean(0)
            own = np.abs(dreamt - x[(y == c) & (k == s)].mean(0)).mean()
            other = np.abs(dreamt - x[(y == c) & (k != s)].mean(0)).mean()
            assert own < 0.5 * other, (c, s, own, other)
        a, b = img[(lab == c) & (sty == 0)].mean(0), img[(lab == c) & (sty == 1)].mean(0)
        assert np.abs(a - b).mean() > 0.25


# ------------------------------------------------------------------ the [dream] run
@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A learning run store as `tissue run` leaves it (config, status, tissue), with the
    tissue as built before training: the dream plumbing does not need a trained tissue,
    and this keeps the tests fast."""
    import zarr

    from studies.learn import build_learning
    from tissue import save_tissue

    out = tmp_path_factory.mktemp("learn") / "learn.zarr"
    cfg = load_config({"name": "tiny", "seed": 0, "tissue": {"shape": [8, 8, 3], "bias": 0.2},
                       "task": {"name": "patterns", "n_classes": 4, "noise": 0.1},
                       "learning": {"epochs": 1, "blends": 0, "alignment_samples": 0, "batch_size": 32},
                       "dynamics": {"max_steps": 150, "tol": 1e-3}})
    setup = build_learning(cfg)
    zarr.create_group(out, attributes={"kind": "learning", "status": "complete", "config": cfg.to_dict()})
    save_tissue(setup.tissue, out)
    return out


def dream_cfg(store, **kw):
    d = {"source": str(store), "chains": 3, "anneal": [{"temperature": 0.05, "steps": 100},
                                                         {"temperature": 0.02, "steps": 200}]}
    d.update(kw)
    return {"name": "d", "seed": 0, "dream": d}


def test_dream_run_writes_samples_png_and_scores(learned, tmp_path):
    out = tmp_path / "d.zarr"
    s = run(dream_cfg(learned, generative_epochs=1, samples=2, thin=50, classifier_lr=0.0), out, progress=False)
    assert s.status == "complete"
    ds = xr.open_zarr(out, group="dream", consolidated=False)
    assert ds.image.dims == ("label", "chain", "sample", "x", "y")
    assert ds.image.shape == (4, 3, 2, 8, 8)
    assert ds.phase_energy.sizes["phase"] == 2
    assert float(ds.image.min()) >= 0 and float(ds.image.max()) <= 1
    assert 0 <= s.figures["dream_classified_mean"] <= 1
    assert (tmp_path / "d.dream.png").stat().st_size > 1000
    assert "classifier_test_accuracy_after" in s.figures
    # the energy reported is the tissue's energy of the stored state
    from dynamics import Langevin
    from tissue import load_tissue

    t = load_tissue(out, group="dream_tissue")
    act = ds.activation.isel(label=1, chain=0).values.reshape(1, -1)
    assert Langevin.energy(t, act)[0] == pytest.approx(float(ds.energy.isel(label=1, chain=0, sample=-1)),
                                                       rel=1e-4, abs=1e-4)
    ds.close()


def test_a_styled_tissue_dreams_each_style_and_quenches(tmp_path):
    """[task] styles = 2: the learning run trains on class-and-style targets (its store keeps each
    training image's style, the k-means clusters of its class), and the dream run clamps chain c
    of a class with style c % 2 (read back from the dreams' output voxels) and scores the dreams
    settled at T = 0 (quench_steps)."""
    from plasticity.readout import style_targets
    from studies.learn import build_learning
    from studies.tasks import class_styles
    from tissue import load_tissue, open_run

    learn = {"name": "tiny", "seed": 0, "tissue": {"shape": [8, 8, 3], "bias": 0.2},
             "task": {"name": "patterns", "n_classes": 4, "noise": 0.1, "styles": 2},
             "learning": {"epochs": 2, "blends": 0, "alignment_samples": 0, "batch_size": 32},
             "dynamics": {"max_steps": 150, "tol": 1e-3}, "baselines": {"mlp": False, "logistic": False}}
    store = tmp_path / "learn.zarr"
    run(learn, store, progress=False)
    setup = build_learning(load_config(learn))
    res = open_run(store)
    sty = res.train_style.values
    assert np.array_equal(sty, class_styles(setup.task.x_train, setup.task.y_train, 2, seed=0))
    for c in range(4):                           # two styles per class, the larger one first
        n = np.bincount(sty[setup.task.y_train == c], minlength=2)
        assert n.min() > 0 and n[0] >= n[1]
    res.close()
    out = tmp_path / "d.zarr"
    s = run(dream_cfg(store, chains=4, generative_epochs=1, classifier_lr=1e-3, quench_steps=100), out,
            progress=False)
    ds = xr.open_zarr(out, group="dream", consolidated=False)
    assert ds.attrs["styles"] == 2 and np.array_equal(ds["style"].values[0], [0, 1, 0, 1])
    t = load_tissue(store)
    codes = style_targets(t, 2)
    out_vox = t.region("output")
    act = ds.activation.values.reshape(4, 4, -1)
    for c in range(4):
        for ch in range(4):
            assert np.allclose(act[c, ch, out_vox], codes[c, ch % 2])
    assert ds.quenched_image.shape == (4, 4, 8, 8) and (tmp_path / "d.quenched.png").stat().st_size > 1000
    for k in ("dream_quenched_classified_mean", "dream_quenched_diversity_mean"):
        assert 0 <= s.figures[k] <= 1.5
    ds.close()
    bad = dict(learn, task=dict(learn["task"], styles=40))
    with pytest.raises(ConfigError, match=r"\[task\] styles"):
        load_config(bad)


@pytest.mark.parametrize("patch, needle", [
    ({"chains": 0}, "[dream] chains"),
    ({"init": "zeros"}, "[dream] init"),
    ({"anneal": [{"temperature": -1, "steps": 5}]}, "temperature"),
    ({"anneal": [{"temperature": 0.1}]}, "steps"),
    ({"samples": 5, "thin": 100}, "[dream] samples"),
    ({"source": "no/such/store.zarr"}, "[dream] source"),
    ({"generative_epochs": -1}, "[dream] generative_epochs"),
    ({"colour": 1}, "unknown key 'colour'"),
])
def test_bad_dream_configs_name_the_key(learned, patch, needle):
    with pytest.raises(ConfigError) as err:
        load_config(dream_cfg(learned, **patch))
    assert needle in str(err.value), str(err.value)


def test_dream_config_refuses_foreign_sections_and_non_learning_stores(learned, tmp_path):
    cfg = load_config(dream_cfg(learned))
    assert cfg.dream.anneal[1].steps == 200 and cfg.tissue is None
    bad = dict(dream_cfg(learned), tissue={"shape": [4, 4, 4]})
    with pytest.raises(ConfigError, match=r"\[tissue\]"):
        load_config(bad)
    import zarr

    zarr.create_group(tmp_path / "other.zarr", attributes={"status": "complete", "config": {}})
    with pytest.raises(ConfigError, match="learning run store"):
        load_config(dream_cfg(tmp_path / "other.zarr"))


def test_shipped_dream_config_is_valid_with_its_store(learned, tmp_path, monkeypatch):
    """configs/dream-digits.toml names learn-styles.zarr relative to the working directory."""
    import shutil
    import tomllib

    from conftest import REPO

    raw = tomllib.loads((REPO / "configs" / "dream-digits.toml").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"\[dream\] source.*learn-styles.zarr"):
        load_config(raw)
    shutil.copytree(learned, tmp_path / "learn-styles.zarr")
    cfg = load_config(raw)
    assert cfg.dream.generative_epochs >= 1 and len(cfg.dream.anneal) == 2


def test_on_off_encoding_carries_each_pixel_twice_and_is_read_back():
    """ON/OFF: in each 2x2 block two voxels hold p and two hold 1 - p (a checkerboard); the
    block still sums to 2 whatever p, and face_to_images with ``off`` inverts it exactly."""
    rng = np.random.default_rng(1)
    t = Tissue.cube((10, 9, 3), stencil=26)
    imap = InputMap(t.lattice, (4, 3), "z-", upsample=2, encoding="on_off")
    assert imap.offset == ((10 - 8) // 2, (9 - 6) // 2)          # centred, as with the plain encoding
    img = rng.random((5, 4, 3))
    face = imap(img)
    flat = img.reshape(5, 12)
    for p in range(12):
        vox = np.flatnonzero(imap.source == p)
        on, off = vox[~imap.off[vox]], vox[imap.off[vox]]
        assert len(on) == len(off) == 2
        np.testing.assert_allclose(face[:, on], flat[:, [p]].repeat(2, 1))
        np.testing.assert_allclose(face[:, off], 1 - flat[:, [p]].repeat(2, 1))
        c = t.lattice.coords(imap.region[off])
        assert len({(x + y) % 2 for x, y in c[:, :2]}) == 1     # OFF voxels: one colour of the checkerboard
    s = np.zeros((5, t.n))
    s[:, imap.region] = face
    np.testing.assert_allclose(face_to_images(s, imap.region, imap.source, 12, off=imap.off), flat, rtol=1e-12)
    # without the OFF mark a pixel reads as 1/2: the mean of p and 1 - p
    np.testing.assert_allclose(face_to_images(s, imap.region, imap.source, 12), 0.5)
    with pytest.raises(ValueError, match="upsample >= 2"):
        InputMap(t.lattice, (4, 3), "z-", upsample=1, encoding="on_off")
    with pytest.raises(ValueError, match="encoding"):
        InputMap(t.lattice, (4, 3), "z-", upsample=2, encoding="log")
