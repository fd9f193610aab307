"""Explore (#5 pruning): cut a share of the synapses at once, fine-tune, optionally cut more.

    python bench/explore/pruning/cut_finetune.py learn-seed0.zarr activity 0.5:3 0.001 [TRAINER_SEED]
    python bench/explore/pruning/cut_finetune.py learn-seed0.zarr activity 0.3:1,0.5:2 0.001

PLAN is ``share:epochs,...``: cut until that share of the synapses is removed (ranked by ``weight`` or
``activity``, rates from the training set's free fixed points), then fine-tune that many epochs
(fresh Adam at LR, cosine over all the plan's epochs, as the recovery trainer). Prints the
held-out accuracy after each cut and epoch. Figures: docs/results_damage.md, section 0.
"""
import json, sys, time
import numpy as np
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import zarr
from plasticity.structural import StructuralPlasticity, Scheduler
from studies.config import load_config
from studies.learn import build_learning, trainable_synapses
from studies.recovery import _recovery_trainer, _accuracy, training_rates
from tissue import load_tissue

path, by, plan, lr = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
plan = [(float(a), int(b)) for a, b in (p.split(':') for p in plan.split(','))]
epochs = sum(b for _, b in plan)
attrs = dict(zarr.open_group(path, mode="r").attrs)
raw = attrs["config"]
d = json.loads(raw) if isinstance(raw, str) else raw
d.setdefault("recovery", {})
d["recovery"]["lr"] = lr
d["recovery"]["schedule"] = "cosine"
cfg = load_config(d)
setup = build_learning(cfg)
t = load_tissue(path)
eng = setup.engine
a0 = _accuracy(setup, t)
total = t.syn.n_synapses
tr = _recovery_trainer(cfg, setup, int(sys.argv[5]) if len(sys.argv) > 5 else 12345)
sched = Scheduler(tr, eng, None, brake=setup.brake)
e = 0
for frac, ne in plan:
    rates = training_rates(setup, t)
    sp = StructuralPlasticity(prune_by=by)
    sp.observe_rates(t, rates)
    sp.prune_least(t, int(round(frac * total)) - (total - t.syn.n_synapses))
    tr.invalidate()
    print(f"{path} {by} to {frac} lr {lr}: A0 {a0:.4f} after prune {_accuracy(setup, t):.4f} removed {1 - t.syn.n_synapses/total:.3f}", flush=True)
    for _ in range(ne):
        sched.fit_epoch(t, setup.xtr, setup.task.y_train, epoch=e, epochs=epochs)
        e += 1
        acc = _accuracy(setup, t)
        print(f"  epoch {e}: {acc:.4f}  loss pts {100*(a0-acc):.2f}", flush=True)
