"""Pictures of a tissue and its runs: PyVista volumes and slices, matplotlib curves.

Everything renders off-screen (no display needed) and writes PNG files:

- :func:`to_image_data` puts a per-voxel field on a ``pyvista.ImageData``
  with one *cell* per voxel (cell centres at the integer voxel coordinates),
  dead voxels as NaN;
- :func:`orthogonal_slices_png` renders three orthogonal slices of such a
  field, dead voxels cut out;
- :func:`plot_energy_overlap` draws the energy and the pattern overlap of
  every trial of a run against model time.
"""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

import numpy as np

__all__ = ["orthogonal_slices_png", "plot_energy_overlap", "to_image_data"]


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
    title : str, optional
        Text in the upper-left corner.

    Returns
    -------
    Path
        ``path``.
    """
    pv = _pyvista()
    grid = to_image_data(values, alive, name=name)
    lo = np.array(grid.origin) + 0.5
    n = np.array(grid.dimensions) - 1
    pos = [lo[a] + n[a] // 2 if c is None else float(c) for a, c in enumerate((x, y, z))]
    pieces = grid.slice_orthogonal(x=pos[0], y=pos[1], z=pos[2])
    mesh = pieces.combine()
    finite = np.flatnonzero(np.isfinite(mesh.cell_data[name]))
    mesh = mesh.extract_cells(finite)
    plotter = pv.Plotter(off_screen=True, window_size=list(window_size))
    try:
        plotter.set_background("white")
        if mesh.n_cells:
            plotter.add_mesh(mesh, scalars=name, cmap=cmap, clim=clim,
                             scalar_bar_args={"title": name, "color": "black"})
        plotter.add_mesh(grid.outline(), color="black")
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
