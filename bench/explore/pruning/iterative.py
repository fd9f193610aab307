"""Explore (#5 pruning): cut in small steps with no learning, the rates measured again after each step.

    python bench/explore/pruning/iterative.py STEP TARGET learn-seed0.zarr [learn-seed1.zarr ...]

Each step removes STEP of the original synapses by ``|w| r_i r_j`` (``prune_by = "activity"``),
with ``r`` the RMS free-phase rates of the training digits on the tissue as it is now; prints the
held-out accuracy after each step up to TARGET removed. Exploration; prints only.
"""
import sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from studies.learn import cut_least_salient, load_learning_store
from studies.recovery import _accuracy

step, target = float(sys.argv[1]), float(sys.argv[2])
t0 = time.perf_counter()
res = []
for path in sys.argv[3:]:
    _, setup = load_learning_store(path)
    t = setup.tissue
    total = t.syn.n_synapses
    a0 = _accuracy(setup, t)
    row = [a0]
    k = 1
    while True:
        frac = min(target, k * step)
        cut_least_salient(setup, t, int(round(frac * total)) - (total - t.syn.n_synapses), "activity")
        row.append(_accuracy(setup, t))
        print(f"{path}: removed {1 - t.syn.n_synapses / total:.3f}: {row[-1]:.4f} (A0 {a0:.4f})", flush=True)
        if frac >= target - 1e-9:
            break
        k += 1
    res.append(row)
r = np.array(res)
print("mean loss in points after each step:", np.round(100 * (r[:, :1] - r[:, 1:]).mean(0), 2),
      f"wall {time.perf_counter() - t0:.0f} s")
