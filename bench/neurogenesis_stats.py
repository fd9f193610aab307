"""Does neurogenesis speed recovery? Paired statistics over recovery replicates.

    python bench/neurogenesis_stats.py SWEEP_DIR [SWEEP_DIR ...] [--by structural.birth_weight]

Reads every finished job store under ``SWEEP_DIR/jobs`` of damage sweeps whose jobs ran the
``learn`` and ``neurogenesis`` arms (``configs/lesion-recovery.toml`` with a ball lesion, gridded
over ``structural.birth_lr``, ``recovery.replicate`` and ``seed``), groups them by the config key
``--by`` (default ``structural.birth_lr``), and prints for each:

- the mean curves of both arms (held-out accuracy at each evaluation, mean over all runs) and
  the first evaluation at which each mean curve is within 1 point of the mean A0;
- per run, the first evaluation within 1 point of that run's A0 (or "> end");
- the paired difference neurogenesis - learning alone of the mean accuracy over the evaluations
  after the lesion, per (seed, replicate): its mean, standard error, t statistic, and how many
  runs are positive. Learning alone is the same run's ``learn`` arm (same lesion, same seeds).
- each arm's mean accuracy over the evaluations at whole epochs in the last 5 (``end - 4 .. end``,
  the figure ``bench/explore/neurogenesis/capacity.py`` reports for training from scratch), per seed
  and over all runs, and the paired difference;
- the share of the lost accuracy won back after epochs 1 and 2 (the runs' ``<arm>_recovered_epoch<e>``
  figures): mean, standard error, and the mean per seed;
- the mean |w| of the newborns' synapses after recovery against the other synapses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _first(t, acc, level):
    hit = np.flatnonzero(acc >= level)
    return float(t[hit[0]]) if len(hit) else np.inf


def main(argv=None):
    import xarray as xr

    from studies.sweep import finished_jobs
    from tissue import load_tissue

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", nargs="+")
    ap.add_argument("--by", default="structural.birth_lr",
                    help="dotted config key to group the runs by (default: structural.birth_lr)")
    a = ap.parse_args(argv)
    section, _, field = a.by.rpartition(".")
    groups = {}
    for d in a.sweeps:
        for p, attrs, cfg in finished_jobs(d):
            ds = xr.open_zarr(p, consolidated=False)
            if not {"learn", "neurogenesis"} <= set(ds.arm.values):
                continue
            try:
                key = (cfg[section] if section else cfg)[field]
            except KeyError:
                ap.error(f"--by {a.by}: no such key in the job's config (e.g. structural.birth_lr, "
                         f"structural.birth_weight, recovery.lr)")
            run = (cfg["seed"], cfg["recovery"].get("replicate", 0))
            born = ds.born.sel(arm="neurogenesis").values.reshape(-1) >= 0
            t = load_tissue(p, "recovered_neurogenesis")
            i, j, w = t.syn.edges()
            nb = born[i] | born[j]
            groups.setdefault(key, {})[run] = dict(
                t=ds.epoch.values, a0=float(ds.accuracy_before.sel(model="tissue")),
                learn=ds.accuracy.sel(arm="learn").values, neuro=ds.accuracy.sel(arm="neurogenesis").values,
                w_new=float(np.abs(w[nb]).mean()) if nb.any() else np.nan, w_old=float(np.abs(w[~nb]).mean()),
                n_born=int(born.sum()),
                shares={arm: [attrs.get(f"{arm}_recovered_epoch{e}") for e in range(1, 3)]
                        for arm in ("learn", "neurogenesis")})
    for key in sorted(groups):
        runs = dict(sorted(groups[key].items()))   # every per-run list below follows this order
        t = next(iter(runs.values()))["t"]
        a0 = np.mean([r["a0"] for r in runs.values()])
        L = np.array([r["learn"] for r in runs.values()])
        N = np.array([r["neuro"] for r in runs.values()])
        print(f"{a.by} = {key}: {len(runs)} runs (seed, replicate): {sorted(runs)}")
        print("  epoch            " + " ".join(f"{v:5.2f}" for v in t))
        print("  learning alone   " + " ".join(f"{v:.3f}" for v in L.mean(0)) + f"   mean A0 - 1 pt = {a0 - 0.01:.3f}"
              f", first reached at {_first(t, L.mean(0), a0 - 0.01)}")
        print("  + neurogenesis   " + " ".join(f"{v:.3f}" for v in N.mean(0))
              + f"   first reached at {_first(t, N.mean(0), a0 - 0.01)}")
        per_l = [_first(t, r["learn"], r["a0"] - 0.01) for r in runs.values()]
        per_n = [_first(t, r["neuro"], r["a0"] - 0.01) for r in runs.values()]
        fmt = lambda v: "> end" if not np.isfinite(v) else f"{v:g}"
        print("  per run, epochs to A0 - 1 pt: learning alone " + ", ".join(fmt(v) for v in per_l))
        print("                                + neurogenesis " + ", ".join(fmt(v) for v in per_n))
        print(f"  reached within the run: learning alone {np.isfinite(per_l).sum()} of {len(runs)}, "
              f"+ neurogenesis {np.isfinite(per_n).sum()} of {len(runs)}")
        diff = (N[:, 1:] - L[:, 1:]).mean(1)
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
        print(f"  paired mean accuracy after the lesion, neurogenesis - learning alone: {100 * diff.mean():+.2f} "
              f"points (s.e. {100 * se:.2f}, t = {diff.mean() / se:.2f}; positive in {(diff > 0).sum()} of {len(diff)})")
        last = N[:, -1] - L[:, -1]
        print(f"  at the end: {100 * last.mean():+.2f} points (s.e. {100 * last.std(ddof=1) / np.sqrt(len(last)):.2f})")
        tail = (t >= t[-1] - 4) & (t == np.round(t))
        seeds = sorted({s for s, _ in runs})
        for arm, M in (("learning alone", L), ("+ neurogenesis", N)):
            m = M[:, tail].mean(1)
            per_seed = " / ".join(f"{np.mean([v for (s, _), v in zip(runs, m) if s == k]):.4f}" for k in seeds)
            print(f"  mean over epochs {t[tail][0]:g}-{t[-1]:g}, {arm}: {m.mean():.4f} (seeds {per_seed})")
        dt = (N[:, tail] - L[:, tail]).mean(1)
        if len(dt) > 1:
            print(f"    paired, neurogenesis - learning alone: {100 * dt.mean():+.2f} points "
                  f"(s.e. {100 * dt.std(ddof=1) / np.sqrt(len(dt)):.2f}; positive in {(dt > 0).sum()} of {len(dt)})")
        for arm, name in (("learn", "learning alone"), ("neurogenesis", "+ neurogenesis")):
            for e in (1, 2):
                v = np.array([r["shares"][arm][e - 1] for r in runs.values()], dtype=float)
                v = v[np.isfinite(v)]
                if len(v) > 1:
                    per_seed = {}
                    for (seed, _), r in runs.items():
                        x = r["shares"][arm][e - 1]
                        if x is not None:
                            per_seed.setdefault(seed, []).append(x)
                    seeds = " / ".join(f"{100 * np.mean(per_seed[k]):.1f}" for k in sorted(per_seed))
                    print(f"  share of the lost accuracy won back after epoch {e}, {name}: {100 * v.mean():.1f}% "
                          f"(s.e. {100 * v.std(ddof=1) / np.sqrt(len(v)):.1f}; seeds {seeds})")
        wn = np.nanmean([r["w_new"] for r in runs.values()])
        wo = np.mean([r["w_old"] for r in runs.values()])
        nb = np.mean([r["n_born"] for r in runs.values()])
        print(f"  newborns {nb:.0f} per run; mean |w| of their synapses after recovery {wn:.3f}, others {wo:.3f}")


if __name__ == "__main__":
    main()
