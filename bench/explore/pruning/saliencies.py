"""Explore (#5 pruning): one-shot pruning by four saliencies, no fine-tuning.

    python bench/explore/pruning/saliencies.py learn-seed0.zarr 0.3,0.5,0.6

taylor2: mean_n (w_ij c_ij^n)^2 with c^n the per-sample EqProp contrast (a Fisher / first-order
Taylor estimate of the loss change); taylor1: |w_ij mean_n c_ij^n|; activity2: |w_ij|
sqrt(mean_n (rho_i rho_j)^2) (co-activity); weight: |w_ij|. Figures: docs/results_damage.md.
"""
import json, sys
import numpy as np
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import zarr
from plasticity.structural import StructuralPlasticity, Scheduler
from studies.config import load_config
from studies.learn import build_learning
from studies.recovery import _recovery_trainer, _accuracy
from tissue import load_tissue

path = sys.argv[1]
fracs = [float(v) for v in sys.argv[2].split(",")]
ft = sys.argv[3:]  # optional: lr epochs trainer_seed
d = json.loads(zarr.open_group(path, mode="r").attrs["config"]) if isinstance(zarr.open_group(path, mode="r").attrs["config"], str) else dict(zarr.open_group(path, mode="r").attrs["config"])
cfg = load_config(d)
setup = build_learning(cfg)
t0 = load_tissue(path)
eng, tr = setup.engine, setup.trainer
a0 = _accuracy(setup, t0)
nbr, w = t0.syn.nbr, t0.syn.w.astype(np.float64)
valid = nbr >= 0
jj = np.where(valid, nbr, 0)
S = np.zeros(w.shape); G = np.zeros(w.shape); R = np.zeros(w.shape)
scale = 1 / (2 * tr.beta) if tr.symmetric else 1 / tr.beta
for lo in range(0, len(setup.xtr), 64):
    x, y = setup.xtr[lo:lo+64], setup.task.y_train[lo:lo+64]
    f, p, m = tr.phases(t0, eng, x, y)
    rp, rm, rf = p.rates.astype(np.float64), m.rates.astype(np.float64), f.rates.astype(np.float64)
    c = (rp[:, :, None] * rp[:, jj] - rm[:, :, None] * rm[:, jj]) * scale   # (B, N, K)
    S += ((w[None] * c) ** 2).sum(0)
    G += c.sum(0)
    R += (rf[:, :, None] * rf[:, jj]).__pow__(2).sum(0)
n = len(setup.xtr)
S /= n; G /= n; R /= n
sal = {"taylor2": S, "taylor1": np.abs(w * G), "activity2": np.abs(w) * np.sqrt(R), "weight": np.abs(w)}
i, k = np.nonzero(valid); j = nbr[i, k]; half = i < j; i, k, j = i[half], k[half], j[half]
total = t0.syn.n_synapses
for name, s in sal.items():
    sym = s[i, k] + s[j, t0.syn.rev[i, k]]
    order = np.argsort(sym, kind="stable")
    for frac in fracs:
        t = t0.copy()
        cnt = int(round(frac * total))
        for a, b in zip(i[order[:cnt]].tolist(), j[order[:cnt]].tolist()):
            t.syn.remove(a, b)
        acc = _accuracy(setup, t)
        print(f"{path} {name:9s} {frac}: {acc:.4f} ({100*(a0-acc):+.2f} pts lost)", flush=True)
