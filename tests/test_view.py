"""Pictures: voxels land in the right VTK cells, off-screen slices are real images that
follow the data, and the energy/overlap plot is drawn."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tissue.view import orthogonal_slices_png, plot_energy_overlap, to_image_data


def _png(path) -> np.ndarray:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(path)[..., :3]


def test_image_data_cells_hold_their_voxels():
    rng = np.random.default_rng(0)
    v = rng.random((5, 4, 3))
    alive = rng.random((5, 4, 3)) > 0.3
    grid = to_image_data(v, alive=alive)
    assert grid.n_cells == v.size
    centres = grid.cell_centers().points
    ijk = np.rint(centres).astype(int)
    assert np.allclose(centres, ijk)             # cell centres sit on integer voxel coordinates
    got = grid.cell_data["activation"]
    want = np.where(alive, v, np.nan)[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
    np.testing.assert_array_equal(got, want)     # NaN exactly at dead voxels


def test_image_data_keeps_the_position_of_a_subregion():
    da = xr.DataArray(np.ones((2, 3, 4)), dims=("x", "y", "z"),
                      coords={"x": [5, 6], "y": [1, 2, 3], "z": [0, 1, 2, 3]})
    grid = to_image_data(da.transpose("z", "x", "y"))      # dims in any order
    np.testing.assert_allclose(grid.bounds[::2], [4.5, 0.5, -0.5])
    np.testing.assert_allclose(grid.bounds[1::2], [6.5, 3.5, 3.5])


@pytest.fixture(scope="module")
def field():
    x, y, z = np.meshgrid(*(np.arange(12),) * 3, indexing="ij")
    return (np.sin(x / 2.0) * np.cos(y / 3.0) + z / 12.0 + 1) / 3


def test_slices_png_varies_and_follows_the_data(tmp_path, field):
    a = _png(orthogonal_slices_png(field, tmp_path / "a.png", window_size=(400, 320)))
    assert a.shape == (320, 400, 3)
    assert a.std() > 0.05 and len(np.unique(a.reshape(-1, 3), axis=0)) > 50   # not a blank canvas
    b = _png(orthogonal_slices_png(1 - field, tmp_path / "b.png", window_size=(400, 320)))
    assert np.abs(a - b).mean() > 0.01            # other data, other picture
    alive = np.ones(field.shape, bool)
    alive[:, :, 6:] = False                      # kill the upper half: the z slice's top is cut away
    c = _png(orthogonal_slices_png(field, tmp_path / "c.png", alive=alive, window_size=(400, 320)))
    assert np.abs(a - c).mean() > 0.005
    white = np.all(c > 0.98, axis=-1).mean()
    assert white > np.all(a > 0.98, axis=-1).mean()  # more background shows through


def test_energy_overlap_plot(tmp_path):
    t = np.arange(50) * 0.2
    ds = xr.Dataset(
        {"energy": (("time", "trial"), np.stack([np.exp(-t), 2 * np.exp(-t)], 1)),
         "overlap": (("time", "trial", "pattern"), np.stack([np.stack([1 - np.exp(-t), 0 * t], 1)] * 2, 1)),
         "target": ("trial", [0, 0])},
        coords={"time": t}, attrs={"phase_starts": "[0, 20]", "temperature": "[0.1, 0.0]", "dt": 0.2})
    for scale in ("linear", "symlog"):
        img = _png(plot_energy_overlap(ds, tmp_path / f"p_{scale}.png", xscale=scale))
        assert img.shape[0] > 300 and img.std() > 0.05
    with pytest.raises(ValueError, match="xscale"):
        plot_energy_overlap(ds, tmp_path / "bad.png", xscale="log2")


def test_synapse_lines_are_the_synapses_inside_the_box():
    from tissue import Tissue
    from tissue.view import synapse_lines

    t = Tissue.cube((6, 6, 6), stencil=26, small_world=0.2, seed=4)
    t.kill(t.lattice.ball((2, 2, 2), 1.0))
    lo, hi = (1, 0, 1), (5, 4, 6)
    poly = synapse_lines(t, lo, hi)
    # the reference: the scipy export, restricted to living voxels inside [lo, hi)
    a = t.to_scipy().tocoo()
    c = t.lattice.coords()
    inside = np.all((c >= lo) & (c < hi), axis=1) & t.alive
    keep = (a.row < a.col) & inside[a.row] & inside[a.col]
    assert poly.n_cells == keep.sum()
    want = {frozenset((tuple(c[i]), tuple(c[j]))) for i, j in zip(a.row[keep], a.col[keep])}
    seg = poly.lines.reshape(-1, 3)[:, 1:]
    pts = np.rint(poly.points).astype(int)
    got = {frozenset((tuple(pts[p]), tuple(pts[q]))) for p, q in seg}
    assert got == want
    np.testing.assert_allclose(np.sort(poly.cell_data["weight"]), np.sort(a.data[keep]), rtol=1e-6)


def test_threshold_and_volume_pictures_follow_the_data(tmp_path, field):
    from tissue.view import threshold_png, volume_png

    hi = _png(threshold_png(field, tmp_path / "t1.png", 0.6, window_size=(400, 320)))
    lo = _png(threshold_png(field, tmp_path / "t2.png", 0.2, window_size=(400, 320)))
    white = lambda im: np.all(im > 0.98, axis=-1).mean()  # noqa: E731
    assert white(hi) > white(lo) + 0.05                  # a higher threshold shows fewer voxels
    vol = _png(volume_png(field, tmp_path / "v.png", window_size=(400, 320)))
    assert vol.std() > 0.02 and len(np.unique(vol.reshape(-1, 3), axis=0)) > 50
