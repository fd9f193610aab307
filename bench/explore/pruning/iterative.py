"""Explore (#5 pruning): cut in small steps with no learning, the rates measured again after each step.

    python bench/explore/pruning/iterative.py STEP TARGET learn-seed0.zarr [learn-seed1.zarr ...]

Each step removes STEP of the original synapses by ``|w| r_i r_j`` (``prune_by = "activity"``),
with ``r`` the RMS free-phase rates of the training digits on the tissue as it is now; prints the
held-out accuracy after each step up to TARGET removed. Exploration; prints only.
"""
import json, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import zarr
from plasticity.structural import StructuralPlasticity
from studies.config import load_config
from studies.learn import build_learning
from studies.recovery import _accuracy, training_rates
from tissue import load_tissue

step, target = float(sys.argv[1]), float(sys.argv[2])
t0 = time.perf_counter()
res = []
for path in sys.argv[3:]:
    raw = dict(zarr.open_group(path, mode="r").attrs)["config"]
    cfg = load_config(json.loads(raw) if isinstance(raw, str) else raw)
    setup = build_learning(cfg)
    t = load_tissue(path)
    total = t.syn.n_synapses
    a0 = _accuracy(setup, t)
    row = [a0]
    k = 1
    while True:
        frac = min(target, k * step)
        rates = training_rates(setup, t)
        sp = StructuralPlasticity(prune_by="activity")
        sp.observe_rates(t, rates)
        sp.prune_least(t, int(round(frac * total)) - (total - t.syn.n_synapses))
        row.append(_accuracy(setup, t))
        print(f"{path}: removed {1 - t.syn.n_synapses / total:.3f}: {row[-1]:.4f} (A0 {a0:.4f})", flush=True)
        if frac >= target - 1e-9:
            break
        k += 1
    res.append(row)
r = np.array(res)
print("mean loss in points after each step:", np.round(100 * (r[:, :1] - r[:, 1:]).mean(0), 2),
      f"wall {time.perf_counter() - t0:.0f} s")
