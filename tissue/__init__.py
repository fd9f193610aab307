"""neural-tissue substrate: the lattice, wiring, the Tissue and its records.

    >>> from tissue import Tissue
    >>> t = Tissue.cube((8, 8, 8), stencil=26, seed=0)
"""

from .core import ACTIVATIONS, HIDDEN, INPUT, OUTPUT, ROLES, Tissue
from .lattice import FACES, Lattice
from .records import Recorder, load_tissue, open_run, save_tissue
from .wiring import STENCILS, Synapses, radius_offsets, stencil_offsets

__all__ = [
    "ACTIVATIONS", "FACES", "HIDDEN", "INPUT", "OUTPUT", "ROLES", "STENCILS",
    "Lattice", "Recorder", "Synapses", "Tissue",
    "load_tissue", "open_run", "radius_offsets", "save_tissue", "stencil_offsets",
]
