"""Training throughput of EqProp on the digits tissue, beside the backprop MLP, in one run.

    NUMBA_NUM_THREADS=2 python bench/bench_learn.py [--config configs/learn-digits.toml ...]
                                                   [--epochs 3] [--out docs/benchmarks.md]

Times ``EqProp.fit_epoch`` (free + two nudged settles per mini-batch, and the update)
on each config's tissue (by default the 32 x 32 x 5 digits tissue and the 16 x 16 x 5 one)
after a warm-up epoch (compilation), and reports training samples per second and free-phase
settling steps per sample. The
MLP baseline with as many weights (scikit-learn, backprop, Adam, same batch size)
is timed on the same machine in the same run: samples / s = epochs * n_train / fit time.
Figures go between markers in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(config: Path, epochs: int) -> dict:
    """Time EqProp training on the tissue of ``config`` and the MLP with as many weights."""
    import warnings

    from sklearn.neural_network import MLPClassifier

    from studies.baselines import mlp_hidden_width
    from studies.config import load_config
    from studies.learn import build_learning, trainable_synapses

    cfg = load_config(config)
    setup = build_learning(cfg)
    t, tr, eng, task = setup.tissue, setup.trainer, setup.engine, setup.task
    n = len(setup.xtr)
    tr.fit_epoch(t, eng, setup.xtr, task.y_train, epoch=0)            # warm-up: compilation
    secs = []
    for e in range(1, epochs + 1):
        t0 = time.perf_counter()
        tr.fit_epoch(t, eng, setup.xtr, task.y_train, epoch=e)
        secs.append(time.perf_counter() - t0)
    ev = tr.evaluate(t, eng, setup.xtr[:256], task.y_train[:256])
    n_w = trainable_synapses(t)
    hidden = mlp_hidden_width(n_w, task.x_train.shape[1], task.n_classes)
    mlp = MLPClassifier(hidden_layer_sizes=(hidden,), batch_size=cfg.learning.batch_size, max_iter=epochs,
                        random_state=0, tol=0, n_iter_no_change=10**6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        mlp.fit(task.x_train, task.y_train)
        mlp_sec = (time.perf_counter() - t0) / epochs
    return dict(shape="x".join(str(v) for v in cfg.tissue.shape), neurons=t.n, weights=n_w,
                batch=cfg.learning.batch_size, sps=n / float(np.median(secs)),
                free_steps=float(np.mean(ev["steps"])), hidden=hidden,
                mlp_weights=mlp.coefs_[0].size + mlp.coefs_[1].size, mlp_sps=n / mlp_sec)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", default=None,
                    help="a learning config (repeatable; default: configs/learn-digits.toml and "
                         "configs/learn-digits-16.toml)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default=None, help="record into this markdown file (between markers)")
    a = ap.parse_args(argv)
    configs = a.config or [str(ROOT / "configs" / "learn-digits.toml"), str(ROOT / "configs" / "learn-digits-16.toml")]
    rows = [measure(Path(c), a.epochs) for c in configs]

    def rel(c):
        p = Path(c)
        return p.relative_to(ROOT) if p.is_absolute() and p.is_relative_to(ROOT) else c

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
               f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}, python {platform.python_version()}, "
               f"load average {load:.2f} at the end")
    lines = [
        f"### Training throughput: EqProp on the digits tissues vs a backprop MLP ({date.today()})",
        "",
        f"Command: `NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', '')} python bench/bench_learn.py "
        + "".join(f"--config {rel(c)} " for c in configs) + f"--epochs {a.epochs}`",
        "",
        f"Machine: {machine}.",
        "",
        "| model | neurons | weights | samples / s (median epoch) | settling steps / sample (free phase) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines += [
            f"| tissue {r['shape']}, EqProp (free + 2 nudged settles, batch {r['batch']}) | {r['neurons']:,} | "
            f"{r['weights']:,} | {r['sps']:,.0f} | {r['free_steps']:.0f} | 1 |",
            f"| MLP 64-{r['hidden']}-10 of as many weights, backprop (scikit-learn, Adam, batch {r['batch']}) | "
            f"{r['hidden']} hidden | {r['mlp_weights']:,} | {r['mlp_sps']:,.0f} | - | "
            f"{r['mlp_sps'] / r['sps']:.0f}x faster |",
        ]
    lines += [
        "",
        "The tissue pays for settling: each sample costs (free + nudged) steps of the whole lattice, "
        "where backprop costs one forward and one backward pass.",
    ]
    text = "\n".join(lines)
    print(text)
    if a.out:
        p = Path(a.out)
        doc = p.read_text() if p.exists() else "# Benchmarks\n"
        start, end = "<!-- bench_learn:begin -->", "<!-- bench_learn:end -->"
        block = f"{start}\n{text}\n{end}"
        if start in doc:
            doc = doc[:doc.index(start)] + block + doc[doc.index(end) + len(end):]
        else:
            doc = doc.rstrip() + "\n\n" + block + "\n"
        p.write_text(doc)


if __name__ == "__main__":
    main()
