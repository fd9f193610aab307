"""Does the machinery hold the 2-epoch recovery back? The shipped learning arm of
configs/lesion-recovery.toml, run by hand for one seed, counting how many free phases converge in every
training batch and listing every homeostatic brake action (a brake rescales all weights and would cost accuracy).

    python bench/explore/recovery/settling.py --seed 1 --trained learn-seed1.zarr    # ~1 min

Prints A1, the accuracy after each epoch (the same numbers as the sweep's replicate 0 learning arm), the share of
converged free trials per batch (worst and mean) and the brake actions.
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
    from plasticity.structural import Scheduler
    from studies import recovery as R
    from studies.config import load_config
    from studies.learn import build_learning
    from studies.run import derived_seed

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trained", required=True, help="the trained store of that seed (learn-seedS.zarr)")
    args = ap.parse_args(argv)
    raw = tomllib.loads((ROOT / "configs" / "lesion-recovery.toml").read_text())
    raw["seed"] = args.seed
    raw["recovery"]["trained"] = str(Path(args.trained).resolve())
    cfg = load_config(raw)
    setup = build_learning(cfg)
    R.load_trained(cfg, setup)
    t = setup.tissue.copy()
    R.apply_lesion(t, cfg.lesion, derived_seed(cfg.seed, R._LESION))
    print(f"A1 {R._accuracy(setup, t):.4f}")
    tr = R._recovery_trainer(cfg, setup, R._stream(cfg, R._RECOVER))
    conv = []
    step = tr.train_step

    def counted(*a, **k):
        rep = step(*a, **k)
        conv.append(float(np.mean(rep.free_converged)))
        return rep

    tr.train_step = counted
    sched = Scheduler(tr, setup.engine, None, every=cfg.structural.every, brake=setup.brake,
                      homeostasis_every=cfg.structural.homeostasis_every)
    for e in range(cfg.recovery.epochs):
        sched.fit_epoch(t, setup.xtr, setup.task.y_train, epoch=e, epochs=cfg.recovery.epochs)
        print(f"epoch {e + 1}: accuracy {R._accuracy(setup, t):.4f}")
    print(f"converged free trials per batch: worst {min(conv):.3f}, mean {np.mean(conv):.4f} ({len(conv)} batches)")
    print(f"brake actions: {setup.brake.actions or 'none'}; scheduler events: {sched.events or 'none'}")


if __name__ == "__main__":
    main()
