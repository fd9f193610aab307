import numpy as np
from tissue import Tissue
from plasticity.xy_eqprop import XYEqProp
from studies.oscillate import xy_alignment
tt = Tissue.cube((3, 3, 3), stencil=26, dtype="float64", seed=0, weight_scale=0.6)
tt.set_input(tt.lattice.face("z-")); tt.set_output(tt.lattice.face("z+"), groups=3, layout="interleaved")
rng = np.random.default_rng(0)
x = rng.uniform(-np.pi / 2, np.pi / 2, (4, 9)); y = np.arange(4) % 3
field = 0.3 * np.exp(1j * rng.uniform(-np.pi, np.pi, tt.n)); field[tt.clamped] = 0
betas = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
print(dict(zip(betas, xy_alignment(tt, XYEqProp(field=field), x, y, betas).round(6))))
