import time
from studies.generative import DreamSetup, dream_from_store
s = DreamSetup('learn-seed0.zarr')
for name, sched, init in [
    ("T=0 rest", [(0.0, 2000)], "rest"),
    ("T=0 mean image", [(0.0, 2000)], "mean"),
    ("T=0.01 rest", [(0.01, 2500)], "rest"),
    ("T=0.02 rest", [(0.02, 2500)], "rest"),
    ("T=0.05 rest", [(0.05, 2500)], "rest"),
    ("anneal 0.1->0.02->0 rest", [(0.1, 1000), (0.02, 1000), (0.0, 1000)], "rest"),
    ("T=0.02 mean image", [(0.02, 2500)], "mean"),
    ("T=0.02 random", [(0.02, 2500)], "random"),
    ("T=0.02 rest, 10000 steps", [(0.02, 10000)], "rest"),
]:
    t0 = time.time()
    ds = dream_from_store(s, chains=8, schedule=sched, init=init, seed=0)
    print(f"| {name} | {ds.attrs['classified_mean']:.2f} | {ds.attrs['diversity_mean']:.2f} | ({time.time()-t0:.0f} s)", flush=True)
