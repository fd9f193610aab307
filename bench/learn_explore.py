"""Exploration of EqProp settings on the digits: one seed, accuracy per epoch (docs/results.md).

    NUMBA_NUM_THREADS=1 python bench/learn_explore.py --shape 16,16,5 --upsample 2 --small-world 0.1 \\
        --max-steps 1000 --lr 0.003 --beta 0.1 --bias 0.2 --schedule cosine --epochs 40

Each row of the exploration table in docs/results.md is this script with the flags
shown there. The shipped study (``tissue run configs/learn-digits-16.toml``) is the
measured, stored, multi-seed version of the chosen row; this script is for trying
settings quickly (nothing is stored).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="16,16,5", help="nx,ny,nz (input z = 0, output z = nz - 1)")
    ap.add_argument("--upsample", type=int, default=2)
    ap.add_argument("--encoding", default="intensity", choices=("intensity", "on_off"),
                    help="on_off: half of each pixel's block carries 1 - p (ON and OFF channels)")
    ap.add_argument("--small-world", type=float, default=0.0)
    ap.add_argument("--bias", type=float, default=0.2)
    ap.add_argument("--layout", default="interleaved", choices=("blocks", "interleaved"))
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--one-sided", action="store_true")
    ap.add_argument("--optimizer", default="adam", choices=("sgd", "adam"))
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--depth-lr", type=float, default=1.0)
    ap.add_argument("--schedule", default="constant", choices=("constant", "cosine", "cosine_batch"))
    ap.add_argument("--cost", default="squared", choices=("squared", "group_squared", "cross_entropy"))
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--persistent", action="store_true")
    ap.add_argument("--jump-guard", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dt", type=float, default=0.5)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--activation", default="hard_sigmoid", choices=("hard_sigmoid", "sigmoid", "tanh"))
    ap.add_argument("--weight-scale", type=float, default=None, help="initial weight scale (default 1/sqrt(26))")
    ap.add_argument("--target-on", type=float, default=1.0)
    ap.add_argument("--target-off", type=float, default=0.0)
    ap.add_argument("--lr-bias", type=float, default=None)
    ap.add_argument("--weight-clip", type=float, default=None)
    ap.add_argument("--nudged-steps", type=int, default=None)
    ap.add_argument("--augment", type=float, default=0.0,
                    help="each epoch, shift every training digit by its own random sub-pixel offset of at "
                         "most this many (8 x 8) pixels (studies.tasks.shift_images); test digits unshifted")
    ap.add_argument("--weight-decay", type=float, default=0.0,
                    help="decoupled weight decay (EqProp weight_decay): w *= 1 - lr_t * wd each step")
    ap.add_argument("--exact", action="store_true",
                    help="oracle: train with the exact gradient at the free fixed point (implicit "
                         "differentiation, plasticity.alignment) instead of the EqProp estimate")
    a = ap.parse_args(argv)

    import numpy as np

    from dynamics import Langevin
    from plasticity import EqProp
    from studies.tasks import InputMap, load_digits_task, shift_images
    from tissue import Tissue

    shape = tuple(int(v) for v in a.shape.split(","))
    task = load_digits_task(seed=a.seed)
    t = Tissue.cube(shape, stencil=26, small_world=a.small_world, bias=a.bias, seed=a.seed,
                    activation=a.activation, weight_scale=a.weight_scale)
    t.set_input(t.lattice.face("z-"))
    t.set_output(t.lattice.face("z+"), groups=task.n_classes, layout=a.layout)
    imap = InputMap(t.lattice, task.image_shape, "z-", a.upsample, encoding=a.encoding)
    xtr, xte = imap(task.images("train"), tissue=t), imap(task.images("test"), tissue=t)
    eng = Langevin(dt=a.dt, tol=a.tol, max_steps=a.max_steps)
    cls = EqProp
    if a.exact:
        from plasticity.alignment import exact_gradient

        class ExactGradient(EqProp):
            """Recurrent backprop at the fixed point (Almeida-Pineda): the same tissue, settling and
            optimiser as EqProp, with its update replaced by the exact -dL/dtheta. No nudged phases."""

            def phases(self, tissue, engine, x, y, init=None, target=None):
                self._y = np.asarray(y)
                target, cost = self.cost_for(tissue, y, target)
                free = engine.settle(tissue, inputs=x, init=init, target=target, cost=cost)
                return free, free, free

            def gradient(self, tissue, free, plus, minus):
                target, cost = self.cost_for(tissue, self._y)
                gw, gb = exact_gradient(tissue, free.state, target=target, cost=cost)
                return -gw, -gb

        cls = ExactGradient
    eq = cls(beta=a.beta, symmetric=not a.one_sided, lr=a.lr, depth_lr=a.depth_lr, optimizer=a.optimizer,
                batch_size=a.batch_size, persistent=a.persistent, cost=a.cost, tau=a.tau,
                schedule=a.schedule, jump_guard=a.jump_guard, seed=a.seed,
                target_on=a.target_on, target_off=a.target_off, lr_bias=a.lr_bias,
                weight_clip=a.weight_clip, nudged_steps=a.nudged_steps,
                weight_decay=a.weight_decay)
    print(t, flush=True)
    for e in range(a.epochs):
        x_e = xtr
        if a.augment:
            rng = np.random.default_rng([a.seed, e, 7])
            x_e = imap(shift_images(task.images("train"), a.augment, rng), tissue=t)
        r = eq.fit_epoch(t, eng, x_e, task.y_train, epoch=e, epochs=a.epochs)
        ev = eq.evaluate(t, eng, xte, task.y_test)
        print(f"epoch {e:3d}  loss {r['loss']:.3f}  train {r['accuracy']:.3f}  test {ev['accuracy']:.3f}  "
              f"steps {ev['steps'].mean():.0f}  converged {ev['converged'].mean():.2f}  {r['seconds']:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
