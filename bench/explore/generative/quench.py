"""How much of the dreams' diversity is thermal noise? Quench every chain of a dream store.

    python bench/explore/generative/quench.py DREAM.zarr [DREAM.zarr ...] [--steps 1000]

Each chain's last state (the whole tissue, group ``dream``) is settled at T = 0 on the
fine-tuned tissue the dreams came from (group ``dream_tissue``), label still clamped, and the
quenched input faces are scored like the dreams (logistic regression on real digits;
diversity = mean pairwise distance over that of real digits of the class). If the diversity
survives the quench, the chains sit in different minima (distinct dreams); if it collapses,
it was pixel noise around one minimum per class.
"""
import argparse
import json

import numpy as np
import zarr

from plasticity.dreaming import dream
from studies.generative import DreamSetup, evaluate_dreams, open_generative
from tissue import load_tissue


def quench(store, steps=1000, dt=0.2):
    ds = open_generative(store, "dream")
    setup = DreamSetup(ds.attrs["source"])
    t = load_tissue(store, group="dream_tissue") if "dream_tissue" in zarr.open_group(store, mode="r") else setup.tissue
    labels = ds.label.values
    nl, nc = len(labels), ds.sizes["chain"]
    s0 = ds.activation.values.reshape(nl * nc, -1).astype(np.float64)
    out = {}
    for name, init in (("dreams (as sampled)", None), ("quenched at T = 0", s0)):
        if init is None:
            img = ds.image.isel(sample=-1).values.reshape(nl * nc, 8, 8)
        else:
            res = dream(t, labels, chains=nc, schedule=[(0.0, steps)], dt=dt, init=init,
                        target_on=ds.attrs["target_on"], target_off=ds.attrs["target_off"], seed=0)
            img = setup.images(res.state)[-1]
        ev = evaluate_dreams(img, np.repeat(labels, nc), setup.task)
        out[name] = dict(classified=float(ev["classified"].mean()), diversity_mean=float(np.nanmean(ev["diversity"])),
                         diversity_min=float(np.nanmin(ev["diversity"])))
        print(f"{store}  {name:22s} classified {out[name]['classified']:.3f}  diversity mean "
              f"{out[name]['diversity_mean']:.3f}  min {out[name]['diversity_min']:.3f}")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--steps", type=int, default=1000)
    a = ap.parse_args()
    res = {s: quench(s, a.steps) for s in a.stores}
    print(json.dumps(res, indent=1))
