"""Pictures of a tissue and its runs: PyVista volumes and slices, matplotlib planes, curves, movies.

Everything renders off-screen (no display needed) and writes PNG/GIF files:

- :func:`frame` picks one field ``(x, y, z)`` of a run at a time and a trial;
- :func:`to_image_data` puts a per-voxel field on a ``pyvista.ImageData``
  with one *cell* per voxel (cell centres at the integer voxel coordinates),
  dead voxels as NaN;
- 3D (PyVista): :func:`orthogonal_slices_png` (three slices, dead voxels cut
  out), :func:`threshold_png`, :func:`volume_png`, :func:`highlight_png`
  (lesioned and newborn neurons marked), :func:`synapse_lines` /
  :func:`synapses_png` (the wiring of a sub-volume as lines);
- 2D (matplotlib): :func:`plane_png`, one plane at any index;
- the three-channel view: :func:`rgb_composite` (red = activation, green =
  settling speed, blue = nudge), :func:`rgb_plane_png` (one plane, with an
  overlay for units pinned at the clip bounds or oscillating) and
  :func:`rgb_slices_png` (in 3D);
- :func:`animate`: a movie (GIF; MP4 when ffmpeg is available) of a plane
  over a run's time (settling, dreaming) or epochs (learning);
- in JupyterLab: :func:`explore` (sliders over time and plane) and
  :func:`show3d` (interactive with trame, a static picture otherwise);
- :func:`plot_energy_overlap` draws the energy and the pattern overlap of
  every trial of a run against model time.
"""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

import numpy as np

__all__ = [
    "animate", "explore", "frame", "highlight_png", "oscillating_mask", "orthogonal_slices_png", "pinned_mask",
    "plane_png", "plot_energy_overlap", "rgb_composite", "rgb_plane_png", "rgb_slices_png", "show3d",
    "synapse_lines", "synapses_png", "threshold_png", "to_image_data", "volume_png",
]

AXIS_NAMES = ("x", "y", "z")


def _pyvista():
    """Import PyVista for off-screen rendering.

    Without a display, VTK first tries X and warns before falling back; when
    ``libEGL`` is present we ask for the EGL render window straight away
    (``VTK_DEFAULT_OPENGL_WINDOW``, unless the user has set it).
    """
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") \
            and ctypes.util.find_library("EGL"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv

    pv.OFF_SCREEN = True
    return pv


def _grid_values(values, alive=None):
    """``(values (nx, ny, nz) float64, origin (3,))`` from an array or an ``xarray.DataArray``."""
    origin = np.zeros(3)
    if hasattr(values, "dims"):  # xarray.DataArray with dims x, y, z
        values = values.transpose("x", "y", "z")
        origin = np.array([float(values[a].values[0]) if a in values.coords else 0.0 for a in "xyz"])
        values = values.values
    v = np.array(values, dtype=np.float64)
    if v.ndim != 3:
        raise ValueError(f"expected a 3D (x, y, z) field, got shape {v.shape}")
    if alive is not None:
        alive = np.asarray(getattr(alive, "values", alive), dtype=bool)
        if alive.shape != v.shape:
            alive = alive.reshape(v.shape)
        v[~alive] = np.nan
    return v, origin


def to_image_data(values, alive=None, spacing: float = 1.0, name: str = "activation"):
    """A ``pyvista.ImageData`` with one cell per voxel carrying ``values``.

    Parameters
    ----------
    values : array (nx, ny, nz) or xarray.DataArray with dims x, y, z
        The field (e.g. ``ds.activation.isel(time=-1, trial=0)``); a DataArray's
        ``x, y, z`` coordinates place the grid (a recorded sub-region stays
        where it is in the lattice).
    alive : array of bool, optional
        Living voxels (same shape, or flat ``N``); the others become NaN.
    spacing : float
        Voxel edge length.
    name : str
        Name of the cell array.

    Returns
    -------
    pyvista.ImageData
        Cell ``(i, j, k)`` is centred at ``origin + spacing * (i, j, k)``.
    """
    pv = _pyvista()
    v, origin = _grid_values(values, alive)
    grid = pv.ImageData(dimensions=np.array(v.shape) + 1, spacing=(spacing,) * 3,
                        origin=tuple(spacing * (origin - 0.5)))
    grid.cell_data[name] = v.ravel(order="F")  # VTK: x varies fastest
    return grid


def _render(path, add, bounds_grid, title=None, window_size=(900, 750)) -> Path:
    """Open an off-screen plotter, let ``add(plotter)`` add meshes, frame the scene and save a PNG."""
    pv = _pyvista()
    plotter = pv.Plotter(off_screen=True, window_size=list(window_size))
    try:
        plotter.set_background("white")
        add(plotter)
        plotter.add_mesh(bounds_grid.outline(), color="black")
        if title:
            plotter.add_text(title, font_size=10, color="black")
        plotter.add_axes(color="black")
        plotter.camera_position = "iso"
        plotter.camera.zoom(0.9)
        path = Path(path)
        plotter.screenshot(str(path))
    finally:
        plotter.close()
    return path


def _slice_mesh(grid, name, x=None, y=None, z=None):
    """Three orthogonal slices through voxel centres (default: the middle voxels), dead cells cut."""
    lo = np.array(grid.origin) + 0.5 * np.array(grid.spacing)
    n = np.array(grid.dimensions) - 1
    pos = [lo[a] + n[a] // 2 if c is None else float(c) for a, c in enumerate((x, y, z))]
    mesh = grid.slice_orthogonal(x=pos[0], y=pos[1], z=pos[2]).combine()
    vals = mesh.cell_data[name]
    finite = np.isfinite(vals) if vals.ndim == 1 else np.isfinite(vals).all(axis=1)
    return mesh.extract_cells(np.flatnonzero(finite))


def orthogonal_slices_png(values, path, alive=None, x=None, y=None, z=None, clim=(0.0, 1.0),
                          cmap: str = "viridis", name: str = "activation", title: str | None = None,
                          window_size=(900, 750)) -> Path:
    """Render three orthogonal slices (through voxel centres) of a field to a PNG.

    Parameters
    ----------
    values, alive
        As for :func:`to_image_data`; dead voxels are cut out of the slices.
    x, y, z : int, optional
        Voxel indices of the slices (default: the middle voxel along each axis).
    clim : (float, float) or None
        Colour limits (None: the data range).
    cmap : str
        A matplotlib colormap name (``"twilight"`` for phases).
    title : str, optional
        Text in the upper-left corner.

    Returns
    -------
    Path
        ``path``.
    """
    grid = to_image_data(values, alive, name=name)
    mesh = _slice_mesh(grid, name, x, y, z)

    def add(plotter):
        if mesh.n_cells:
            plotter.add_mesh(mesh, scalars=name, cmap=cmap, clim=clim,
                             scalar_bar_args={"title": name, "color": "black"})

    return _render(path, add, grid, title, window_size)


def threshold_png(values, path, value: float = 0.5, alive=None, clim=(0.0, 1.0), cmap: str = "viridis",
                  name: str = "activation", title: str | None = None, window_size=(900, 750)) -> Path:
    """Render the voxels whose value is at least ``value`` as solid cubes (dead voxels never shown)."""
    grid = to_image_data(values, alive, name=name)
    vals = grid.cell_data[name]
    keep = np.flatnonzero(np.isfinite(vals) & (vals >= value))
    mesh = grid.extract_cells(keep)

    def add(plotter):
        if mesh.n_cells:
            plotter.add_mesh(mesh, scalars=name, cmap=cmap, clim=clim, show_edges=False,
                             scalar_bar_args={"title": f"{name} >= {value:g}", "color": "black"})

    return _render(path, add, grid, title, window_size)


def volume_png(values, path, alive=None, clim=(0.0, 1.0), cmap: str = "viridis", name: str = "activation",
               opacity="linear", title: str | None = None, window_size=(900, 750)) -> Path:
    """Volume-render a field (dead voxels transparent); ``opacity`` is a PyVista transfer function."""
    grid = to_image_data(values, alive, name=name)
    vals = np.array(grid.cell_data[name])
    lo = clim[0] if clim is not None else float(np.nanmin(vals))
    grid.cell_data[name] = np.where(np.isfinite(vals), vals, lo)   # dead: the transparent end
    point_grid = grid.cell_data_to_point_data()

    def add(plotter):
        plotter.add_volume(point_grid, scalars=name, cmap=cmap, clim=clim, opacity=opacity,
                           scalar_bar_args={"title": name, "color": "black"})

    return _render(path, add, grid, title, window_size)


def _mask_grid(mask, shape) -> np.ndarray:
    m = np.asarray(getattr(mask, "values", mask), dtype=bool)
    return m.reshape(shape)


def highlight_png(values, path, alive=None, lesioned=None, newborn=None, x=None, y=None, z=None,
                  clim=(0.0, 1.0), cmap: str = "viridis", name: str = "activation", title: str | None = None,
                  window_size=(900, 750)) -> Path:
    """Orthogonal slices of a field with lesioned neurons as red and newborn ones as green cubes.

    Parameters
    ----------
    lesioned, newborn : bool arrays (nx, ny, nz) or flat (N,), optional
        Voxels to mark (e.g. from the lesion record, or living voxels that were dead before).
    """
    pv = _pyvista()
    grid = to_image_data(values, alive, name=name)
    mesh = _slice_mesh(grid, name, x, y, z)
    shape = tuple(np.array(grid.dimensions) - 1)
    marks = []
    for mask, color in ((lesioned, "red"), (newborn, "lime")):
        if mask is None:
            continue
        m = _mask_grid(mask, shape)
        cubes = pv.ImageData(dimensions=grid.dimensions, spacing=grid.spacing, origin=grid.origin)
        cubes.cell_data["m"] = m.ravel(order="F").astype(np.uint8)
        marks.append((cubes.extract_cells(np.flatnonzero(m.ravel(order="F"))), color))

    def add(plotter):
        if mesh.n_cells:
            plotter.add_mesh(mesh, scalars=name, cmap=cmap, clim=clim,
                             scalar_bar_args={"title": name, "color": "black"})
        for cubes, color in marks:
            if cubes.n_cells:
                plotter.add_mesh(cubes, color=color, opacity=0.55, show_edges=True, edge_color=color)

    return _render(path, add, grid, title, window_size)


def synapse_lines(tissue, lo=(0, 0, 0), hi=None):
    """The synapses of the sub-volume ``[lo, hi)`` as a ``pyvista.PolyData`` of lines.

    Points are the living voxels of the box (at their voxel coordinates), one line per synapse
    with both ends inside, with its weight as the cell array ``weight``.
    """
    pv = _pyvista()
    lat = tissue.lattice
    hi = lat.shape if hi is None else tuple(hi)
    box = lat.box(tuple(lo), hi)
    inside = np.zeros(tissue.n, bool)
    inside[box] = True
    inside &= tissue.alive
    i, j, w = tissue.syn.edges()
    keep = inside[i] & inside[j]
    i, j, w = i[keep], j[keep], w[keep]
    used = np.unique(np.concatenate([i, j]))
    where = np.full(tissue.n, -1, dtype=np.int64)
    where[used] = np.arange(len(used))
    points = lat.coords(used).astype(np.float64)
    lines = np.column_stack([np.full(len(i), 2), where[i], where[j]]).ravel()
    poly = pv.PolyData(points, lines=lines) if len(i) else pv.PolyData(points)
    if len(i):
        poly.cell_data["weight"] = np.asarray(w, dtype=np.float64)
    return poly


def synapses_png(tissue, path, lo=(0, 0, 0), hi=None, cmap: str = "coolwarm", title: str | None = None,
                 window_size=(900, 750)) -> Path:
    """Render the synapses of a sub-volume as lines coloured by weight (symmetric colour limits)."""
    pv = _pyvista()
    poly = synapse_lines(tissue, lo, hi)
    hi = tissue.lattice.shape if hi is None else tuple(hi)
    box = pv.ImageData(dimensions=np.subtract(hi, lo) + 1, origin=tuple(np.asarray(lo) - 0.5))

    def add(plotter):
        if poly.n_cells:
            wmax = float(np.abs(poly.cell_data["weight"]).max()) or 1.0
            plotter.add_mesh(poly, scalars="weight", cmap=cmap, clim=(-wmax, wmax), line_width=2,
                             scalar_bar_args={"title": "weight", "color": "black"})
        plotter.add_points(poly.points, color="black", point_size=4, render_points_as_spheres=True)

    return _render(path, add, box, title, window_size)


# ------------------------------------------------------------------ runs: frames and planes
def frame(ds, var: str = "activation", time: int = -1, trial: int = 0):
    """One ``(x, y, z)`` field of a run: variable ``var`` at time index ``time`` (or epoch index,
    for runs stored per epoch) and trial ``trial``, as an ``xarray.DataArray``."""
    grid_vars = [k for k, v in ds.data_vars.items() if {"x", "y", "z"} <= set(v.dims)]
    if var not in ds:
        raise ValueError(f"variable {var!r} is not in this store; per-voxel variables here: "
                         f"{', '.join(grid_vars) or 'none'}")
    da = ds[var]
    for dim, idx in (("time", time), ("epoch", time), ("trial", trial)):
        if dim in da.dims:
            n = da.sizes[dim]
            if not -n <= int(idx) < n:
                raise ValueError(f"{dim} index {idx} is out of range: the store has {n} "
                                 f"(use 0..{n - 1}, or -1 for the last)")
            da = da.isel({dim: int(idx)})
    extra = [d for d in da.dims if d not in AXIS_NAMES]
    if extra or not {"x", "y", "z"} <= set(da.dims):
        raise ValueError(f"variable {var!r} has dims {da.dims}; a frame needs (x, y, z) "
                         f"after choosing time and trial")
    return da.transpose("x", "y", "z")


def _axis(axis) -> int:
    if isinstance(axis, str) and axis in AXIS_NAMES:
        return AXIS_NAMES.index(axis)
    if axis in (0, 1, 2):
        return int(axis)
    raise ValueError(f"axis must be one of 'x', 'y', 'z', got {axis!r}")


def _plane(v: np.ndarray, axis, index):
    """The plane ``axis = index`` of a (nx, ny, nz[, c]) array, as an image (rows = the second
    remaining axis, columns = the first); returns ``(image, (col_axis, row_axis), index)``."""
    a = _axis(axis)
    n = v.shape[a]
    index = n // 2 if index is None else int(index)
    if not -n <= index < n:
        raise ValueError(f"plane {AXIS_NAMES[a]}={index} is outside the tissue (0..{n - 1})")
    index %= n
    img = np.take(v, index, axis=a)
    rest = [AXIS_NAMES[k] for k in range(3) if k != a]
    return np.swapaxes(img, 0, 1), tuple(rest), index


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plane_png(values, path, axis="z", index: int | None = None, alive=None, cmap: str = "viridis",
              clim=(0.0, 1.0), name: str = "activation", title: str | None = None, figsize=(5.0, 4.2)) -> Path:
    """One plane of a field as a flat image (matplotlib), dead voxels light grey.

    Parameters
    ----------
    values, alive
        As for :func:`to_image_data`.
    axis : {"x", "y", "z"}
        The axis the plane is normal to.
    index : int, optional
        Voxel index of the plane along ``axis`` (default: the middle; negative counts from the end).
    """
    import matplotlib as mpl

    v, _ = _grid_values(values, alive)
    img, (cx, cy), index = _plane(v, axis, index)
    fig = _figure(figsize)
    ax = fig.add_subplot()
    cm = mpl.colormaps[cmap].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(img), origin="lower", cmap=cm,
                   vmin=None if clim is None else clim[0], vmax=None if clim is None else clim[1],
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, label=name, shrink=0.85)
    ax.set_xlabel(cx)
    ax.set_ylabel(cy)
    ax.set_title(title or f"{name}, plane {AXIS_NAMES[_axis(axis)]} = {index}", fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


# ------------------------------------------------------------------ the three-channel view
def _channel(a, scale: str, decades: float, top: float | None):
    """Map magnitudes ``|a|`` to [0, 1]: linear up to ``top``, or logarithmic over ``decades``
    below ``top`` (default top: the largest magnitude present)."""
    m = np.abs(a)
    if top is None:
        top = float(np.nanmax(m)) if np.isfinite(m).any() else 0.0
    if not top > 0:
        return np.zeros_like(m), 0.0
    if scale == "linear":
        return np.clip(m / top, 0, 1), top
    if scale != "log":
        raise ValueError(f"scale must be 'log' or 'linear', got {scale!r}")
    with np.errstate(divide="ignore"):
        c = 1.0 + np.log10(np.maximum(m, 1e-300) / top) / decades
    return np.clip(c, 0, 1), top


def rgb_composite(activation, velocity=None, nudge=None, alive=None, scale: str = "log", decades: float = 3.0,
                  vmax: float | None = None, nmax: float | None = None):
    """The three-channel view: red = activation, green = settling speed ``|ds/dt|``, blue = ``|nudge|``.

    Parameters
    ----------
    activation : array (nx, ny, nz) (or any shape)
        Rates, shown as they are (clipped to [0, 1]).
    velocity, nudge : arrays of the same shape, optional
        Missing channels are black.
    alive : bool array, optional
        Dead voxels become NaN in all three channels.
    scale : {"log", "linear"}
        Speed and nudge span many orders of magnitude: by default each channel shows ``decades``
        decades below its top value.
    vmax, nmax : float, optional
        Top values of the green and blue channels (default: the largest present); fix them to
        compare frames.

    Returns
    -------
    rgb : float array (..., 3) in [0, 1] (NaN at dead voxels)
    tops : dict
        ``{"velocity": vmax, "nudge": nmax}`` as used.
    """
    a = np.asarray(getattr(activation, "values", activation), dtype=np.float64)
    r = np.clip(a, 0, 1)
    g, vtop = (np.zeros_like(a), 0.0) if velocity is None else _channel(
        np.asarray(getattr(velocity, "values", velocity), dtype=np.float64), scale, decades, vmax)
    b, ntop = (np.zeros_like(a), 0.0) if nudge is None else _channel(
        np.asarray(getattr(nudge, "values", nudge), dtype=np.float64), scale, decades, nmax)
    rgb = np.stack([r, g, b], axis=-1)
    if alive is not None:
        rgb[~np.asarray(getattr(alive, "values", alive), dtype=bool).reshape(a.shape)] = np.nan
    return rgb, {"velocity": vtop, "nudge": ntop}


def pinned_mask(activation, lo: float = 0.0, hi: float = 1.0, eps: float = 1e-6):
    """Units pinned at the clip bounds of the hard sigmoid (rate <= lo + eps or >= hi - eps)."""
    a = np.asarray(getattr(activation, "values", activation))
    return (a <= lo + eps) | (a >= hi - eps)


def oscillating_mask(velocity, window: int = 12, tol: float = 1e-3, flips: int = 2):
    """Units whose velocity changes sign at least ``flips`` times (while above ``tol``) over the
    last ``window`` frames of a ``(time, ...)`` series: oscillating instead of settling."""
    v = np.asarray(getattr(velocity, "values", velocity))[-int(window):]
    sign = np.where(np.abs(v) > tol, np.sign(v), 0)
    changes = (sign[1:] * sign[:-1] < 0).sum(axis=0)
    return changes >= flips


def _rgb_inputs(ds, time, trial):
    """Activation, velocity and nudge frames of a run (None for what is not recorded), the living
    mask and the oscillation mask of the frames up to ``time``."""
    act = frame(ds, "activation", time, trial).values
    vel = frame(ds, "velocity", time, trial).values if "velocity" in ds else None
    nud = frame(ds, "nudge", time, trial).values if "nudge" in ds else None
    alive = ds.alive.values.astype(bool) if "alive" in ds else None
    osc = None
    if "velocity" in ds and "time" in ds.velocity.dims:
        n = ds.sizes["time"]
        t = time % n
        series = ds.velocity.isel(time=slice(max(0, t - 11), t + 1), trial=trial).transpose("time", "x", "y", "z")
        osc = oscillating_mask(series.values, tol=float(ds.attrs.get("tol", 1e-3)))
    return act, vel, nud, alive, osc


def rgb_plane_png(ds, path, time: int = -1, trial: int = 0, axis="z", index: int | None = None,
                  overlay: bool = True, scale: str = "log", decades: float = 3.0, title: str | None = None,
                  figsize=(5.6, 5.0)) -> Path:
    """The three-channel view of one plane of a run (matplotlib), with an overlay: small grey
    dots on units pinned at the clip bounds, magenta crosses on oscillating units.

    ``ds`` is a run (:func:`tissue.open_run`) with ``activation`` and, when recorded, ``velocity``
    and ``nudge`` (black channels otherwise; the legend says which).
    """
    act, vel, nud, alive, osc = _rgb_inputs(ds, time, trial)
    rgb, tops = rgb_composite(act, vel, nud, alive, scale=scale, decades=decades)
    img, (cx, cy), k = _plane(rgb, axis, index)
    fig = _figure(figsize)
    ax = fig.add_subplot()
    shown = np.where(np.isnan(img), 0.85, img)
    ax.imshow(shown, origin="lower", interpolation="nearest")
    if overlay:
        pin, _, _ = _plane(pinned_mask(act), axis, k)
        if alive is not None:
            live, _, _ = _plane(alive, axis, k)
            pin = pin & live
        yy, xx = np.nonzero(pin)
        ax.scatter(xx, yy, s=5, c="white", marker="o", edgecolors="black", linewidths=0.3, alpha=0.7,
                   label="pinned at a clip bound")
        if osc is not None:
            o, _, _ = _plane(osc, axis, k)
            yy, xx = np.nonzero(o)
            ax.scatter(xx, yy, s=18, c="magenta", marker="x", linewidths=0.8, label="oscillating")
    ax.set_xlabel(cx)
    ax.set_ylabel(cy)

    def lab(name, top):
        if top == 0:
            return f"{name}: {'zero' if name in ds else 'not recorded'}"
        return f"{name} (top {top:.2g}" + (f", {decades:g} decades)" if scale == "log" else ", linear)")

    t = ds.time.values[time] if "time" in ds.coords and "time" in ds.activation.dims else None
    ax.set_title(title or (f"R activation | G {lab('velocity', tops['velocity'])}\n"
                           f"B {lab('nudge', tops['nudge'])} | plane {AXIS_NAMES[_axis(axis)]} = {k}"
                           + (f", t = {t:g}" if t is not None else "")), fontsize=8)
    if overlay:
        ax.legend(loc="upper right", fontsize=6, framealpha=0.6)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def rgb_slices_png(ds, path, time: int = -1, trial: int = 0, x=None, y=None, z=None, scale: str = "log",
                   decades: float = 3.0, title: str | None = None, window_size=(900, 750)) -> Path:
    """The three-channel view in 3D: three orthogonal slices coloured by the RGB composite
    (PyVista, off-screen), dead voxels cut out."""
    act, vel, nud, alive, _ = _rgb_inputs(ds, time, trial)
    rgb, _ = rgb_composite(act, vel, nud, alive, scale=scale, decades=decades)
    pv = _pyvista()
    origin = np.array([float(ds[a].values[0]) for a in AXIS_NAMES])
    shape = np.array(act.shape)
    grid = pv.ImageData(dimensions=shape + 1, origin=tuple(origin - 0.5))
    grid.cell_data["rgb"] = np.stack([rgb[..., c].ravel(order="F") for c in range(3)], axis=1)
    mesh = _slice_mesh(grid, "rgb", x, y, z)
    colors = (np.clip(mesh.cell_data["rgb"], 0, 1) * 255).astype(np.uint8)
    mesh.cell_data["colors"] = colors

    def add(plotter):
        if mesh.n_cells:
            plotter.add_mesh(mesh, scalars="colors", rgb=True, lighting=False)

    return _render(path, add, grid, title or "R activation, G |ds/dt|, B |nudge|", window_size)


# ------------------------------------------------------------------ movies
def _frame_axis(ds, var):
    da = ds[var]
    for dim in ("time", "epoch"):
        if dim in da.dims:
            return dim
    raise ValueError(f"variable {var!r} has no time or epoch dimension to animate (dims {da.dims})")


def animate(ds, path, var: str = "activation", trial: int = 0, axis="z", index: int | None = None,
            rgb: bool = False, fps: float = 10.0, max_frames: int = 120, cmap: str = "viridis", clim=None,
            title: str | None = None, figsize=(5.0, 4.4)) -> Path:
    """A movie of one plane of a run over its time (or epochs): GIF, or MP4 when ffmpeg is present.

    Parameters
    ----------
    ds : xarray.Dataset
        A run with ``var`` over ``time`` (settling, dreaming) or ``epoch`` (learning).
    path : str or Path
        ``.gif`` (always available) or ``.mp4`` (needs imageio's ffmpeg plugin).
    rgb : bool
        Show the three-channel composite instead of ``var`` (the speed and nudge scales are fixed
        over the movie, so frames compare).
    max_frames : int
        Frames are taken evenly over the run (the first and the last always).
    clim : (float, float), optional
        Colour limits of ``var`` (default: (0, 1) for activation, else the range over the frames).

    Returns
    -------
    Path
    """
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"a movie is written as .gif or .mp4, got {path.name!r}")
    dim = _frame_axis(ds, "activation" if rgb else var)
    n = ds.sizes[dim]
    picks = np.unique(np.linspace(0, n - 1, min(n, int(max_frames))).round().astype(int))
    fig = _figure(figsize)
    ax = fig.add_subplot()
    label = ds[dim].values if dim in ds.coords else np.arange(n)
    alive = ds.alive.values.astype(bool) if "alive" in ds else None
    frames = []
    if rgb:
        tops = {}
        for name in ("velocity", "nudge"):
            if name in ds:
                tops[name] = float(np.abs(ds[name].isel(trial=trial)).max()) if "trial" in ds[name].dims                     else float(np.abs(ds[name]).max())
        for k in picks:
            act, vel, nud, _, _ = _rgb_inputs(ds, int(k), trial)
            img3, _ = rgb_composite(act, vel, nud, alive, vmax=tops.get("velocity"), nmax=tops.get("nudge"))
            img, (cx, cy), idx = _plane(img3, axis, index)
            ax.clear()
            ax.imshow(np.where(np.isnan(img), 0.85, img), origin="lower", interpolation="nearest")
            ax.set_xlabel(cx)
            ax.set_ylabel(cy)
            ax.set_title(title or f"R act, G |ds/dt|, B |nudge|  {dim} {label[k]:g}", fontsize=9)
            fig.canvas.draw()
            frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    else:
        import matplotlib as mpl

        if clim is None:
            if var == "activation":
                clim = (0.0, 1.0)
            else:
                vals = ds[var].isel({dim: picks})
                vals = vals.isel(trial=trial) if "trial" in vals.dims else vals
                clim = (float(vals.min()), float(vals.max()))
        cm = mpl.colormaps[cmap].with_extremes(bad="0.85")
        im = None
        for k in picks:
            v, _ = _grid_values(frame(ds, var, int(k), trial), alive)
            img, (cx, cy), idx = _plane(v, axis, index)
            if im is None:
                im = ax.imshow(np.ma.masked_invalid(img), origin="lower", cmap=cm, vmin=clim[0], vmax=clim[1],
                               interpolation="nearest")
                fig.colorbar(im, ax=ax, label=var, shrink=0.85)
                ax.set_xlabel(cx)
                ax.set_ylabel(cy)
            else:
                im.set_data(np.ma.masked_invalid(img))
            ax.set_title(title or f"{var}, plane {AXIS_NAMES[_axis(axis)]} = {idx}, {dim} {label[k]:g}",
                         fontsize=9)
            fig.canvas.draw()
            frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    frames = np.stack(frames)
    if suffix == ".gif":
        iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
    else:
        try:
            iio.imwrite(path, frames, fps=fps, codec="libx264")
        except Exception as err:   # no ffmpeg plugin or binary
            raise RuntimeError(f"cannot write {path.name}: MP4 needs ffmpeg for imageio "
                               f"(pip install imageio-ffmpeg) - write a .gif instead ({err})") from None
    return path


# ------------------------------------------------------------------ JupyterLab
def explore(ds, var: str = "activation", trial: int = 0, axis="z", rgb: bool = False, clim=(0.0, 1.0),
            cmap: str = "viridis"):
    """Sliders over time (or epoch) and the plane index of a stored run, in a notebook.

    Returns an ``ipywidgets`` box (display it as the cell's value); without ipywidgets, the last
    frame as a static matplotlib figure.
    """
    import matplotlib as mpl

    act = "activation" if rgb else var
    dim = _frame_axis(ds, act) if any(d in ds[act].dims for d in ("time", "epoch")) else None
    n_t = ds.sizes[dim] if dim else 1
    a = _axis(axis)
    n_k = ds.sizes[AXIS_NAMES[a]]
    alive = ds.alive.values.astype(bool) if "alive" in ds else None

    def draw(t, k):
        fig = _figure((5.0, 4.4))
        ax = fig.add_subplot()
        if rgb:
            a3, v3, n3, _, _ = _rgb_inputs(ds, t, trial)
            img, (cx, cy), _ = _plane(rgb_composite(a3, v3, n3, alive)[0], axis, k)
            ax.imshow(np.where(np.isnan(img), 0.85, img), origin="lower", interpolation="nearest")
        else:
            v, _ = _grid_values(frame(ds, var, t, trial), alive)
            img, (cx, cy), _ = _plane(v, axis, k)
            cm = mpl.colormaps[cmap].with_extremes(bad="0.85")
            im = ax.imshow(np.ma.masked_invalid(img), origin="lower", cmap=cm, interpolation="nearest",
                           vmin=None if clim is None else clim[0], vmax=None if clim is None else clim[1])
            fig.colorbar(im, ax=ax, label=var, shrink=0.85)
        ax.set_xlabel(cx)
        ax.set_ylabel(cy)
        ax.set_title(f"{'RGB' if rgb else var}, {AXIS_NAMES[a]} = {k}" + (f", {dim} index {t}" if dim else ""),
                     fontsize=9)
        return fig

    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        return draw(n_t - 1, n_k // 2)
    out = widgets.Output()
    t_slider = widgets.IntSlider(value=n_t - 1, min=0, max=n_t - 1, description=dim or "time")
    k_slider = widgets.IntSlider(value=n_k // 2, min=0, max=n_k - 1, description=f"{AXIS_NAMES[a]} plane")

    def update(_=None):
        out.clear_output(wait=True)
        with out:
            display(draw(t_slider.value, k_slider.value))

    t_slider.observe(update, names="value")
    k_slider.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([t_slider, k_slider]), out])


def show3d(values, alive=None, clim=(0.0, 1.0), cmap: str = "viridis", name: str = "activation", path=None):
    """Show a field in 3D in a notebook: interactive (PyVista's trame backend) when trame is
    installed, else a static picture of three orthogonal slices (``IPython.display.Image``)."""
    try:
        import trame  # noqa: F401
    except ImportError:
        import tempfile

        from IPython.display import Image

        path = Path(path or tempfile.mkstemp(suffix=".png")[1])
        return Image(filename=str(orthogonal_slices_png(values, path, alive=alive, clim=clim, cmap=cmap,
                                                         name=name)))
    pv = _pyvista()
    pv.OFF_SCREEN = False
    pv.set_jupyter_backend("trame")
    grid = to_image_data(values, alive, name=name)
    plotter = pv.Plotter()
    plotter.add_mesh(_slice_mesh(grid, name), scalars=name, cmap=cmap, clim=clim)
    plotter.add_mesh(grid.outline(), color="black")
    return plotter.show()


def plot_energy_overlap(ds, path, target=None, title: str | None = None, xscale: str = "linear",
                        linthresh: float = 1.0) -> Path:
    """Energy (top) and overlap with the cued pattern (bottom) against time, one line per trial.

    Parameters
    ----------
    ds : xarray.Dataset
        A run (``tissue.open_run``) with ``energy (time, trial)`` and optionally
        ``overlap (time, trial, pattern)``; phase starts in ``ds.attrs
        ["phase_starts"]`` (JSON list of steps) are drawn as dashed lines.
    path : str or Path
        The PNG to write.
    target : array (trial,), optional
        The pattern of each trial (default ``ds.target``, else pattern 0).
    xscale : {"linear", "symlog"}
        ``symlog`` shows time linearly up to ``linthresh`` and logarithmically
        after: fast retrieval and a long convergence tail in one picture.

    Returns
    -------
    Path
        ``path``.
    """
    import json

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    has_overlap = "overlap" in ds
    fig = Figure(figsize=(7.5, 6.0 if has_overlap else 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if has_overlap else 1, 1, sharex=True, squeeze=False)[:, 0]
    t = ds.time.values
    energy = ds.energy.values
    nb = energy.shape[1]
    colors = [f"C{b % 10}" for b in range(nb)]
    for b in range(nb):
        axes[0].plot(t, energy[:, b], color=colors[b], lw=1.2, label=f"trial {b}")
    axes[0].set_ylabel("energy E(s)")
    if has_overlap:
        if target is None:
            target = ds.target.values if "target" in ds else np.zeros(nb, dtype=int)
        m = ds.overlap.values
        for b in range(nb):
            axes[1].plot(t, m[:, b, int(target[b])], color=colors[b], lw=1.2,
                         label=f"trial {b} (pattern {int(target[b])})")
        axes[1].set_ylabel("overlap with cued pattern")
        axes[1].set_ylim(min(-0.05, float(np.nanmin(m)) - 0.05), 1.05)
    axes[-1].set_xlabel("time (membrane time constants)")
    starts = ds.attrs.get("phase_starts")
    if isinstance(starts, str):
        starts = json.loads(starts)
    temps = ds.attrs.get("temperature")
    if isinstance(temps, str):
        temps = json.loads(temps)
    dt = float(ds.attrs.get("dt", 1.0))
    for k, s in enumerate(starts or []):
        for ax in axes:
            ax.axvline(s * dt, color="0.6", ls="--", lw=0.8)
        if temps and k < len(temps):
            right = len(t) and s * dt > 0.8 * t[-1]
            axes[0].annotate(f"T={temps[k]:g}", (s * dt, 1.0), xycoords=("data", "axes fraction"),
                             xytext=(-3 if right else 3, -12), textcoords="offset points", fontsize=8,
                             color="0.4", ha="right" if right else "left")
    for ax in axes:
        ax.grid(alpha=0.3)
        if xscale == "symlog":
            ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
            ax.set_xlim(0, max(float(t[-1]), linthresh) if len(t) else linthresh)
        elif xscale != "linear":
            raise ValueError(f"xscale must be 'linear' or 'symlog', got {xscale!r}")
    axes[-1].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
