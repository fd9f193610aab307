"""The showcase behind ``tissue demo``: a 3D tissue recalls stored patterns from corrupted cues.

A 32 x 32 x 32 tissue with 26-neighbour wiring stores three smooth random 3D
binary patterns with a Hebbian outer-product rule restricted to its synapses.
Each trial starts from one pattern with a quarter of its voxels flipped, settles
for 200 steps at T = 0.02 (noise helps it leave shallow spurious minima), then
by gradient flow (T = 0) until max |ds/dt| < 1e-4. The run store, a picture of
three orthogonal slices of the final activation of trial 0 (PyVista,
off-screen) and a plot of energy and pattern overlap against time (matplotlib)
land in one directory, and a short summary is printed.

``configs/demo.toml`` is the same configuration written out with comments
(a test checks that both give the same canonical config).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig, load_config

__all__ = ["DEMO", "DemoResult", "demo_config", "run_demo"]

DEMO = {
    "name": "demo",
    "seed": 0,
    "tissue": {"shape": [32, 32, 32], "stencil": 26, "activation": "hard_sigmoid", "dtype": "float32"},
    "patterns": {"count": 3, "smoothness": 2.0, "gain": 4.0, "cue_flip": 0.25, "trials_per_pattern": 1},
    "dynamics": {
        "dt": 0.2,
        "tol": 1e-4,
        "phases": [{"temperature": 0.02, "steps": 200}, {"temperature": 0.0, "steps": 3000}],
    },
    "record": {"every": 1, "variables": ["activation", "velocity", "energy"]},
}


def demo_config(size: int | None = None) -> RunConfig:
    """The demo's validated config; ``size`` replaces the 32^3 shape by ``size``^3 (for quick runs)."""
    d = copy.deepcopy(DEMO)
    if size is not None:
        d["tissue"]["shape"] = [size, size, size]
    return load_config(d)


@dataclass
class DemoResult:
    store: Path
    slices: Path
    curves: Path
    summary: object  # studies.run.RunSummary


def run_demo(out="demo-out", size: int | None = None, progress: bool = True, echo=print) -> DemoResult:
    """Run the demo into directory ``out`` (its ``run.zarr`` is replaced) and draw its pictures.

    Parameters
    ----------
    out : str or Path
        Output directory: ``run.zarr``, ``slices.png``, ``energy_overlap.png``.
    size : int, optional
        Edge of a smaller cubic tissue (default 32).
    progress : bool
        Progress bars.
    echo : callable
        Receives the summary lines (``print`` by default; ``None`` for silence).
    """
    from tissue import open_run
    from tissue.view import orthogonal_slices_png, plot_energy_overlap

    from .run import run

    t0 = time.perf_counter()
    cfg = demo_config(size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "run.zarr"
    summary = run(cfg, store, overwrite=True, progress=progress)
    ds = open_run(store)
    try:
        last = ds.isel(time=-1, trial=0)
        target = int(ds.target.values[0])
        shape = "x".join(str(n) for n in cfg.tissue.shape)
        slices = orthogonal_slices_png(
            last.activation, out / "slices.png", alive=last.alive,
            title=f"{shape} tissue, final activation of trial 0 (pattern {target}), "
                  f"step {int(last.step.values)}")
        curves = plot_energy_overlap(
            ds, out / "energy_overlap.png",
            title=f"{shape} tissue, {cfg.patterns.count} stored patterns, "
                  f"cues {cfg.patterns.cue_flip:.0%} flipped", xscale="symlog")
    finally:
        ds.close()
    if echo is not None:
        for line in summary.lines():
            echo(line)
        echo(f"  pictures: {slices}, {curves}")
        echo(f"  demo wall time {time.perf_counter() - t0:.1f} s (run {summary.wall_time:.1f} s)")
    return DemoResult(store, slices, curves, summary)
