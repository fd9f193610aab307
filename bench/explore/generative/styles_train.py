"""Prototype: train the digits tissue from scratch with class-and-style output targets.

    python bench/explore/generative/styles_train.py --styles 4 --seed 0 --out styles4-seed0.zarr

configs/learn-digits-16.toml, but each training digit's EqProp target is the style code of its
class (plasticity.readout.style_targets: the class group's voxels dealt to `styles` subsets,
the digit's k-means cluster within its class picks the subset that is on). The prediction is
still the class group with the highest mean rate. Saves the tissue (group "tissue") and the
styles (attrs) for bench/explore/generative/styles.py --tissue.
"""
import argparse
import json
import time

import numpy as np
import zarr
from sklearn.cluster import KMeans

from plasticity.readout import style_targets as style_clamps
from studies.config import load_config
from studies.learn import build_learning
from tissue.records import save_tissue


def kmeans_styles(x, y, k, seed):
    style = np.zeros(len(y), dtype=np.int64)
    if k > 1:
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            style[idx] = KMeans(k, n_init=10, random_state=seed).fit_predict(x[idx])
    return style


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--styles", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--config", default="configs/learn-digits-16.toml")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import tomllib

    with open(a.config, "rb") as f:
        raw = tomllib.load(f)
    cfg = load_config({**raw, "seed": a.seed})
    s = build_learning(cfg)
    lc = cfg.learning
    style = kmeans_styles(s.task.x_train, s.task.y_train, a.styles, a.seed)
    targets = style_clamps(s.tissue, a.styles, lc.target_on, lc.target_off)[s.task.y_train, style]
    hist = []
    for e in range(a.epochs):
        t0 = time.perf_counter()
        rep = s.trainer.fit_epoch(s.tissue, s.engine, s.xtr, s.task.y_train, epoch=e, epochs=a.epochs,
                                  targets=targets)
        te = s.trainer.evaluate(s.tissue, s.engine, s.xte, s.task.y_test)["accuracy"]
        hist.append((rep["accuracy"], te))
        print(f"epoch {e}: train {rep['accuracy']:.3f} test {te:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    save_tissue(s.tissue, a.out)
    g = zarr.open_group(a.out, mode="a")
    g.attrs.update(styles=int(a.styles), seed=int(a.seed), style=style.tolist(),
                   history=json.dumps(hist))
