"""Tasks, input placement, output read-out, AUROC and the baselines (studies.tasks, studies.baselines)."""

from __future__ import annotations

import numpy as np
import pytest

from studies.baselines import (ablate_mlp_hidden, logistic_baseline, mlp_baseline, mlp_hidden_width,
                               mlp_n_weights, mlp_retrain_curve)
from studies.tasks import (InputMap, Task, auroc, blend_pairs, group_means, load_digits_task, shift_images,
                           one_hot_targets, pattern_task, place_on_face, predict_groups)
from tissue import Lattice, Tissue


@pytest.fixture(scope="module")
def digits():
    return load_digits_task(seed=0)


# ------------------------------------------------------------------ digits
def test_digits_split_is_stratified_disjoint_and_matches_the_source(digits):
    from sklearn.datasets import load_digits

    d = load_digits()
    n = len(d.target)
    assert n == 1797 and digits.n_classes == 10 and digits.image_shape == (8, 8)
    tr, te = digits.idx_train, digits.idx_test
    assert len(np.intersect1d(tr, te)) == 0
    assert np.array_equal(np.union1d(tr, te), np.arange(n))
    assert (len(tr), len(te)) == (1347, 450)
    # rows are the source rows, scaled by 1/16
    np.testing.assert_array_equal(digits.x_train, d.data[tr] / 16.0)
    np.testing.assert_array_equal(digits.y_test, d.target[te])
    assert digits.x_train.min() == 0.0 and digits.x_train.max() == 1.0
    # stratified: every class within one sample of 75 / 25
    for c in range(10):
        n_c = int((d.target == c).sum())
        assert abs(int((digits.y_train == c).sum()) - 0.75 * n_c) <= 1
        assert abs(int((digits.y_test == c).sum()) - 0.25 * n_c) <= 1


def test_digits_split_is_deterministic_per_seed_and_differs_across_seeds(digits):
    again = load_digits_task(seed=0)
    np.testing.assert_array_equal(again.idx_test, digits.idx_test)
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    other = load_digits_task(seed=1)
    assert not np.array_equal(other.idx_test, digits.idx_test)
    # different, yet not disjoint: about a quarter of one test set falls in the other
    shared = len(np.intersect1d(other.idx_test, digits.idx_test))
    assert 0.15 * 450 < shared < 0.35 * 450
    assert digits.attrs["seed"] == 0 and len(digits.attrs["sha256_raw"]) == 64


def test_task_refuses_values_outside_the_unit_interval():
    x = np.zeros((4, 4))
    y = np.array([0, 1, 0, 1])
    Task(x, y, x, y, 2, (2, 2), "ok")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Task(x + 2, y, x, y, 2, (2, 2), "bad")
    with pytest.raises(ValueError, match="classes"):
        Task(x, y + 1, x, y, 2, (2, 2), "bad")


# ---------------------------------------------------------- input placement
def _expected_xyz(lat, face, r, c, up, off, i=0, j=0):
    """Coordinates of in-plane position ``off + (r, c) * up + (i, j)`` on ``face``, by hand."""
    a = "xyz".index(face[0])
    u, v = [ax for ax in range(3) if ax != a]
    xyz = [0, 0, 0]
    xyz[a] = 0 if face[1] == "-" else lat.shape[a] - 1
    xyz[u] = off[0] + r * up + i
    xyz[v] = off[1] + c * up + j
    return xyz


@pytest.mark.parametrize("face, up, offset", [
    ("z-", 1, None), ("z-", 1, (0, 0)), ("z-", 2, (1, 3)), ("z-", 2, None),
    ("x+", 1, (2, 1)), ("y-", 2, (0, 1)),
])
def test_place_on_face_puts_each_pixel_on_its_voxels(face, up, offset):
    lat = Lattice((11, 13, 9))
    h, w = 4, 3
    rng = np.random.default_rng(0)
    imgs = rng.random((2, h, w)) * 0.9 + 0.05           # no pixel equals the fill
    vals = place_on_face(imgs, lat, face=face, upsample=up, offset=offset, fill=-1.0)
    region = lat.face(face)
    assert vals.shape == (2, len(region))
    if offset is None:                                  # centred, rounding towards the origin
        a = "xyz".index(face[0])
        n_u, n_v = [lat.shape[ax] for ax in range(3) if ax != a]
        offset = ((n_u - h * up) // 2, (n_v - w * up) // 2)
    pos = {int(v): k for k, v in enumerate(region)}
    covered = set()
    for r in range(h):
        for c in range(w):
            for i in range(up):
                for j in range(up):
                    xyz = _expected_xyz(lat, face, r, c, up, offset, i, j)
                    k = pos[int(lat.index(*xyz))]
                    assert lat.coords(region[k : k + 1])[0].tolist() == xyz
                    np.testing.assert_array_equal(vals[:, k], imgs[:, r, c])
                    covered.add(k)
    rest = np.setdiff1d(np.arange(len(region)), list(covered))
    assert len(covered) == h * w * up * up
    assert np.all(vals[:, rest] == -1.0)


def test_place_on_face_refuses_an_image_that_does_not_fit():
    lat = Lattice((8, 8, 4))
    imgs = np.zeros((1, 8, 8))
    place_on_face(imgs, lat)                                    # exactly fits
    with pytest.raises(ValueError, match=r"8x8 upsampled x2 is 16x16.*8x8 face"):
        place_on_face(imgs, lat, upsample=2)
    with pytest.raises(ValueError, match="does not fit"):
        place_on_face(imgs, lat, offset=(1, 0))
    with pytest.raises(ValueError, match="does not fit"):
        place_on_face(np.zeros((1, 4, 4)), lat, offset=(-1, 0))
    with pytest.raises(ValueError, match="upsample"):
        place_on_face(imgs, lat, upsample=0)


def test_input_map_follows_the_tissue_input_region_when_voxels_die(digits):
    t = Tissue.cube((10, 10, 3))
    face = t.set_input(t.lattice.face("z-"))
    m = InputMap(t.lattice, (8, 8), "z-")
    full = m(digits.x_train[:5])
    np.testing.assert_array_equal(full, m(digits.images("train")[:5], tissue=t))
    t.kill(face[[0, 17, 44]])
    sub = m(digits.x_train[:5], tissue=t)
    keep = np.isin(face, t.region("input"))
    np.testing.assert_array_equal(sub, full[:, keep])
    t.set_input(t.lattice.face("z+"))
    with pytest.raises(ValueError, match="not part of face"):
        m(digits.x_train[:5], tissue=t)


# ------------------------------------------------------------ output read-out
@pytest.fixture(scope="module")
def out_tissue():
    t = Tissue.cube((6, 5, 4))
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=10)     # 30 voxels, 3 per class
    return t


def test_one_hot_targets_and_predict_groups_round_trip(out_tissue):
    t = out_tissue
    out = t.region("output")
    y = np.arange(10).repeat(2)
    tg = one_hot_targets(y, t, on=0.9, off=0.1)
    assert tg.shape == (20, len(out))
    for k, cls in enumerate(y):
        assert np.all(tg[k, t.group[out] == cls] == 0.9) and np.all(tg[k, t.group[out] != cls] == 0.1)
    rates = np.zeros((len(y), t.n))
    rates[:, out] = tg
    np.testing.assert_array_equal(predict_groups(rates, t), y)
    # a rate vector whose group k is highest on average (not everywhere) predicts k
    rng = np.random.default_rng(1)
    for k in range(10):
        r = rng.random(t.n) * 0.5
        r[out[t.group[out] == k]] = [0.3, 0.9, 0.9]
        assert predict_groups(r, t) == k
    with pytest.raises(ValueError, match="classes"):
        one_hot_targets([10], t)


def test_group_means_and_ties(out_tissue):
    t = out_tissue
    rng = np.random.default_rng(2)
    rates = rng.random((4, t.n))
    m = group_means(rates, t)
    for g in range(10):
        idx = np.flatnonzero((t.role == 2) & (t.group == g))
        np.testing.assert_allclose(m[:, g], rates[:, idx].mean(1))
    flat = np.full((1, t.n), 0.5)
    assert predict_groups(flat, t)[0] == 0                      # all tied -> lowest class
    flat[0, t.region("output")[t.group[t.region("output")] >= 7]] = 0.7
    assert predict_groups(flat, t)[0] == 7                      # tie among 7, 8, 9 -> 7


# ------------------------------------------------------------------- AUROC
def test_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(5, 300))
        pos = rng.random(n) < rng.uniform(0.1, 0.9)
        if pos.all() or not pos.any():
            continue
        score = rng.integers(0, 6, n) + pos * rng.integers(0, 3)   # many ties, some signal
        assert auroc(score, pos) == pytest.approx(roc_auc_score(pos, score), abs=1e-12)


def test_auroc_obvious_cases():
    pos = np.array([0, 0, 1, 1, 0, 1], bool)
    assert auroc(pos * 3.0 + 1, pos) == 1.0
    assert auroc(-3.0 * pos, pos) == 0.0
    assert auroc(np.ones(6), pos) == 0.5
    assert np.isnan(auroc(np.arange(3), [False, False, False]))
    with pytest.raises(ValueError):
        auroc([1.0, np.nan], [True, False])


def test_blend_pairs(digits):
    b, lab, idx = blend_pairs(digits.x_test, digits.y_test, 200, seed=5, return_index=True)
    assert b.shape == (200, 64) and lab.shape == (200, 2)
    assert np.all(lab[:, 0] != lab[:, 1])
    np.testing.assert_array_equal(lab, digits.y_test[idx])
    np.testing.assert_allclose(b, 0.5 * digits.x_test[idx[:, 0]] + 0.5 * digits.x_test[idx[:, 1]])
    b2, lab2 = blend_pairs(digits.x_test, digits.y_test, 200, seed=5)
    np.testing.assert_array_equal(b2, b)
    assert not np.array_equal(blend_pairs(digits.x_test, digits.y_test, 200, seed=6)[1], lab)
    assert len(np.unique(lab)) == 10


# ------------------------------------------------------------ pattern task
def _nearest_prototype_hits(task):
    protos = np.asarray(task.attrs["prototypes"], float)

    def hits(x, y):
        return np.argmin(np.abs(x[:, None, :] - protos[None]).sum(-1), axis=1) == y

    return hits(task.x_train, task.y_train), hits(task.x_test, task.y_test)


def test_pattern_task_train_and_test_come_from_one_distribution():
    from scipy.stats import fisher_exact

    task = pattern_task((8, 8), n_classes=4, n_train=400, n_test=400, noise=0.4, seed=0)
    protos = np.asarray(task.attrs["prototypes"], float)
    k = task.attrs["flipped_pixels"]
    assert k == 26 and task.images("test").shape == (400, 8, 8)
    assert set(np.unique(task.x_train)) == {0.0, 1.0}
    for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
        assert np.all(np.bincount(y, minlength=4) == 100)                # balanced
        assert np.all(np.abs(x - protos[y]).sum(1) == k)                 # exactly k flips
    ok_tr, ok_te = _nearest_prototype_hits(task)
    assert 0.6 < ok_te.mean() < 0.95                                     # a task, not a give-away
    # same distribution: the nearest-prototype error rates agree (Fisher's exact test) ...
    assert fisher_exact([[ok_tr.sum(), (~ok_tr).sum()], [ok_te.sum(), (~ok_te).sum()]]).pvalue > 0.01
    # ... while the same test tells a noisier test set apart (same prototypes: same seed)
    harder = pattern_task((8, 8), n_classes=4, n_train=400, n_test=400, noise=0.45, seed=0)
    assert harder.attrs["prototypes"] == task.attrs["prototypes"]
    _, ok_h = _nearest_prototype_hits(harder)
    assert fisher_exact([[ok_tr.sum(), (~ok_tr).sum()], [ok_h.sum(), (~ok_h).sum()]]).pvalue < 1e-6
    again = pattern_task((8, 8), n_classes=4, n_train=400, n_test=400, noise=0.4, seed=0)
    np.testing.assert_array_equal(again.x_test, task.x_test)
    other = pattern_task((8, 8), n_classes=4, n_train=400, n_test=400, noise=0.4, seed=1)
    assert other.attrs["prototypes"] != task.attrs["prototypes"]


def test_pattern_task_logistic_regression_transfers_from_train_to_test():
    from sklearn.linear_model import LogisticRegression

    task = pattern_task((8, 8), n_classes=4, n_train=300, n_test=300, noise=0.3, seed=2)
    clf = LogisticRegression(max_iter=2000).fit(task.x_train, task.y_train)
    assert clf.score(task.x_test, task.y_test) >= 0.9
    # the prototypes are what it learned: they are classified correctly
    protos = np.asarray(task.attrs["prototypes"], float)
    np.testing.assert_array_equal(clf.predict(protos), np.arange(4))


# --------------------------------------------------------------- baselines
def test_mlp_hidden_width_matches_the_requested_weight_count():
    for n in (1_000, 3_680, 10_001, 52_123, 260_000):
        h = mlp_hidden_width(n, 64, 10)
        got = mlp_n_weights(64, h, 10)
        assert abs(got - n) <= 37                                    # half of 64 + 10
        assert abs(got - n) <= abs(mlp_n_weights(64, h + 1, 10) - n)
        assert abs(got - n) <= abs(mlp_n_weights(64, max(h - 1, 1), 10) - n) or h == 1
        assert abs(got - n) / n < 0.04


@pytest.fixture(scope="module")
def small_mlp(digits):
    return mlp_baseline(digits, 1_500, seed=0, max_iter=300)


def test_mlp_baseline_size_and_determinism(digits, small_mlp):
    r = small_mlp
    assert r.hidden == 20 and r.n_weights == 20 * 74 and r.n_biases == 30
    assert sum(w.size for w in r.model.coefs_) == r.n_weights
    assert abs(r.n_weights - 1_500) / 1_500 < 0.03
    assert r.train_accuracy > 0.97 and r.test_accuracy > 0.9
    again = mlp_baseline(digits, 1_500, seed=0, max_iter=300)
    assert again.test_accuracy == r.test_accuracy
    np.testing.assert_array_equal(again.model.coefs_[0], r.model.coefs_[0])
    other = mlp_baseline(digits, 1_500, seed=1, max_iter=300)
    assert not np.array_equal(other.model.coefs_[0], r.model.coefs_[0])
    assert set(r.as_dict()) >= {"train_accuracy", "test_accuracy", "hidden", "n_weights", "fit_time"}


def test_mlp_ablation_and_retraining(digits, small_mlp):
    m = small_mlp.model
    a1 = ablate_mlp_hidden(m, 0.25, seed=3)
    a2 = ablate_mlp_hidden(m, 0.5, seed=3)
    assert len(a1.ablated_units_) == 5 and len(a2.ablated_units_) == 10
    assert set(a1.ablated_units_) <= set(a2.ablated_units_)            # nested fractions
    dead = a2.ablated_units_
    assert np.all(a2.coefs_[0][:, dead] == 0) and np.all(a2.coefs_[1][dead] == 0)
    assert np.all(a2.intercepts_[0][dead] == 0)
    live = np.setdiff1d(np.arange(20), dead)
    np.testing.assert_array_equal(a2.coefs_[0][:, live], m.coefs_[0][:, live])
    assert not hasattr(m, "ablated_units_") and np.any(m.coefs_[0][:, dead] != 0)   # original intact
    # the dead units' hidden activations are 0 for every input
    hid = np.maximum(digits.x_test @ a2.coefs_[0] + a2.intercepts_[0], 0)
    assert np.all(hid[:, dead] == 0)
    assert len(ablate_mlp_hidden(a1, 0.5, seed=9).ablated_units_) == 10
    curve = mlp_retrain_curve(a2, digits, epochs=3, keep_dead=False)
    assert curve["train_accuracy"].shape == (4,) and list(curve["epoch"]) == [0, 1, 2, 3]
    assert curve["test_accuracy"][0] == a2.score(digits.x_test, digits.y_test)
    rm = curve["model"]
    # without re-zeroing, a fresh Adam and ReLU'(0) = 0 keep the dead units exactly dead
    assert np.all(rm.coefs_[0][:, dead] == 0) and np.all(rm.coefs_[1][dead] == 0)
    assert np.any(rm.coefs_[0][:, live] != a2.coefs_[0][:, live])
    assert curve["train_accuracy"][-1] >= curve["train_accuracy"][0]


def test_logistic_baseline_on_digits(digits):
    r = logistic_baseline(digits, seed=0)
    assert r.test_accuracy >= 0.95
    assert r.n_weights == 640 and r.n_biases == 10 and r.converged
    assert r.train_accuracy >= r.test_accuracy


def test_shift_images_moves_whole_pixels_exactly_and_keeps_interior_mass():
    # a whole-pixel shift is a translation with zeros moving in (checked against np.roll);
    # a sub-pixel bilinear shift of an image that stays inside the frame keeps its total mass
    rng = np.random.default_rng(3)
    img = np.zeros((1, 8, 8))
    img[0, 2:6, 3:5] = rng.uniform(0.2, 1.0, size=(4, 2))

    class Fixed:
        def __init__(self, d):
            self.d = np.asarray(d, dtype=float)

        def uniform(self, lo, hi, size):
            assert lo == -hi
            return np.broadcast_to(self.d, size).copy()

    moved = shift_images(img, 1.0, Fixed([1.0, -1.0]))
    np.testing.assert_allclose(moved[0], np.roll(img[0], (1, -1), axis=(0, 1)), atol=1e-12)
    half = shift_images(img, 0.5, Fixed([0.5, 0.25]))
    assert half.sum() == pytest.approx(img.sum(), rel=1e-12)
    assert np.abs(half - img).max() > 0.05
    np.testing.assert_array_equal(shift_images(img, 0.0, rng), img)
    d = np.random.default_rng(0)
    shifts = shift_images(np.repeat(img, 50, axis=0), 0.75, d)
    assert shifts.min() >= 0 and shifts.max() <= 1
    assert np.ptp(shifts.reshape(len(shifts), -1), axis=0).max() > 0.05  # each digit got its own shift
    with pytest.raises(ValueError, match="max_shift"):
        shift_images(img, -1.0, rng)
