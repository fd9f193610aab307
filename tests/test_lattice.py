"""The lattice: index <-> coordinates and named regions, against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tissue import FACES, Lattice

SHAPES = [(1, 1, 1), (1, 5, 7), (4, 1, 3), (3, 4, 5), (6, 6, 6), (2, 7, 1)]


def all_coords(shape):
    """Every (x, y, z) with its C-order position, by plain Python loops."""
    return list(itertools.product(*(range(n) for n in shape)))


def brute_region(shape, predicate):
    """Sorted indices of the voxels whose (x, y, z) satisfy ``predicate``."""
    nx, ny, nz = shape
    return np.array([(x * ny + y) * nz + z for x, y, z in all_coords(shape) if predicate(x, y, z)],
                    dtype=np.int64)


def assert_region(got, expected):
    assert got.dtype == np.int64
    assert np.all(np.diff(got) > 0), "region must be sorted and duplicate-free"
    np.testing.assert_array_equal(got, expected)


# ----------------------------------------------------------------- indexing
@pytest.mark.parametrize("shape", SHAPES)
def test_index_coords_round_trip(shape):
    lat = Lattice(shape)
    n = int(np.prod(shape))
    assert lat.size == n
    c = lat.coords()
    assert c.shape == (n, 3) and c.dtype == np.int64
    # the C-order contract, checked against numpy's own ravel/unravel
    np.testing.assert_array_equal(np.ravel_multi_index(tuple(c.T), shape), np.arange(n))
    np.testing.assert_array_equal(c, np.array(all_coords(shape)))
    np.testing.assert_array_equal(lat.index(c[:, 0], c[:, 1], c[:, 2]), np.arange(n))
    idx = np.random.default_rng(0).integers(0, n, size=50)
    np.testing.assert_array_equal(lat.coords(idx), np.stack(np.unravel_index(idx, shape), -1))


def test_index_broadcasts_and_scalar():
    lat = Lattice((3, 4, 5))
    assert int(lat.index(2, 3, 4)) == np.ravel_multi_index((2, 3, 4), (3, 4, 5))
    got = lat.index(np.arange(3)[:, None, None], np.arange(4)[None, :, None], np.arange(5))
    np.testing.assert_array_equal(got, np.arange(60).reshape(3, 4, 5))


@pytest.mark.parametrize("xyz", [(-1, 0, 0), (3, 0, 0), (0, 4, 0), (0, 0, 5), (0, -2, 1)])
def test_index_outside_raises(xyz):
    with pytest.raises(IndexError, match="outside the lattice"):
        Lattice((3, 4, 5)).index(*xyz)


@pytest.mark.parametrize("bad", [-1, 60, [0, 60]])
def test_coords_outside_raises(bad):
    with pytest.raises(IndexError):
        Lattice((3, 4, 5)).coords(bad)


def test_grid_and_positions():
    shape = (3, 4, 5)
    lat = Lattice(shape, spacing=0.25)
    g = lat.grid(np.arange(lat.size))
    for x, y, z in all_coords(shape):
        assert g[x, y, z] == (x * 4 + y) * 5 + z
    two = lat.grid(np.stack([np.arange(60), -np.arange(60)], axis=1))
    assert two.shape == (3, 4, 5, 2) and two[2, 1, 3, 1] == -((2 * 4 + 1) * 5 + 3)
    np.testing.assert_allclose(lat.positions, np.array(all_coords(shape)) * 0.25)


@pytest.mark.parametrize("shape", [(0, 2, 2), (2, -1, 2), (2, 2)])
def test_bad_shape_raises(shape):
    with pytest.raises(ValueError, match="shape"):
        Lattice(shape)


@pytest.mark.parametrize("spacing", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_spacing_raises(spacing):
    with pytest.raises(ValueError, match="spacing"):
        Lattice((2, 2, 2), spacing)


# ------------------------------------------------------------------ regions
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", FACES)
def test_faces_brute_force(shape, name):
    lat = Lattice(shape)
    a = "xyz".index(name[0])
    n = shape[a]
    for depth in sorted({1, n}):
        if name[1] == "-":
            pred = lambda *c: c[a] < depth  # noqa: E731
        else:
            pred = lambda *c: c[a] >= n - depth  # noqa: E731
        assert_region(lat.face(name, depth), brute_region(shape, pred))


@pytest.mark.parametrize("shape", SHAPES)
def test_boxes_brute_force(shape):
    lat = Lattice(shape)
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        lo = [int(rng.integers(0, n)) for n in shape]
        hi = [int(rng.integers(l + 1, n + 1)) for l, n in zip(lo, shape)]
        pred = lambda x, y, z: all(l <= c < h for c, l, h in zip((x, y, z), lo, hi))  # noqa: E731
        assert_region(lat.box(lo, hi), brute_region(shape, pred))
    assert_region(lat.box((0, 0, 0), shape), np.arange(lat.size))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("axis", [0, 1, 2, "x", "y", "z"])
def test_slabs_brute_force(shape, axis):
    lat = Lattice(shape)
    a = axis if isinstance(axis, int) else "xyz".index(axis)
    n = shape[a]
    for lo in range(n):
        assert_region(lat.slab(axis, lo), brute_region(shape, lambda *c: c[a] == lo))
        for hi in range(lo + 1, n + 1):
            assert_region(lat.slab(axis, lo, hi), brute_region(shape, lambda *c: lo <= c[a] < hi))


@pytest.mark.parametrize("center,radius", [
    ((3, 3, 3), 0.0), ((3, 3, 3), 1.0), ((3, 3, 3), 2.0), ((3, 3, 3), 2.5), ((0, 0, 0), 3.0),
    ((1.5, 2.0, 4.5), 1.7), ((5, 0, 2), 10.0), ((2.2, 3.1, 0.4), 1.0),
])
def test_balls_brute_force(center, radius):
    shape = (6, 5, 7)
    lat = Lattice(shape)
    cx, cy, cz = center
    # exact for these centres: squared distances and radii are representable sums
    pred = lambda x, y, z: (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius**2 + 1e-12  # noqa: E731
    got = lat.ball(center, radius)
    assert_region(got, brute_region(shape, pred))
    # the bounding box of the region, against the brute-force extent of its coordinates
    pts = [c for c in all_coords(shape) if pred(*c)]
    lo = tuple(min(p[a] for p in pts) for a in range(3))
    hi = tuple(max(p[a] for p in pts) + 1 for a in range(3))
    assert lat.bounding_box(got) == (lo, hi)


def test_mask_of_region():
    lat = Lattice((3, 4, 5))
    r = lat.box((1, 1, 1), (3, 3, 4))
    m = lat.mask(r)
    assert m.dtype == bool and m.sum() == len(r) == 2 * 2 * 3
    np.testing.assert_array_equal(np.flatnonzero(m), r)


# ----------------------------------------------- regions outside the lattice
@pytest.mark.parametrize("call,match", [
    (lambda l: l.box((0, 0, 0), (5, 4, 5)), "box along x"),
    (lambda l: l.box((0, -1, 0), (3, 2, 5)), "box along y"),
    (lambda l: l.box((0, 0, 3), (3, 4, 3)), "box along z.*non-empty"),
    (lambda l: l.box((0, 0), (3, 4)), "three coordinates"),
    (lambda l: l.slab("y", 4), "box along y"),
    (lambda l: l.slab("z", 2, 9), "box along z"),
    (lambda l: l.slab("w", 0), "axis"),
    (lambda l: l.slab(3, 0), "axis"),
    (lambda l: l.face("x+", 4), "depth"),
    (lambda l: l.face("y-", 0), "depth"),
    (lambda l: l.face("top"), "face must be one of"),
    (lambda l: l.ball((3.5, 0, 0), 1.0), "outside the lattice"),
    (lambda l: l.ball((0, -0.1, 0), 1.0), "outside the lattice"),
    (lambda l: l.ball((0, 0), 1.0), "three finite numbers"),
    (lambda l: l.ball((0, 0, float("nan")), 1.0), "three finite numbers"),
    (lambda l: l.ball((1, 1, 1), -1.0), "radius"),
    (lambda l: l.bounding_box(np.zeros(0, np.int64)), "empty region"),
])
def test_out_of_lattice_regions_raise(call, match):
    lat = Lattice((3, 4, 5))
    with pytest.raises(ValueError, match=match):
        call(lat)
