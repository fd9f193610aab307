"""Image regression of the observatory's pictures, rendered off-screen: each picture is compared with
a stored reference (tests/images/*.png) within a tolerance, and a changed colormap must fail. Movies
are read back frame by frame.

Regenerate references only when a picture is meant to change: ``python tests/images/make_references.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tissue import view as V

IMAGES = Path(__file__).resolve().parent / "images"
SIZE = (400, 320)


def _field():
    x, y, z = np.meshgrid(*(np.arange(12),) * 3, indexing="ij")
    return (np.sin(x / 2.0) * np.cos(y / 3.0) + z / 12.0 + 1) / 3


def _run_dataset():
    """A two-frame run with all three channels: activation, a velocity decaying in time, a nudge
    decaying away from the z+ face."""
    f = _field()
    z = np.arange(12)[None, None, :]
    vel = np.stack([1e-1 * (f - 0.5), 1e-4 * (f - 0.5)])[:, None]
    nud = np.stack([0 * f, 1e-2 * np.exp(-(11 - z) / 2.0) * np.ones_like(f)])[:, None]
    act = np.stack([np.clip(1.6 * f - 0.3, 0, 1)] * 2)[:, None]
    alive = np.ones(f.shape, np.uint8)
    alive[:3, :3, :] = 0
    role = np.zeros(f.shape, np.int8)
    role[:, :, 0], role[:, :, -1] = 1, 2
    dims = ("time", "trial", "x", "y", "z")
    return xr.Dataset(
        {"activation": (dims, act), "velocity": (dims, vel), "nudge": (dims, nud),
         "alive": (("x", "y", "z"), alive), "role": (("x", "y", "z"), role)},
        coords={"time": [0.0, 5.0], "trial": [0], "x": np.arange(12), "y": np.arange(12), "z": np.arange(12)},
        attrs={"tol": 1e-3})


def _lesion():
    f = _field()
    idx = np.indices(f.shape)
    lesion = ((idx - np.array([4, 7, 6])[:, None, None, None]) ** 2).sum(0) <= 6
    newborn = ((idx - np.array([9, 3, 8])[:, None, None, None]) ** 2).sum(0) <= 2
    return f, lesion, newborn


def render_slices(path, cmap="viridis"):
    return V.orthogonal_slices_png(_field(), path, window_size=SIZE, cmap=cmap)


def render_rgb_plane(path):
    return V.rgb_plane_png(_run_dataset(), path, time=-1, axis="x", index=6, figsize=(4.0, 3.6))


def render_rgb_slices(path):
    return V.rgb_slices_png(_run_dataset(), path, time=-1, window_size=SIZE)


def render_highlight(path, cmap="viridis"):
    f, lesion, newborn = _lesion()
    return V.highlight_png(f, path, alive=~lesion, lesioned=lesion, newborn=newborn, window_size=SIZE, cmap=cmap)


RENDERERS = {"slices": render_slices, "rgb_plane": render_rgb_plane, "rgb_slices": render_rgb_slices,
             "highlight": render_highlight}


def _read(path) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(path)[..., :3].astype(np.float64)


def _differs(a, b) -> tuple[float, float]:
    """(mean absolute difference, share of pixels off by more than 0.25 in some channel)."""
    if a.shape != b.shape:
        return 1.0, 1.0
    d = np.abs(a - b)
    return float(d.mean()), float((d.max(axis=-1) > 0.25).mean())


def _same(a, b) -> bool:
    mean, off = _differs(a, b)
    return mean < 0.01 and off < 0.005


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_picture_matches_its_reference(name, tmp_path):
    ref = _read(IMAGES / f"{name}.png")
    assert ref.std() > 0.05 and len(np.unique(ref.reshape(-1, 3), axis=0)) > 30   # a real picture
    got = _read(RENDERERS[name](tmp_path / f"{name}.png"))
    assert _same(got, ref), f"{name}: differs from tests/images/{name}.png by {_differs(got, ref)}"


@pytest.mark.parametrize("name", ["slices", "highlight"])
def test_a_changed_colormap_fails_the_comparison(name, tmp_path):
    ref = _read(IMAGES / f"{name}.png")
    other = _read(RENDERERS[name](tmp_path / "plasma.png", cmap="plasma"))
    assert not _same(other, ref)


def test_rgb_channels_follow_the_data():
    """Red is the activation itself; green and blue are log magnitudes relative to their top."""
    ds = _run_dataset()
    rgb, tops = V.rgb_composite(ds.activation[-1, 0], ds.velocity[-1, 0], ds.nudge[-1, 0], ds.alive,
                                decades=3.0)
    act = ds.activation.values[-1, 0]
    live = ds.alive.values.astype(bool)
    np.testing.assert_allclose(rgb[..., 0][live], act[live])
    assert np.isnan(rgb[~live]).all()
    nud = np.abs(ds.nudge.values[-1, 0])
    assert tops["nudge"] == pytest.approx(nud[live].max())
    want_b = np.clip(1 + np.log10(nud / tops["nudge"]) / 3.0, 0, 1)
    np.testing.assert_allclose(rgb[..., 2][live], want_b[live], atol=1e-12)
    # the z+ face carries the largest nudge: blue 1 there, fading towards z- by 11/2 e-folds
    assert rgb[3:, 3:, -1, 2].min() == pytest.approx(1.0)
    assert rgb[3:, 3:, 0, 2].max() == pytest.approx(1 - 5.5 / np.log(10) / 3.0)
    assert np.all(np.diff(rgb[5, 5, :, 2]) > 0)


def test_pinned_and_oscillating_masks():
    a = np.array([0.0, 1e-9, 0.5, 1.0, 0.999])
    assert V.pinned_mask(a).tolist() == [True, True, False, True, False]
    t = np.arange(12)
    v = np.stack([np.cos(np.pi * t) * 0.1, np.exp(-t) * 0.1, np.zeros(12)], axis=1)   # flip, decay, rest
    assert V.oscillating_mask(v, tol=1e-3).tolist() == [True, False, False]


@pytest.mark.slow
def test_settling_gif_frames_differ_early_and_converge(tmp_path):
    import imageio.v3 as iio

    from dynamics import Langevin
    from tissue import Tissue

    t = Tissue.cube((10, 10, 6), stencil=26, weight_scale=0.3, bias=0.05, seed=1)
    eng = Langevin(dt=0.3, tol=1e-5, max_steps=3000)
    init = np.random.default_rng(2).random((1, t.n))
    res = eng.settle(t, init=init, record=True)
    ds = res.trajectory
    assert bool(res.converged[0]) and ds.sizes["time"] > 40
    path = V.animate(ds, tmp_path / "settle.gif", axis="z", index=3, max_frames=40)
    frames = iio.imread(path, index=None)[..., :3].astype(np.float64) / 255
    assert frames.shape[0] == 40
    early = np.abs(frames[1] - frames[0]).mean()
    late = np.abs(frames[-1] - frames[-2]).mean()
    assert early > 5e-3                                   # the first frames move
    assert late < 0.1 * early                             # the last ones have converged
    # the movie shows the data: its last frame is the last recorded plane, drawn with fixed limits
    first_to_last = np.abs(frames[-1] - frames[0]).mean()
    assert first_to_last > early
    with pytest.raises(ValueError, match=".gif or .mp4"):
        V.animate(ds, tmp_path / "settle.avi")
