"""neural-tissue substrate: the lattice, wiring, the Tissue and its records.

    >>> from tissue import Tissue
    >>> t = Tissue.cube((8, 8, 8), stencil=26, seed=0)
"""

from .core import ACTIVATIONS, HIDDEN, INPUT, OUTPUT, ROLES, Tissue
from .graph import damage_metrics
from .lattice import FACES, Lattice
from .lesions import LesionLog, cut_synapses, kill_ball, kill_fraction, kill_region, kill_slab, weight_noise
from .records import Recorder, load_tissue, open_run, save_tissue
from .wiring import STENCILS, Synapses, radius_offsets, stencil_offsets

__all__ = [
    "ACTIVATIONS", "FACES", "HIDDEN", "INPUT", "OUTPUT", "ROLES", "STENCILS",
    "Lattice", "LesionLog", "Recorder", "Synapses", "Tissue",
    "cut_synapses", "damage_metrics", "kill_ball", "kill_fraction", "kill_region", "kill_slab",
    "load_tissue", "open_run", "radius_offsets", "save_tissue", "stencil_offsets", "weight_noise",
]
