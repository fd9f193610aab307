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

Then the tissue learns: ``configs/learn-digits-16.toml`` shortened to a few epochs
(Equilibrium Propagation on the 8x8 digits, output 4 voxels from the input),
written to ``learn.zarr`` with a learning-curve picture beside the backprop
baselines trained on the same split (``learning.png``). The trained tissue is
traced settling free and then nudged (``trace.zarr``) and its three-channel view
drawn (``trace_rgb.png``: red activation, green settling speed, blue nudge);
``settling.gif`` is a movie of the recall. Then 20% of its hidden neurons are killed and it keeps
learning (``lesion.png``, ``recovery.png``), and it dreams: the output clamped to each class, the
input sampled by Langevin dynamics (``dreams.png``, ``dreaming.gif``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
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
    learn_store: Path | None = None
    movie: Path | None = None
    extras: dict = field(default_factory=dict)   # figures of the later steps
    learning_png: Path | None = None
    learn_summary: object = None  # studies.learn.LearnSummary


LEARN_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "learn-digits-16.toml"


def learn_demo_config(epochs: int = 5, small: bool = False):
    """``configs/learn-digits-16.toml`` with ``epochs`` epochs and a short end-of-run check;
    ``small``: an 8 x 8 x 5 tissue with the images at scale 1 (quick runs, tests)."""
    import tomllib

    d = tomllib.loads(LEARN_CONFIG.read_text())
    d["name"] = "demo-learning"
    d["learning"].update(epochs=int(epochs), alignment_samples=2 if small else 4, blends=50 if small else 100)
    if small:
        d["tissue"]["shape"] = [8, 8, 5]
        d["task"]["upsample"] = 1
    return load_config(d)


def _observe_step(learn_store: Path, out: Path, progress: bool, echo) -> dict:
    """Trace the trained tissue free then nudged and draw the three-channel view of the nudge."""
    import numpy as np

    from tissue.view import rgb_plane_png

    from .observe import trace_store

    ds = trace_store(learn_store, out / "trace.zarr", samples=4, progress=progress)
    try:
        ny = ds.sizes["y"]
        png = rgb_plane_png(ds, out / "trace_rgb.png", time=-1, trial=0, axis="y", index=ny // 2)
        depth = float(np.mean(ds.nudge_depth.values))
    finally:
        ds.close()
    if echo is not None:
        echo(f"{out / 'trace.zarr'}: free then nudged settling of 4 test digits; "
             f"mean nudge depth {depth:.2f} voxels")
        echo(f"  picture: {png} (red activation, green settling speed, blue nudge)")
    return {"nudge_depth": depth}


def run_demo(out="demo-out", size: int | None = None, progress: bool = True, echo=print,
             learn_epochs: int = 5) -> DemoResult:
    """Run the demo into directory ``out`` (its ``run.zarr`` is replaced) and draw its pictures.

    Parameters
    ----------
    out : str or Path
        Output directory: ``run.zarr``, ``slices.png``, ``energy_overlap.png``.
    size : int, optional
        Edge of a smaller cubic tissue (default 32); below 32 the learning step
        also uses a small 8 x 8 x 5 tissue.
    progress : bool
        Progress bars.
    echo : callable
        Receives the summary lines (``print`` by default; ``None`` for silence).
    learn_epochs : int
        Epochs of the learning step (0 skips it).
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
    result = DemoResult(store, slices, curves, summary)
    from tissue.view import animate

    ds = open_run(store)
    try:
        result.movie = animate(ds, out / "settling.gif", trial=0, max_frames=60,
                               title=None)
    finally:
        ds.close()
    if echo is not None:
        echo(f"  movie: {result.movie}")
    if learn_epochs:
        from .learn import plot_learning_curves

        lcfg = learn_demo_config(learn_epochs, small=size is not None and size < 32)
        result.learn_store = out / "learn.zarr"
        result.learn_summary = run(lcfg, result.learn_store, overwrite=True, progress=progress)
        ds = open_run(result.learn_store)
        try:
            shape = "x".join(str(n) for n in lcfg.tissue.shape)
            result.learning_png = plot_learning_curves(
                ds, out / "learning.png",
                title=f"EqProp, {shape} tissue, 8x8 digits (output 4 voxels from the input)")
        finally:
            ds.close()
        if echo is not None:
            for line in result.learn_summary.lines():
                echo(line)
            echo(f"  picture: {result.learning_png}")
        result.extras.update(_observe_step(result.learn_store, out, progress, echo))
        small = size is not None and size < 32
        from .generative import demo_step as dream_step
        from .recovery import demo_step as lesion_step

        for name, step in (("lesion and recovery", lesion_step), ("dreaming", dream_step)):
            figures = step(result.learn_store, out, small=small, progress=progress, echo=echo)
            result.extras.update({f"{name}: {k}": v for k, v in figures.items()})
    if echo is not None:
        echo(f"  demo wall time {time.perf_counter() - t0:.1f} s")
    return result
