"""Prototype: several attractors per class by style codes in the output clamp.

    python bench/explore/generative/styles.py learn-seed0.zarr --styles 4 [--epochs 2] [--T 0.025]

Each class's training digits are split by k-means into ``styles`` clusters; the generative
(Boltzmann) step clamps the output to the class's style subset (plasticity.readout.style_targets),
EqProp steps keep the one-hot class targets. Dreams: chains // styles chains per (class, style);
scored as sampled and quenched at T = 0 (does the diversity survive?).
"""
import argparse
import json

import numpy as np

from plasticity import EqProp
from plasticity.dreaming import GenerativeTrainer, dream
from plasticity.readout import style_targets as style_clamps
from studies.generative import DreamSetup, evaluate_dreams
from styles_train import kmeans_styles   # the same clusters as the prototype's training script

ap = argparse.ArgumentParser()
ap.add_argument("store")
ap.add_argument("--styles", type=int, default=4)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--T", type=float, default=0.025)
ap.add_argument("--chains", type=int, default=8)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--sibling", type=float, default=None)
ap.add_argument("--classify-styles", action="store_true")
ap.add_argument("--tissue", default=None, help="a styles_train.py store: its tissue and styles")
a = ap.parse_args()

setup = DreamSetup(a.store)
if a.tissue:
    import zarr

    from tissue import load_tissue
    setup.tissue = load_tissue(a.tissue)
t = setup.tissue.copy()
lc = setup.cfg.learning
xtr, ytr = setup.learn.xtr, setup.task.y_train
K = a.styles
if a.tissue:
    style = np.asarray(zarr.open_group(a.tissue, mode="r").attrs["style"])
else:
    style = kmeans_styles(setup.task.x_train, ytr, K, a.seed)
codes = style_clamps(t, K, lc.target_on, lc.target_off, a.sibling)
clamp = codes[ytr, style]
gen = GenerativeTrainer(lr=3e-4, temperature=a.T, steps=20, batch_size=lc.batch_size, seed=a.seed)
clf = EqProp(beta=lc.beta, symmetric=lc.symmetric, lr=1e-3, optimizer=lc.optimizer, batch_size=lc.batch_size,
             target_on=lc.target_on, target_off=lc.target_off, cost=lc.cost, tau=lc.tau, seed=a.seed)
for ep in range(a.epochs):
    gen.fit_epoch(t, xtr, ytr, epoch=ep, classifier=clf, engine=setup.learn.engine, clamp=clamp,
                  classify_clamp=a.classify_styles)
acc = setup.test_accuracy(t)
print(f"test accuracy after fitting {acc:.3f} (before {setup.test_accuracy():.3f})")
per = max(1, a.chains // K)
labels = np.repeat(np.arange(10), K * per)
Y = np.concatenate([np.repeat(codes[c], per, axis=0) for c in range(10)])
res = dream(t, labels, chains=1, schedule=[(0.05, 500), (a.T, 2000)], dt=0.2, init="rest", clamp=Y, seed=a.seed)
q = dream(t, labels, chains=1, schedule=[(0.0, 2000)], dt=0.2, init=res.final, clamp=Y, seed=a.seed)
out = {"test_accuracy": acc}
for name, r in (("sampled", res), ("quenched", q)):
    img = setup.images(r.final)
    ev = evaluate_dreams(img, labels, setup.task)
    # distinct quenched images per class (max-norm distance > 0.05)
    out[name] = dict(classified=float(ev["classified"].mean()), diversity=float(np.nanmean(ev["diversity"])),
                     diversity_min=float(np.nanmin(ev["diversity"])),
                     per_class_div=[round(float(v), 3) for v in ev["diversity"]],
                     per_class_cls=[round(float(v), 3) for v in ev["classified"]])
    print(name, json.dumps(out[name]))
np.save((a.tissue or a.store).rstrip("/").replace(".zarr", "") + f".styles{K}_{a.sibling}_{a.epochs}_{a.classify_styles}.npy", setup.images(q.final))
