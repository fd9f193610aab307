"""Classification tasks for the tissue, and the glue between images and a tissue's regions.

Tasks (see ``data/README.md`` for provenance):

- :func:`load_digits_task`: scikit-learn's bundled 8 x 8 handwritten digits
  (1 797 images, no download), pixels / 16, a seeded stratified 75/25 split;
- :func:`pattern_task`: a synthetic task whose class prototypes are smooth
  random binary patterns and whose samples are prototypes with a fraction of
  pixels flipped; train and test are drawn from ONE pool of samples, so they
  come from the same distribution.

Glue:

- :class:`InputMap` / :func:`place_on_face`: images ``(n, h, w)`` -> values on
  an input face, in ``lattice.face(face)`` order, ready for
  ``Langevin.settle(tissue, inputs=...)`` after ``tissue.set_input(lattice.face(face))``;
- :func:`class_styles`: k-means styles within each class (for ``[task] styles``).
- :func:`one_hot_targets`, :func:`group_means`, :func:`predict_groups`: class
  targets and read-out on the output region (``tissue.region("output")`` order,
  one group of voxels per class, ``tissue.group == class``);
- :func:`blend_pairs` and :func:`auroc`: ambiguous inputs and the rank statistic
  for the settling-time uncertainty signal.

    >>> from tissue import Tissue
    >>> from studies.tasks import load_digits_task, place_on_face
    >>> task = load_digits_task(seed=0)
    >>> t = Tissue.cube((8, 8, 6))
    >>> _ = t.set_input(t.lattice.face("z-"))
    >>> place_on_face(task.images("train"), t.lattice).shape
    (1347, 64)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from plasticity.readout import group_means, one_hot_targets, predict_groups  # noqa: F401 (re-exported)
from tissue.lattice import AXES, FACES, Lattice

__all__ = ["InputMap", "Task", "auroc", "blend_pairs", "class_styles", "group_means", "load_digits_task",
           "one_hot_targets", "pattern_task", "place_on_face", "predict_groups"]

ENCODINGS = ("intensity", "on_off")

# tags of the seed streams derived from a pattern task's seed (studies.run.derived_seed)
_PROTOTYPES, _SAMPLES, _SPLIT = 11, 12, 13


# ---------------------------------------------------------------------- tasks
@dataclass
class Task:
    """A classification task on small images.

    Attributes
    ----------
    x_train, x_test : ndarray (n, d) float64
        Flattened images (row-major over ``image_shape``), values in [0, 1].
    y_train, y_test : ndarray (n,) int64
        Classes ``0 .. n_classes - 1``.
    n_classes : int
    image_shape : tuple (h, w)
        ``h * w == d``.
    name : str
    attrs : dict
        Provenance (source, split rule, seed, ...); JSON-able, so it can go into
        a run store's attributes as it is.
    idx_train, idx_test : ndarray (n,) int64 or None
        Rows of the source data set (digits: of ``sklearn.datasets.load_digits()``)
        in each split.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    image_shape: tuple
    name: str
    attrs: dict = field(default_factory=dict)
    idx_train: np.ndarray | None = None
    idx_test: np.ndarray | None = None

    def __post_init__(self):
        self.image_shape = tuple(int(v) for v in self.image_shape)
        d = int(np.prod(self.image_shape))
        for split in ("train", "test"):
            x = np.ascontiguousarray(getattr(self, f"x_{split}"), dtype=np.float64)
            y = np.asarray(getattr(self, f"y_{split}")).astype(np.int64)
            if x.ndim != 2 or x.shape[1] != d:
                raise ValueError(f"x_{split} must have shape (n, {d}) for images {self.image_shape}, "
                                 f"got {x.shape}")
            if y.shape != (x.shape[0],):
                raise ValueError(f"y_{split} must have shape ({x.shape[0]},), got {y.shape}")
            if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1):
                raise ValueError(f"x_{split} must hold finite values in [0, 1]")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"y_{split} must hold classes in [0, {self.n_classes})")
            setattr(self, f"x_{split}", x)
            setattr(self, f"y_{split}", y)

    @property
    def n_features(self) -> int:
        return int(np.prod(self.image_shape))

    def images(self, split: str = "train") -> np.ndarray:
        """The ``(n, h, w)`` images of ``"train"`` or ``"test"``."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return getattr(self, f"x_{split}").reshape((-1,) + self.image_shape)

    def __repr__(self) -> str:
        return (f"Task({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"classes={self.n_classes}, images={self.image_shape})")


def load_digits_task(seed: int = 0, test_size: float = 0.25) -> Task:
    """The 8 x 8 digits bundled with scikit-learn, split 75/25 by a seeded stratified rule.

    Pixels (integers 0..16, on-pixel counts of 4 x 4 blocks) are divided by 16.
    The split is ``sklearn.model_selection.train_test_split(arange(1797),
    test_size=test_size, stratify=target, random_state=seed)``: the same seed
    gives the same split on any machine with the same scikit-learn split
    algorithm; 1 347 train and 450 test images for ``test_size = 0.25``.

    Parameters
    ----------
    seed : int
        ``random_state`` of the split.
    test_size : float in (0, 1)
        Fraction of images held out.
    """
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    raw = d.data.astype(np.uint8)
    y = d.target.astype(np.int64)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y,
                                      random_state=int(seed))
    idx_tr, idx_te = np.sort(idx_tr), np.sort(idx_te)  # order within a split carries no information
    x = raw / 16.0
    digest = hashlib.sha256(raw.tobytes() + d.target.astype(np.uint8).tobytes()).hexdigest()
    attrs = {
        "source": "UCI Optical Recognition of Handwritten Digits (optdigits), test partition, "
                  "as bundled in scikit-learn (sklearn.datasets.load_digits)",
        "doi": "10.24432/C50P49",
        "license": "CC BY 4.0",
        "n_images": int(len(y)),
        "scaling": "pixel / 16",
        "split": "sklearn.model_selection.train_test_split(stratify=target, random_state=seed)",
        "seed": int(seed),
        "test_size": float(test_size),
        "sklearn_version": sklearn.__version__,
        "sha256_raw": digest,
    }
    return Task(x[idx_tr], y[idx_tr], x[idx_te], y[idx_te], 10, (8, 8), "digits", attrs, idx_tr, idx_te)


def pattern_task(shape_xy=(8, 8), n_classes: int = 4, n_train: int = 400, n_test: int = 200,
                 noise: float = 0.1, smoothness: float = 1.0, seed: int = 0) -> Task:
    """A synthetic task: noisy copies of smooth random binary prototypes.

    The ``n_classes`` prototypes are :func:`studies.run.smooth_patterns` on the
    2D grid ``shape_xy`` (white noise blurred by a gaussian of width
    ``smoothness`` pixels, periodic edges, thresholded at the median). A sample
    of class ``c`` is prototype ``c`` with exactly ``round(noise * h * w)``
    pixels, drawn without replacement, flipped (:func:`studies.run.make_cues`).
    One pool of ``ceil((n_train + n_test) / n_classes)`` samples per class is
    drawn, then split by a stratified random split, so train and test come
    from the same distribution.

    The prototypes are in ``attrs["prototypes"]`` (nested lists of 0/1) and
    their pairwise Hamming distances in ``attrs["prototype_distances"]``.
    """
    from sklearn.model_selection import train_test_split

    from .run import derived_seed, make_cues, smooth_patterns

    shape = tuple(int(v) for v in shape_xy)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape_xy must be two positive integers, got {shape_xy!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if not 0 <= noise <= 1:
        raise ValueError(f"noise must be a fraction in [0, 1], got {noise}")
    if n_train < n_classes or n_test < n_classes:
        raise ValueError(f"n_train and n_test must be >= n_classes = {n_classes} (stratified split)")
    protos = smooth_patterns(shape, n_classes, smoothness,
                             np.random.default_rng(derived_seed(seed, _PROTOTYPES)))
    per_class = -(-(n_train + n_test) // n_classes)
    x, y = make_cues(protos, noise, per_class, np.random.default_rng(derived_seed(seed, _SAMPLES)))
    idx_tr, idx_te = train_test_split(np.arange(len(y)), train_size=n_train, test_size=n_test,
                                      stratify=y, random_state=derived_seed(seed, _SPLIT))
    ham = (protos[:, None, :] != protos[None, :, :]).sum(-1)
    attrs = {
        "source": "synthetic: studies.tasks.pattern_task",
        "shape_xy": list(shape), "n_classes": int(n_classes), "n_train": int(n_train),
        "n_test": int(n_test), "noise": float(noise), "smoothness": float(smoothness), "seed": int(seed),
        "flipped_pixels": int(round(noise * protos.shape[1])),
        "prototypes": protos.astype(int).tolist(),
        "prototype_distances": ham.tolist(),
    }
    x = x.astype(np.float64)
    return Task(x[idx_tr], y[idx_tr], x[idx_te], y[idx_te], n_classes, shape, "patterns", attrs,
                idx_tr, idx_te)


def class_styles(x, y, styles: int, seed: int = 0) -> np.ndarray:
    """The style of every image: its cluster among the images of its class, ``0 .. styles - 1``,
    by k-means on the pixels (scikit-learn ``KMeans``, 10 restarts, ``random_state=seed``; clusters
    numbered by their size, largest first, then by their mean pixel sum). ``styles = 1``: all 0."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y).astype(np.int64)
    out = np.zeros(len(y), dtype=np.int64)
    if int(styles) <= 1:
        return out
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < styles:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than styles={styles}")
        with threadpool_limits(1):            # one thread: the same clusters whatever the machine
            lab = KMeans(int(styles), n_init=10, random_state=seed).fit_predict(x[idx])
        size = np.bincount(lab, minlength=styles)
        ink = np.array([x[idx][lab == k].sum(1).mean() for k in range(styles)])
        order = np.lexsort((ink, -size))             # largest cluster first
        rank = np.empty(styles, np.int64)
        rank[order] = np.arange(styles)
        out[idx] = rank[lab]
    return out


def shift_images(images, max_shift: float, rng) -> np.ndarray:
    """Each image moved by its own random sub-pixel shift (training-set augmentation).

    Shifts along rows and columns are drawn uniformly from ``[-max_shift, max_shift]``
    pixels by ``rng`` (a ``numpy.random.Generator``); the image is resampled
    bilinearly (``scipy.ndimage.shift``, ``order=1``) with zeros moving in at the
    edges, and the result is clipped to ``[0, 1]``. ``max_shift = 0`` returns a copy.

    Parameters
    ----------
    images : array (n, h, w)
    max_shift : float >= 0
        In pixels of the image (not of the upsampled face).
    rng : numpy.random.Generator
    """
    from scipy.ndimage import shift as nd_shift

    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"images must have shape (n, h, w), got {x.shape}")
    if not (np.isfinite(max_shift) and max_shift >= 0):
        raise ValueError(f"max_shift must be a finite number >= 0, got {max_shift!r}")
    if max_shift == 0:
        return x.copy()
    d = rng.uniform(-max_shift, max_shift, size=(len(x), 2))
    out = np.empty_like(x)
    for k in range(len(x)):
        out[k] = nd_shift(x[k], d[k], order=1, mode="constant", cval=0.0)
    return np.clip(out, 0.0, 1.0)


# ------------------------------------------------------------------ input map
@dataclass(frozen=True)
class InputMap:
    """Where the pixels of ``(h, w)`` images land on a face of a lattice.

    The face's two in-plane axes are the other two of ``x, y, z`` in that
    order (``"z-"``: rows along x, columns along y; ``"x+"``: rows along y,
    columns along z). Pixel ``(r, c)`` covers the ``upsample x upsample``
    block of in-plane coordinates ``(offset[0] + r * upsample + i,
    offset[1] + c * upsample + j)``, ``0 <= i, j < upsample`` (nearest-neighbour
    upsampling). Face voxels outside the image get ``fill``.

    With ``encoding="on_off"`` the block carries two channels, as ON and OFF
    cells of a retina do: the voxels with ``i + j`` even get the pixel value
    ``p``, the others ``1 - p``. A rate network whose units pass nothing at
    rate 0 then sees the absence of ink as a signal too (needs ``upsample >= 2``).

    Parameters
    ----------
    lattice : Lattice
    image_shape : (h, w)
    face : {"x-", "x+", "y-", "y+", "z-", "z+"}
    upsample : int >= 1
    offset : (int, int) or None
        In-plane coordinates of the image's first pixel's block; ``None``
        centres the image (rounding towards the origin).
    fill : float
    encoding : {"intensity", "on_off"}

    Attributes
    ----------
    region : ndarray (n_face,) int64
        ``lattice.face(face)`` (sorted voxel indices).
    source : ndarray (n_face,) int64
        Flat pixel index ``r * w + c`` feeding each face voxel, ``-1`` for fill.
    off : ndarray (n_face,) bool
        The voxels that carry ``1 - p`` (all False for ``"intensity"``).
    """

    lattice: Lattice
    image_shape: tuple
    face: str = "z-"
    upsample: int = 1
    offset: tuple | None = None
    fill: float = 0.0
    encoding: str = "intensity"
    region: np.ndarray = field(init=False, repr=False, compare=False)
    source: np.ndarray = field(init=False, repr=False, compare=False)
    off: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.face not in FACES:
            raise ValueError(f"face must be one of {FACES}, got {self.face!r}")
        h, w = (int(v) for v in self.image_shape)
        if h < 1 or w < 1:
            raise ValueError(f"image_shape must be two positive integers, got {self.image_shape!r}")
        up = int(self.upsample)
        if up != self.upsample or up < 1:
            raise ValueError(f"upsample must be an integer >= 1, got {self.upsample!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.encoding == "on_off" and up < 2:
            raise ValueError("encoding 'on_off' needs upsample >= 2 (each pixel's block holds ON and OFF voxels)")
        a = AXES.index(self.face[0])
        u, v = (ax for ax in range(3) if ax != a)
        nu, nv = self.lattice.shape[u], self.lattice.shape[v]
        hu, wv = h * up, w * up
        if self.offset is None:
            off = ((nu - hu) // 2, (nv - wv) // 2)
        else:
            off = tuple(int(o) for o in self.offset)
            if len(off) != 2:
                raise ValueError(f"offset must be two integers, got {self.offset!r}")
        fits = off[0] >= 0 and off[1] >= 0 and off[0] + hu <= nu and off[1] + wv <= nv
        if not fits:
            raise ValueError(
                f"image {h}x{w} upsampled x{up} is {hu}x{wv} (along {AXES[u]} x {AXES[v]}); at offset "
                f"{off} it does not fit the {nu}x{nv} face {self.face!r} of the lattice {self.lattice.shape}")
        region = self.lattice.face(self.face)
        c = self.lattice.coords(region)
        ru, cv = c[:, u] - off[0], c[:, v] - off[1]
        inside = (ru >= 0) & (ru < hu) & (cv >= 0) & (cv < wv)
        source = np.where(inside, (ru // up) * w + (cv // up), -1).astype(np.int64)
        flip = inside & ((ru % up + cv % up) % 2 == 1) if self.encoding == "on_off" else np.zeros(len(region), bool)
        object.__setattr__(self, "off", flip)
        object.__setattr__(self, "image_shape", (h, w))
        object.__setattr__(self, "upsample", up)
        object.__setattr__(self, "offset", off)
        object.__setattr__(self, "region", region)
        object.__setattr__(self, "source", source)

    def __call__(self, images, tissue=None) -> np.ndarray:
        """Face values ``(n, n_face)`` float64 of ``images`` ``(n, h, w)`` or ``(n, h * w)``.

        With ``tissue``, the columns of ``tissue.region("input")`` instead (the
        order ``Langevin.settle(inputs=...)`` expects; it differs from the face
        when some input voxels are dead); that region must lie on the face.
        """
        h, w = self.image_shape
        x = np.asarray(images, dtype=np.float64)
        if x.ndim == 3 and x.shape[1:] == (h, w):
            x = x.reshape(len(x), h * w)
        elif not (x.ndim == 2 and x.shape[1] == h * w):
            raise ValueError(f"images must have shape (n, {h}, {w}) or (n, {h * w}), got {x.shape}")
        vals = np.where(self.source >= 0, x[:, np.maximum(self.source, 0)], float(self.fill))
        vals = np.where(self.off, 1.0 - vals, vals)
        if tissue is None:
            return vals
        inp = tissue.region("input")
        if not np.all(np.isin(inp, self.region)):
            raise ValueError(f"the tissue's input region is not part of face {self.face!r}")
        return vals[:, np.searchsorted(self.region, inp)]


def place_on_face(images, lattice: Lattice, face: str = "z-", upsample: int = 1, offset=None,
                  fill: float = 0.0) -> np.ndarray:
    """Values ``(n, n_face)`` of ``(n, h, w)`` images on a face, in ``lattice.face(face)`` order.

    A one-call form of :class:`InputMap` (see it for the placement rule;
    ``offset=None`` centres the image). Raises ``ValueError`` naming the sizes
    when the (upsampled) image does not fit the face.
    """
    x = np.asarray(images)
    if x.ndim != 3:
        raise ValueError(f"images must have shape (n, h, w), got {x.shape}")
    return InputMap(lattice, x.shape[1:], face, upsample, offset, fill)(x)


# ----------------------------------------------------------------- uncertainty
def blend_pairs(x, y, n: int, seed: int = 0, weight: float = 0.5, return_index: bool = False):
    """``n`` ambiguous inputs: ``weight * x[i] + (1 - weight) * x[j]`` with ``y[i] != y[j]``.

    ``i`` is uniform over the samples and ``j`` uniform over the samples of
    another class (``numpy.random.default_rng(seed)``).

    Returns
    -------
    blends : ndarray (n, ...) float64
        Same trailing shape as ``x``.
    labels : ndarray (n, 2) int64
        ``(y[i], y[j])``.
    index : ndarray (n, 2) int64
        ``(i, j)``, only with ``return_index=True``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if len(np.unique(y)) < 2:
        raise ValueError("blends need samples of at least two classes")
    rng = np.random.default_rng(seed)
    i = rng.integers(len(y), size=int(n))
    j = rng.integers(len(y), size=int(n))
    same = y[i] == y[j]
    while np.any(same):                         # redraw partners of the same class
        j[same] = rng.integers(len(y), size=int(same.sum()))
        same = y[i] == y[j]
    blends = weight * x[i] + (1.0 - weight) * x[j]
    labels = np.stack([y[i], y[j]], axis=1)
    if return_index:
        return blends, labels, np.stack([i, j], axis=1).astype(np.int64)
    return blends, labels


def auroc(score, positive) -> float:
    """Area under the ROC curve of ``score`` for telling ``positive`` from the rest.

    The Mann-Whitney statistic ``P(score_pos > score_neg) + P(tie) / 2`` over
    all positive/negative pairs, from average ranks. ``NaN`` when there are no
    positives or no negatives (e.g. no misclassified test sample).
    """
    from scipy.stats import rankdata

    s = np.asarray(score, dtype=np.float64).reshape(-1)
    p = np.asarray(positive).astype(bool).reshape(-1)
    if s.shape != p.shape:
        raise ValueError(f"score has {s.size} entries but positive has {p.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError("score contains NaN or inf")
    n_pos = int(p.sum())
    n_neg = len(p) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)                        # average ranks: ties count half
    return float((ranks[p].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
