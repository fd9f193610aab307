"""One-shot pruning of a trained digits tissue: which synapses can go without retraining?

    python bench/prune_saliency.py learn-seed0.zarr learn-seed1.zarr learn-seed2.zarr

For each trained learning store (``tissue run configs/learn-digits-16.toml``), the free fixed
points of the training digits give each neuron's RMS rate ``r_i``; then a share of the
synapses is removed at once, with no learning afterwards, ranked by

- ``weight``:   ``|w_ij|`` (the ``[structural] prune_by = "weight"`` rule),
- ``activity``: ``|w_ij| r_i r_j``, the effective weight (``prune_by = "activity"``),
- ``effect``:   the effective weight, with the synapses between two clamped input neurons first
  (``prune_by = "effect"``: they move no fixed point while the input is clamped),

and the held-out accuracy of the pruned tissue is printed beside the unpruned one (A0).
Synapses are counted over the whole table, both ends clamped included; the share of the
trainable ones (at least one end free) is printed too. Nothing is stored; the figures go to
docs/results_damage.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one_store(path, fractions, batch=128):
    from studies.learn import cut_least_salient, load_learning_store, trainable_synapses, training_rates
    from studies.recovery import _accuracy as accuracy

    cfg, setup = load_learning_store(path)
    trained = setup.tissue

    rates = training_rates(setup, trained, batch)
    rows = [("none", 0.0, 0.0, accuracy(setup, trained))]
    total, trainable = trained.syn.n_synapses, trainable_synapses(trained)
    for by in ("weight", "activity", "effect"):
        for f in fractions:
            t = trained.copy()
            cut_least_salient(setup, t, int(round(f * total)), by, rates)
            rows.append((by, 1 - t.syn.n_synapses / total, 1 - trainable_synapses(t) / trainable,
                         accuracy(setup, t)))
    return cfg.seed, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", nargs="+", help="trained learning-run stores")
    ap.add_argument("--fractions", default="0.3,0.5", help="shares of the synapses removed")
    a = ap.parse_args(argv)
    fractions = [float(v) for v in a.fractions.split(",")]
    t0 = time.perf_counter()
    table = {}
    for path in a.stores:
        seed, rows = one_store(path, fractions)
        print(f"{path} (seed {seed})")
        for by, f_all, f_tr, acc in rows:
            print(f"  {by:9s} removed {f_all:.3f} of all, {f_tr:.3f} of trainable: held-out {acc:.3f}")
            table.setdefault((by, round(f_all, 2)), []).append(acc)
    print(f"mean over {len(a.stores)} stores:")
    a0 = np.mean(table[("none", 0.0)])
    for (by, f), accs in table.items():
        print(f"  {by:9s} {f:.2f}: {np.mean(accs):.3f}  ({100 * (a0 - np.mean(accs)):+.1f} points lost)")
    print(f"wall {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
