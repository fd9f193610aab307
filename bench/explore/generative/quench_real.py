"""Quench from real training digits (label clamped, image free, T = 0): how many minima per class?

    python bench/explore/generative/quench_real.py dream0.zarr

Eight real training digits of each class are put on the input face of the fine-tuned tissue of a
dream store (group ``dream_tissue``), hidden units at rest, the class clamped on the output, and
the state settled at T = 0 (200 and 2000 steps). If the label-clamped energy had one minimum per
way of writing the digit, the quenched images would stay apart; the script prints their
classification and diversity (as the dreams') and the number of distinct images per class.
"""
import sys
import numpy as np, zarr
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from plasticity.dreaming import dream
from studies.generative import DreamSetup, evaluate_dreams, open_generative
from tissue import load_tissue

store = sys.argv[1]
ds = open_generative(store, "dream")
setup = DreamSetup(ds.attrs["source"])
t = load_tissue(store, group="dream_tissue")
labels = np.arange(10)
nc = 8
y = setup.task.y_train
rng = np.random.default_rng(0)
init = np.zeros((10 * nc, t.n))
for c in labels:
    idx = rng.choice(np.flatnonzero(y == c), nc, replace=False)
    init[c * nc:(c + 1) * nc][:, t.region("input")] = setup.learn.xtr[idx]
real_img = setup.images(init)
ev0 = evaluate_dreams(real_img, np.repeat(labels, nc), setup.task)
print("real digits (start):  classified %.3f diversity %.3f" % (ev0["classified"].mean(), np.nanmean(ev0["diversity"])))
for steps in (200, 2000):
    res = dream(t, labels, chains=nc, schedule=[(0.0, steps)], dt=0.2, init=init,
                target_on=ds.attrs["target_on"], target_off=ds.attrs["target_off"], seed=0)
    img = setup.images(res.state)[-1]
    ev = evaluate_dreams(img, np.repeat(labels, nc), setup.task)
    flat = img.reshape(10, nc, -1)
    distinct = [len({tuple(np.round(v, 2)) for v in flat[c]}) for c in labels]
    print(f"quenched {steps} steps: classified {ev['classified'].mean():.3f} diversity {np.nanmean(ev['diversity']):.3f} "
          f"min {np.nanmin(ev['diversity']):.3f}; distinct images per class {distinct}")
