import sys, time
from studies.generative import DreamSetup, dream_from_store
from tissue import load_tissue
st = sys.argv[1]; src = sys.argv[2]
s = DreamSetup(src)
t = load_tissue(st, group="dream_tissue")
for name, sched, init in [
    ("0.05x500, 0.02x2000 (the run)", [(0.05, 500), (0.02, 2000)], "rest"),
    ("+ 0.01x1000", [(0.05, 500), (0.02, 2000), (0.01, 1000)], "rest"),
    ("0.05x500, 0.02x6000", [(0.05, 500), (0.02, 6000)], "rest"),
    ("mean image init", [(0.05, 500), (0.02, 2000)], "mean"),
]:
    t0 = time.time()
    ds = dream_from_store(s, t, chains=8, schedule=sched, init=init, seed=0)
    print(f"| {name} | {ds.attrs['classified_mean']:.2f} | {ds.attrs['diversity_mean']:.2f} | {ds.attrs['diversity_min']:.2f} |", flush=True)
