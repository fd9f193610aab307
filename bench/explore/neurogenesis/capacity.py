"""Is the lesion's last point lost capacity? Train the 16 x 16 digits tissue from scratch with the ball dead.

    python bench/explore/neurogenesis/capacity.py --seed 0 [--radius 3] [--epochs 40] > s0_r3.log
    python bench/explore/neurogenesis/capacity.py --seed 0 --radius 5 --local > s0_r5_local.log   # ball alive, wired as newborns
    python bench/explore/neurogenesis/capacity.py --summarise s*_r*.log     # the paired table

Builds the tissue of ``configs/learn-digits-16.toml`` for ``--seed`` (same wiring, initial
weights, split and example order as ``learn-seedS.zarr``), kills the hidden neurons of the ball
of ``--radius`` at the lattice centre, as ``configs/lesion-recovery.toml`` with
``[lesion] kind = "ball"`` does after training, and trains the lesioned tissue for the full
schedule. It prints the held-out accuracy per epoch; ``--summarise`` reads such logs and pairs
each seed's lesioned run with its intact one (``--radius 0``), on the mean of the last 5 epochs
(one run's last epoch moves by a point from epoch to epoch on the 450 test digits).
``--radius 0`` kills nothing: it repeats the seed's learning run (its stored test accuracy) exactly,
a check on this script (seeds 0, 1, 2: 0.9244 / 0.9289 / 0.9244, as stored).

If the lesioned tissue trained from scratch ends level with the intact one, the ball's neurons
are not needed for the accuracy and a recovery that stops short of it is short of relearning,
not of neurons. If it ends lower, the lesioned tissue cannot hold the accuracy without new
neurons that work.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    from studies.config import load_config
    from studies.damage_config import LesionConfig
    from studies.learn import build_learning
    from studies.recovery import apply_lesion
    from tissue.core import HIDDEN
    from tissue.lesions import LesionLog

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--radius", type=float, default=3.0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the config's 40")
    ap.add_argument("--summarise", nargs="+", metavar="LOG", help="pair the logs of earlier runs")
    ap.add_argument("--local", action="store_true",
                    help="keep the ball's hidden neurons alive, wired as newborns are (every neighbour within "
                         "the birth radius 1.75, no long-range synapse) at the initial weight scale")
    a = ap.parse_args(argv)
    if a.summarise:
        return summarise(a.summarise)
    raw = tomllib.loads((ROOT / "configs" / "learn-digits-16.toml").read_text())
    raw["seed"] = a.seed
    if a.epochs is not None:
        raw["learning"]["epochs"] = a.epochs
    cfg = load_config(raw)
    setup = build_learning(cfg)
    t, task, eng, tr = setup.tissue, setup.task, setup.engine, setup.trainer
    hidden0 = int((t.alive & (t.role == HIDDEN)).sum())
    killed = 0
    if a.radius > 0 and a.local:
        killed = rewire_local(t, cfg, a.radius)
    elif a.radius > 0:
        # the recovery study's own ball (centre of the lattice, hidden neurons only)
        les = apply_lesion(t, LesionConfig(kind="ball", radius=a.radius), 0, LesionLog(), when="before training")
        killed = len(les.voxels)
    what = "rewired locally (alive)" if a.local else "dead before training"
    print(f"seed {a.seed}, ball of radius {a.radius}: {killed} hidden neurons {what}"
          f" (of {hidden0}); {cfg.learning.epochs} epochs", flush=True)
    lc = cfg.learning
    t0 = time.perf_counter()
    for epoch in range(lc.epochs):
        rep = tr.fit_epoch(t, eng, setup.xtr, task.y_train, epoch=epoch, progress=False, epochs=lc.epochs)
        ev = tr.evaluate(tr.averaged(t), eng, setup.xte, task.y_test)
        print(f"epoch {epoch + 1:3d}  train {rep['accuracy']:.4f}  test {ev['accuracy']:.4f}  "
              f"loss {rep['loss']:.3f}  ({time.perf_counter() - t0:.0f} s)", flush=True)


def rewire_local(t, cfg, radius: float, birth_radius: float = 1.75) -> int:
    """``--local``: the hidden neurons of the recovery study's ball keep their voxels but get a newborn's
    wiring (``plasticity.structural``: every living neighbour within ``birth_radius``, nothing farther),
    the missing synapses drawn uniform in [-s, s] with s the largest initial |w| (the uniform init's
    scale). Returns how many neurons were rewired."""
    import numpy as np

    from plasticity.structural import _neighbour_offsets, _neighbours
    from studies.damage_config import LesionConfig
    from studies.recovery import apply_lesion
    from tissue.lesions import LesionLog

    probe = t.copy()
    ball = apply_lesion(probe, LesionConfig(kind="ball", radius=radius), 0, LesionLog(), when="probe").voxels
    lat = t.lattice
    i, j, w = t.syn.edges()
    scale = float(np.abs(w).max())
    far = np.linalg.norm(lat.coords(i) - lat.coords(j), axis=1) > birth_radius + 1e-9
    touch = np.isin(i, ball) | np.isin(j, ball)
    cut = far & touch
    for a, b in zip(i[cut].tolist(), j[cut].tolist()):
        t.syn.remove(a, b)
    rng = np.random.default_rng([cfg.seed, 7])
    src, dst = _neighbours(lat, np.sort(ball), _neighbour_offsets(birth_radius))   # the birth rule's own search
    live = t.alive[dst]
    added = sum(t.syn.add(v, u, float(rng.uniform(-scale, scale)))
                for v, u in zip(src[live].tolist(), dst[live].tolist()))
    print(f"  rewired: {int(cut.sum())} long-range synapses of the ball cut (of {int(touch.sum())} touching it), "
          f"{added} local ones added at init scale {scale:.3f}", flush=True)
    return len(ball)


def summarise(paths, last: int = 5):
    import re

    import numpy as np

    runs = {}
    for p in paths:
        text = Path(p).read_text()
        head = re.search(r"seed (\d+), ball of radius ([\d.]+): (\d+) .*; (\d+) epochs", text)
        acc = [float(v) for v in re.findall(r"test ([\d.]+)", text)]
        if head is None or len(acc) < int(head[4]):
            print(f"{p}: unfinished, left out")
            continue
        how = "rewired" if "rewired locally" in text else "dead"
        runs[(int(head[1]), float(head[2]), how)] = (int(head[3]), np.array(acc))
    for radius, how in sorted({(r, h) for _, r, h in runs if r > 0}):
        seeds = sorted(s for s, r, h in runs if (r, h) == (radius, how) and (s, 0.0, "dead") in runs)
        what = "wired as newborns are" if how == "rewired" else "dead from the start"
        print(f"ball of radius {radius:g}, {what}: mean held-out accuracy over the last {last} epochs (and at the last)")
        print("seed  intact           ball                            difference (points)")
        d = []
        for s in seeds:
            (_, a), (k, b) = runs[(s, 0.0, "dead")], runs[(s, radius, how)]
            d.append(b[-last:].mean() - a[-last:].mean())
            print(f"{s:4d}  {a[-last:].mean():.4f} ({a[-1]:.4f})  {b[-last:].mean():.4f} ({b[-1]:.4f}), {k} {how}"
                  f"     {100 * d[-1]:+.2f}")
        d = np.array(d)
        if len(d) > 1:
            print(f"mean difference {100 * d.mean():+.2f} points (s.e. {100 * d.std(ddof=1) / np.sqrt(len(d)):.2f}), "
                  f"negative in {(d < 0).sum()} of {len(d)} seeds\n")


if __name__ == "__main__":
    main()
