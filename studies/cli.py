"""The ``tissue`` command line.

::

    tissue run CONFIG.toml --out RUN.zarr [--resume | --overwrite] [--quiet]
    tissue sweep SWEEP.toml --out DIR [--scheduler ADDRESS] [--workers N] [--quiet]
    tissue info RUN.zarr
    tissue view RUN.zarr [--var activation] [--time -1] [--trial 0] [--slice z=8] [--rgb]
                [--threshold V | --volume | --highlight] --out FILE.png|FILE.gif|FILE.mp4
    tissue trace LEARN.zarr --out TRACE.zarr [--samples 8] [--beta B]   # free + nudged, with the nudge
    tissue demo [--out DIR] [--size N] [--learn-epochs E] [--quiet]
    tissue check CONFIG.toml          # validate; print the canonical config as TOML
    tissue check --schema             # every key, its default and what it allows

Exit status: 0 done, 2 bad configuration or refused (one line on stderr, no
traceback), 3 the simulation diverged (the store keeps the last finite frame),
130 interrupted (resume with ``--resume``). ``tissue sweep`` exits 3 when some
jobs diverged and 1 when some failed otherwise (the others are combined).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130


def _progress(args) -> bool:
    """Bars only for a person watching: not with --quiet, not when stderr is a pipe or file."""
    return not args.quiet and sys.stderr.isatty()


def _cmd_run(args) -> int:
    from .config import load_config

    cfg = load_config(Path(args.config))   # validated before anything else happens
    from .run import run

    summary = run(cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=_progress(args))
    if summary.status == "already complete":
        print(f"{args.out} is already complete; nothing to do")
        return EXIT_OK
    if not args.quiet:
        print("\n".join(summary.lines()))
    return EXIT_OK


def _cmd_sweep(args) -> int:
    from .sweep import load_sweep

    spec = load_sweep(Path(args.sweep))    # the sweep and every job's config, before any work
    from .sweep import run_sweep

    try:
        summary = run_sweep(spec, args.out, scheduler=args.scheduler, workers=args.workers,
                            progress=_progress(args), echo=None if args.quiet else print)
    except KeyboardInterrupt:
        print(f"interrupted; continue with the same command (tissue sweep {args.sweep} --out {args.out}): "
              f"complete jobs are kept, interrupted ones resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        print("\n".join(summary.lines()))
    for name, why in summary.failed.items():
        print(f"error: job {name}: {why}", file=sys.stderr)
    if summary.failed:
        return EXIT_DIVERGED if all(w.startswith("diverged") for w in summary.failed.values()) else 1
    return EXIT_OK


def _workers(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, size=args.size, progress=_progress(args), echo=None if args.quiet else print,
             learn_epochs=args.learn_epochs)
    return EXIT_OK


def _cmd_check(args) -> int:
    from .config import describe, load_config, to_toml

    if args.schema:
        print(describe())
        return EXIT_OK
    if args.config is None:
        raise _UsageError("check needs CONFIG.toml (or --schema)")
    print(to_toml(load_config(Path(args.config))), end="")
    return EXIT_OK


def _cmd_info(args) -> int:
    import zarr

    from tissue import open_run
    from tissue.records import read_checkpoint

    path = Path(args.store)
    if not (path / "zarr.json").is_file():
        raise _UsageError(f"{path} is not a run store (no zarr.json)")
    ds = open_run(path)
    attrs = dict(zarr.open_group(path, mode="r").attrs)
    config = attrs.get("config")
    config = json.loads(config) if isinstance(config, str) else config
    print(f"{path}")
    print(f"  status: {attrs.get('status', 'unknown')}"
          + (f" ({attrs['message']})" if attrs.get("message") else ""))
    if "name" in attrs or "package_version" in attrs:
        print(f"  name: {attrs.get('name', '?')}   seed: {attrs.get('seed', '?')}   "
              f"package: {attrs.get('package', 'neural-tissue')} {attrs.get('package_version', '?')}   "
              f"created: {attrs.get('created', '?')}")
    print("  dims: " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
    print("  variables:")
    for name, var in ds.data_vars.items():
        print(f"    {name:<11} ({', '.join(var.dims)}) {var.dtype}  {var.attrs.get('long_name', '')}")
    if "step" in ds.coords and ds.sizes.get("time", 0):
        steps = ds.step.values
        every = (config or {}).get("record", {}).get("every", 0)
        print(f"  steps recorded: {len(steps)} frames, step {steps[0]} .. {steps[-1]}"
              + (f" (every {every})" if every else "")
              + f", model time {float(ds.time.values[0]):g} .. {float(ds.time.values[-1]):g}")
    ck = read_checkpoint(path)
    if ck is not None:
        print(f"  checkpoint: step {ck[0]} ({ck[3].get('status', '?')})")
    if config:
        print("  config: " + _config_summary(config, attrs))
    if "overlap" in ds and "target" in ds and ds.sizes.get("time", 0):
        target = ds.target.values
        m = ds.overlap.isel(time=-1).values
        print("  final overlap with the cued pattern: "
              + ", ".join(f"trial {b}: {m[b, target[b]]:.3f}" for b in range(len(target))))
    ds.close()
    return EXIT_OK


def _config_summary(c: dict, attrs: dict) -> str:
    t = c.get("tissue", {})
    shape = "x".join(str(n) for n in t.get("shape", []))
    wiring = f"radius {t['radius']}" if "radius" in t else f"stencil {t.get('stencil')}"
    parts = [f"tissue {shape} {wiring} {t.get('activation')} {t.get('dtype')}"
             + (f" small_world {t['small_world']}" if t.get("small_world") else "")]
    if "patterns" in c:
        p = c["patterns"]
        parts.append(f"patterns {p['count']} (gain {p['gain']}, cue_flip {p['cue_flip']}, "
                     f"{p['trials_per_pattern']} trial(s) each)")
    if "input" in c:
        parts.append(f"input {json.dumps(c['input']['region'])} = {c['input']['value']}")
    d = c.get("dynamics", {})
    starts = attrs.get("phase_starts")
    starts = json.loads(starts) if isinstance(starts, str) else starts
    phases = []
    for k, ph in enumerate(d.get("phases", [])):
        at = f" from step {starts[k]}" if starts and k < len(starts) else ""
        phases.append(f"T={ph['temperature']:g} x {ph['steps']}{at}")
    parts.append(f"dynamics dt {d.get('dt')} tol {d.get('tol')}; phases: " + ", ".join(phases))
    r = c.get("record", {})
    parts.append(f"record every {r.get('every')} {'/'.join(r.get('variables', []))}")
    return "; ".join(parts)


def _parse_slice(text: str | None):
    if text is None:
        return None, None
    axis, sep, idx = text.partition("=")
    try:
        if not sep or axis not in ("x", "y", "z"):
            raise ValueError
        return axis, int(idx)
    except ValueError:
        raise _UsageError(f"--slice {text!r}: must be AXIS=INDEX with AXIS one of x, y, z (e.g. z=8)") from None


def _view_dataset(path: Path):
    """The run store as a Dataset; a store without per-voxel frames but with a trained tissue
    (a learning run) shows the tissue's own fields."""
    from tissue import load_tissue, open_run

    from .observe import tissue_dataset

    if not (path / "zarr.json").is_file():
        raise _UsageError(f"{path} is not a run store (no zarr.json)")
    ds = open_run(path)
    if (path / "tissue").is_dir():      # a trained tissue: its own fields join the run's
        tds = tissue_dataset(load_tissue(path))
        ds = ds.merge(tds[[v for v in tds.data_vars if v not in ds]])
    default = next((v for v in ("activation", "probe_activation", "bias") if v in ds), "activation")
    return ds, default


def _cmd_view(args) -> int:
    from tissue import view as V

    path = Path(args.store)
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".gif", ".mp4"):
        raise _UsageError(f"--out {out.name!r}: must end in .png (a picture), .gif or .mp4 (a movie)")
    axis, index = _parse_slice(args.slice)
    ds, default_var = _view_dataset(path)
    var = args.var or default_var
    try:
        if var not in ds:
            grid = [k for k, v in ds.data_vars.items() if {"x", "y", "z"} <= set(v.dims)]
            raise _UsageError(f"--var {var!r} is not in {path}; per-voxel variables: {', '.join(grid)}")
        if args.rgb and "activation" not in ds:
            raise _UsageError(f"--rgb needs an activation trajectory; {path} has none")
        clim = tuple(args.clim) if args.clim else ((0.0, 1.0) if var == "activation" else None)
        title = f"{path.name}: {'R activation, G |ds/dt|, B |nudge|' if args.rgb else var}"
        if out.suffix.lower() in (".gif", ".mp4"):
            V.animate(ds, out, var=var, trial=args.trial, axis=axis or "z", index=index, rgb=args.rgb,
                      fps=args.fps, cmap=args.cmap, clim=clim)
        elif args.slice:
            if args.rgb:
                V.rgb_plane_png(ds, out, time=args.time, trial=args.trial, axis=axis, index=index)
            else:
                alive = ds.alive if "alive" in ds else None
                V.plane_png(V.frame(ds, var, args.time, args.trial), out, axis=axis, index=index, alive=alive,
                            cmap=args.cmap, clim=clim, name=var)
        elif args.rgb:
            V.rgb_slices_png(ds, out, time=args.time, trial=args.trial, title=title)
        else:
            values = V.frame(ds, var, args.time, args.trial)
            alive = ds.alive.values.astype(bool) if "alive" in ds else None
            if args.threshold is not None:
                V.threshold_png(values, out, args.threshold, alive=alive, clim=clim, cmap=args.cmap, name=var,
                                title=title)
            elif args.volume:
                V.volume_png(values, out, alive=alive, clim=clim, cmap=args.cmap, name=var, title=title)
            elif args.highlight:
                newborn = ds.newborn.values if "newborn" in ds else None
                V.highlight_png(values, out, alive=alive, lesioned=None if alive is None else ~alive,
                                newborn=newborn, clim=clim, cmap=args.cmap, name=var, title=title)
            else:
                V.orthogonal_slices_png(values, out, alive=alive, clim=clim, cmap=args.cmap, name=var, title=title)
    except ValueError as err:
        raise _UsageError(str(err)) from None
    finally:
        ds.close()
    if not args.quiet:
        print(f"wrote {out}")
    return EXIT_OK


def _cmd_trace(args) -> int:
    import numpy as np

    from .observe import trace_store

    try:
        ds = trace_store(args.store, args.out, samples=args.samples, beta=args.beta, every=args.every,
                         threshold=args.threshold, progress=_progress(args))
    except ValueError as err:
        raise _UsageError(str(err)) from None
    if not args.quiet:
        depth = ds.nudge_depth.values
        steps = ds.settling_steps.values
        print(f"{args.out}: {ds.sizes['trial']} samples, beta {ds.attrs['beta']:g}, {ds.sizes['time']} frames")
        print(f"  settling steps: free {np.mean(steps[0]):.0f}, nudged {np.mean(steps[1]):.0f} (mean)")
        prof = ds.nudge_profile.values
        free = np.isfinite(prof).any(axis=0)
        mean = np.array([np.nanmean(prof[:, k]) if free[k] else np.nan for k in range(prof.shape[1])])
        print(f"  nudge depth (voxels from the output, |nudge| >= {args.threshold:g} x its output value): "
              f"{', '.join(str(int(d)) for d in depth)}; mean {np.mean(depth):.2f} "
              f"(free voxels lie 0..{int(ds.distance.values[free].max())} from the output)")
        print("  mean |nudge| by distance: " + ", ".join(
            f"{d}: {v:.2e}" for d, v in zip(ds.distance.values, mean) if np.isfinite(v)))
    ds.close()
    return EXIT_OK


class _UsageError(Exception):
    """A one-line error of the command line (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tissue", description="Spatial neural tissue: settle 3D voxel tissues, record, inspect.",
        epilog="exit status: 0 ok, 2 bad config or refused, 3 diverged, 130 interrupted")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a TOML config into a zarr store",
                       description="Validate CONFIG.toml, then build, settle and record into RUN.zarr.")
    r.add_argument("config", metavar="CONFIG.toml")
    r.add_argument("--out", required=True, metavar="RUN.zarr", help="the run store to write")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted store from its checkpoint (same config only)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run store")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bars, no summary")
    r.set_defaults(func=_cmd_run)

    w = sub.add_parser("sweep", help="run a grid of configs on dask.distributed and combine them",
                       description="Validate SWEEP.toml (a base run config, a [grid] of dotted keys -> "
                                   "values, optional [overrides] and [dims]) and every job's config; run "
                                   "each unfinished job into DIR/jobs/<name>.zarr (complete jobs are "
                                   "skipped, interrupted ones resume) on a local cluster of worker "
                                   "processes or an existing one; combine them into DIR/sweep.zarr.",
                       epilog="exit status: 0 ok, 2 bad sweep or refused, 3 some jobs diverged, "
                              "1 some jobs failed, 130 interrupted (rerun to continue)")
    w.add_argument("sweep", metavar="SWEEP.toml")
    w.add_argument("--out", required=True, metavar="DIR", help="the sweep directory (job stores and sweep.zarr)")
    w.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing dask cluster (e.g. tcp://host:8786; workers must see DIR)")
    w.add_argument("--workers", type=_workers, default=2, metavar="N",
                   help="worker processes of the local cluster (default 2; ignored with --scheduler)")
    w.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")
    w.set_defaults(func=_cmd_sweep)

    i = sub.add_parser("info", help="describe a run store")
    i.add_argument("store", metavar="RUN.zarr")
    i.set_defaults(func=_cmd_info)

    v = sub.add_parser("view", help="picture or movie of a run store (PyVista / matplotlib, off-screen)",
                       description="Render RUN.zarr: three orthogonal slices in 3D (default), one plane "
                                   "(--slice), a threshold or volume view, the three-channel RGB view "
                                   "(--rgb: red activation, green settling speed, blue nudge), or a movie "
                                   "over time when --out ends in .gif/.mp4. A learning store shows the "
                                   "free fixed points of 4 held-out digits after every epoch "
                                   "(probe_activation: a learning movie) or, with --var, its trained "
                                   "tissue (bias, degree, mean_abs_weight, role, alive).")
    v.add_argument("store", metavar="RUN.zarr")
    v.add_argument("--out", required=True, metavar="FILE", help=".png, .gif or .mp4 (mp4 needs ffmpeg)")
    v.add_argument("--var", default=None, help="the variable (default activation; bias for a learning store)")
    v.add_argument("--time", type=int, default=-1, help="time (or epoch) index; -1 the last (default)")
    v.add_argument("--trial", type=int, default=0, help="trial index (default 0)")
    v.add_argument("--slice", default=None, metavar="AXIS=INDEX", help="one plane, e.g. z=8 (movies: the plane "
                                                                       "shown, default the middle z)")
    v.add_argument("--rgb", action="store_true", help="the three-channel view (activation, speed, nudge)")
    m = v.add_mutually_exclusive_group()
    m.add_argument("--threshold", type=float, default=None, metavar="V", help="3D: voxels with value >= V")
    m.add_argument("--volume", action="store_true", help="3D: volume rendering")
    m.add_argument("--highlight", action="store_true", help="3D: dead (lesioned) voxels red, newborn green")
    v.add_argument("--cmap", default="viridis", help="matplotlib colormap (twilight for phases)")
    v.add_argument("--clim", type=float, nargs=2, default=None, metavar=("LO", "HI"), help="colour limits")
    v.add_argument("--fps", type=float, default=10.0, help="movie frames per second (default 10)")
    v.add_argument("--quiet", "-q", action="store_true")
    v.set_defaults(func=_cmd_view)

    tr = sub.add_parser("trace", help="record a trained tissue settling free then nudged, with the nudge",
                        description="Load the trained tissue of LEARN.zarr, settle held-out samples free, then "
                                    "nudged towards their labels from the free fixed point; write TRACE.zarr "
                                    "(activation, velocity, nudge over time; settling steps, nudge depth and "
                                    "the share of units at rest per sample) and print the nudge depth.")
    tr.add_argument("store", metavar="LEARN.zarr")
    tr.add_argument("--out", required=True, metavar="TRACE.zarr")
    tr.add_argument("--samples", type=int, default=8, help="held-out samples traced (default 8)")
    tr.add_argument("--beta", type=float, default=None, help="nudge strength (default: the run's beta)")
    tr.add_argument("--every", type=int, default=1, help="record every N steps (default 1)")
    tr.add_argument("--threshold", type=float, default=0.05,
                    help="nudge depth: |nudge| relative to its value on the output region (default 0.05)")
    tr.add_argument("--quiet", "-q", action="store_true")
    tr.set_defaults(func=_cmd_trace)

    d = sub.add_parser("demo", help="pattern recall in a 32^3 tissue, with pictures",
                       description="Store 3 smooth 3D patterns, recall them from 25%%-flipped cues at "
                                   "T=0.02 then T=0; write DIR/run.zarr (replaced if present), "
                                   "DIR/slices.png and DIR/energy_overlap.png; then learn the 8x8 "
                                   "digits with EqProp for a few epochs: DIR/learn.zarr, DIR/learning.png.")
    d.add_argument("--out", default="demo-out", metavar="DIR", help="output directory (default: demo-out)")
    d.add_argument("--size", type=int, default=None, metavar="N",
                   help="an N^3 tissue instead of 32^3, and an 8x8x5 learning tissue (quick runs)")
    d.add_argument("--learn-epochs", type=int, default=5, metavar="E",
                   help="epochs of the learning step (configs/learn-digits-16.toml; 0 skips it; default 5)")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress bars, no summary")
    d.set_defaults(func=_cmd_demo)

    c = sub.add_parser("check", help="validate a config and print it in canonical form")
    c.add_argument("config", nargs="?", metavar="CONFIG.toml")
    c.add_argument("--schema", action="store_true", help="print every key, its default and what it allows")
    c.set_defaults(func=_cmd_check)
    return p


def main(argv=None) -> int:
    """Entry point of the ``tissue`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    from .config import ConfigError

    try:
        return args.func(args)
    except ConfigError as err:
        print(str(err), file=sys.stderr)
        return EXIT_USAGE
    except _UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `tissue info RUN.zarr | head`
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        hint = (f"; continue with: tissue run {args.config} --out {args.out} --resume"
                if args.command == "run" else "")
        print(f"interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        from dynamics import SimulationDiverged  # imported late: config errors stay quick

        from .run import RunRefused

        if isinstance(err, SimulationDiverged):
            where = getattr(args, "out", None)
            print(f"error: {err}" + (f"; {where} keeps the last finite frame" if where else ""),
                  file=sys.stderr)
            return EXIT_DIVERGED
        if isinstance(err, RunRefused):
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
