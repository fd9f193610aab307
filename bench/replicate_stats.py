"""Figures of a damage sweep over replicates: mean, standard error, and paired differences.

    python bench/replicate_stats.py SWEEP_DIR [SWEEP_DIR ...] --by recovery.average \\
        --figures learn_recovered_epoch2,prune_loss_points [--where structural.prune_by=activity]

Reads the finished job stores under each ``SWEEP_DIR/jobs``, groups them by the config key
``--by`` (dotted, e.g. ``recovery.average``), and prints for each group and each job figure
(the stores' root attributes, as ``tissue sweep`` writes them) the mean over the runs, its
standard error and the mean per seed (with several replicates per seed, also the mean and
standard error across the per-seed means, the seed being the unit that shares a tissue and a lesion,
and the mean of replicate 0 alone); then, for every group after the first, the difference
to the first group paired by (seed, replicate): mean, standard error and how many pairs are
positive. Runs are identified by ``seed`` and ``[recovery] replicate``; ``--where KEY=VALUE``
(repeatable; VALUE read as JSON, else as a string; a job run before a key existed has that key's
current default) keeps only the jobs whose config matches, and two jobs of one group with the
same run are an error (narrow with ``--where``). A figure ``A|B`` reads ``A``, or ``B`` in a job
without ``A``: one arm's figure paired with another arm's, e.g. ``--figures
"learn_recovered_epoch2|structural_recovered_epoch2"`` across a sweep of each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _get(cfg: dict, dotted: str):
    v = cfg
    for part in dotted.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return v


def _figure(attrs: dict, name: str):
    """The job figure ``name``; for ``A|B|...`` the first of them the job has (None if none)."""
    for part in name.split("|"):
        if attrs.get(part) is not None:
            return attrs[part]
    return None


def _runs(group: dict, name: str) -> dict:
    """``{(seed, replicate): figure}`` of the jobs of ``group`` that have the figure ``name``."""
    found = {r: _figure(v, name) for r, v in group.items()}
    return {r: f for r, f in found.items() if f is not None}


def main(argv=None):
    from studies.config import load_config
    from studies.sweep import finished_jobs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", nargs="+")
    ap.add_argument("--by", required=True, help="config key that tells the groups apart (dotted)")
    ap.add_argument("--figures", required=True,
                    help="comma-separated job figures; A|B reads A, or B in a job without A (one arm's figure "
                         "against another's, e.g. learn_recovered_epoch2|structural_recovered_epoch2)")
    ap.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                    help="keep only jobs whose config has this value (repeatable)")
    a = ap.parse_args(argv)
    import json

    where = []
    for w in a.where:
        key, sep, val = w.partition("=")
        if not sep:
            ap.error(f"--where needs KEY=VALUE, got {w!r}")
        try:
            v = json.loads(val)
        except json.JSONDecodeError:
            v = val
        where.append((key, v))
    names = a.figures.split(",")
    groups: dict = {}
    for d in a.sweeps:
        for path, attrs, cfg in finished_jobs(d):
            cfg = load_config(cfg).to_dict()          # keys added since the run: their defaults
            if any(_get(cfg, k) != v for k, v in where):
                continue
            run = (cfg["seed"], _get(cfg, "recovery.replicate") or 0)
            key = _get(cfg, a.by)
            key = tuple(key) if isinstance(key, list) else key      # e.g. tissue.shape
            group = groups.setdefault(key, {})
            if run in group:
                sys.exit(f"two jobs of {a.by} = {key} are run (seed, replicate) = {run}, the "
                         f"second {path}: narrow the jobs with --where KEY=VALUE")
            group[run] = attrs
    keys = sorted(groups, key=lambda k: (k is None, k))
    for name in names:
        print(f"{name}:")
        for k in keys:
            runs = _runs(groups[k], name)
            x = np.array(list(runs.values()), dtype=float)
            if len(x) == 0:
                continue
            se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
            seeds = sorted({s for s, _ in runs})
            m = np.array([np.mean([v for (s, _), v in runs.items() if s == q]) for q in seeds])   # per seed
            print(f"  {a.by} = {k}: {x.mean():.4g} (s.e. {se:.2g}, {len(x)} runs; per seed "
                  + " / ".join(f"{v:.4g}" for v in m) + ")")
            if len(seeds) > 1 and len(runs) > len(seeds):
                # runs of one seed share its trained tissue and its lesion: the seed is the unit
                r0 = [v for (_, r), v in runs.items() if r == 0]
                print(f"    across seeds: {m.mean():.4g} (s.e. {m.std(ddof=1) / np.sqrt(len(m)):.2g} over the "
                      f"{len(m)} per-seed means); replicate 0 alone: "
                      + (f"{np.mean(r0):.4g} ({len(r0)} seeds)" if r0 else "none"))
        base = _runs(groups[keys[0]], name)
        for k in keys[1:]:
            other = _runs(groups[k], name)
            both = sorted(set(base) & set(other))
            if len(both) < 2:
                continue
            d = np.array([other[r] - base[r] for r in both], dtype=float)
            print(f"  {k} - {keys[0]}, paired over {len(both)} runs: {d.mean():+.4g} "
                  f"(s.e. {d.std(ddof=1) / np.sqrt(len(d)):.2g}; positive in {(d > 0).sum()})")


if __name__ == "__main__":
    main()
