"""At birth, does learning grow a newborn's synapses? GradMax against random newborns.

    python bench/explore/neurogenesis/gradmax_growth.py learn-seed0.zarr [--radius 5] [--seed 0]

Loads the trained 16 x 16 digits tissue of ``learn-seedS.zarr`` as ``configs/lesion-recovery.toml``
does, kills the ball of ``--radius`` at its centre, probes one training batch (32 digits) and
gives birth to 24 neurons, with ``birth_init`` "random" and then "gradmax" (same sites). Then it
settles the next 256 training digits free and nudged and prints, over the newborns, the growth rate of
each newborn's synapses to older neighbours along their own direction, ``w . c / |w|^2`` (``c``
the EqProp contrast those synapses get: the update learning gives them), and the share of
newborns whose rate is in the linear range. A positive rate means learning grows the synapses
along where they point; the random init's scatter around 0.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    from studies import recovery as R
    from studies.config import load_config
    from studies.learn import build_learning
    from studies.run import derived_seed
    from tissue.lesions import LesionLog

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trained")
    ap.add_argument("--radius", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    raw = tomllib.loads((ROOT / "configs" / "lesion-recovery.toml").read_text())
    raw["seed"] = a.seed
    raw["recovery"]["trained"] = a.trained
    raw["lesion"].update(kind="ball", radius=a.radius)
    raw["structural"]["birth_max"] = 24
    cfg = load_config(raw)
    setup = build_learning(cfg)
    R.load_trained(cfg, setup)
    lesioned = setup.tissue.copy()
    R.apply_lesion(lesioned, cfg.lesion, derived_seed(cfg.seed, R._LESION), LesionLog())
    tr = R._recovery_trainer(cfg, setup, 1)
    x, y = setup.xtr[:tr.batch_size], setup.task.y_train[:tr.batch_size]
    xs, ys = setup.xtr[tr.batch_size:tr.batch_size + 256], setup.task.y_train[tr.batch_size:tr.batch_size + 256]
    print(f"seed {a.seed}, ball of radius {a.radius}: probe on {len(x)} digits, measured on {len(xs)} others")
    print("init     born  linear range  growth rate mean / median  positive")
    for init in ("random", "gradmax"):
        t = lesioned.copy()
        sp = R._structural(cfg, "neurogenesis", 2)
        sp.birth_init = init
        sp.probe(t, tr, setup.engine, x, y)
        new = sp.birth(t)
        free, plus, minus = tr.phases(t, setup.engine, xs, ys)
        lin = ((free.state[:, new] > 0) & (free.state[:, new] < 1)).mean()
        g, _ = tr.gradient(t, free, plus, minus)      # the EqProp contrast of every synapse slot
        rates = []
        for n in new.tolist():
            d = int(t.syn.deg[n])
            old = sp.born[t.syn.nbr[n, :d]] < 0
            w = t.syn.w[n, :d].astype(np.float64)[old]
            rates.append(w @ g[n, :d][old] / (w @ w))
        rates = np.array(rates)
        print(f"{init:8s} {len(new):4d}  {lin:12.3f}  {rates.mean():10.3f} / {np.median(rates):.3f}"
              f"  {int((rates > 0).sum())} of {len(rates)}")


if __name__ == "__main__":
    main()
