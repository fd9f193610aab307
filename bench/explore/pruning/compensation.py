"""Mean-field compensation of lost inputs: does folding a lost input's mean into the bias help?

    python bench/explore/pruning/compensation.py learn-seed0.zarr learn-seed1.zarr learn-seed2.zarr

A neuron's drive is ``sum_j w_ij r_j + b_i``. When neuron j dies (or synapse ij is cut), the
drive loses ``w_ij r_j``; replacing it by its mean over the training digits, ``w_ij <r_j>``, and
adding that to ``b_i`` keeps the mean drive (and the energy's form: only biases change). For each
trained store: held-out accuracy after the shipped random 20% lesion and after a one-shot 50% cut
by ``|w| r_i r_j``, with and without compensation, no learning. Exploration; prints only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))


def main(argv=None):
    from studies.learn import cut_least_salient, load_learning_store, training_rates
    from studies.recovery import _LESION, _accuracy
    from studies.run import derived_seed
    from tissue.lesions import kill_fraction

    argv = sys.argv[1:] if argv is None else argv
    t0 = time.perf_counter()
    rows = []
    for path in argv:
        cfg, setup = load_learning_store(path)
        trained = setup.tissue

        def acc(t):
            return _accuracy(setup, t)

        rates = training_rates(setup, trained)
        mean_r = rates.mean(0)
        a0 = acc(trained)

        # random 20% lesion, the study's draw
        seed = derived_seed(cfg.seed, _LESION)
        les = trained.copy()
        kill_fraction(les, 0.2, seed=seed)
        a1 = acc(les)
        W0 = trained.syn.to_scipy().astype(np.float64)
        dead = trained.alive & ~les.alive
        comp = les.copy()
        # drive from dead neurons, at their mean rates: W[:, dead] @ mean_r[dead]
        add = W0[:, np.flatnonzero(dead)] @ mean_r[dead]
        comp.bias[comp.alive] += add[comp.alive].astype(comp.bias.dtype)
        a1c = acc(comp)

        # one-shot 50% cut by activity
        cut = trained.copy()
        cut_least_salient(setup, cut, int(round(0.5 * trained.syn.n_synapses)), "activity", rates)
        ap = acc(cut)
        Wc = cut.syn.to_scipy().astype(np.float64)
        lost = (W0 - Wc) @ mean_r
        cutc = cut.copy()
        cutc.bias[cutc.alive] += lost[cutc.alive].astype(cutc.bias.dtype)
        apc = acc(cutc)
        rows.append((a0, a1, a1c, ap, apc))
        print(f"{path}: A0 {a0:.3f} | 20% killed: {a1:.3f}, compensated {a1c:.3f} | "
              f"50% cut: {ap:.3f}, compensated {apc:.3f}", flush=True)
    m = np.mean(rows, 0)
    print(f"mean: A0 {m[0]:.3f} | 20% killed: {m[1]:.3f}, compensated {m[2]:.3f} | "
          f"50% cut: {m[3]:.3f}, compensated {m[4]:.3f}; wall {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
