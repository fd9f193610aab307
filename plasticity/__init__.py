"""How wiring changes: Hebbian storage, Equilibrium Propagation, homeostasis.

    >>> from plasticity import EqProp, LipschitzBrake
"""

from .alignment import exact_gradient, slab_cosines
from .continuous import ContinuousNudge
from .eqprop import EqProp
from .hebbian import store_patterns
from .homeostasis import LipschitzBrake, contraction
from .readout import group_means, one_hot_targets, predict_groups
from .structural import Scheduler, StructuralPlasticity, remap_slots

__all__ = ["ContinuousNudge", "EqProp", "LipschitzBrake", "contraction", "exact_gradient", "group_means", "one_hot_targets",
           "predict_groups", "remap_slots", "Scheduler", "slab_cosines", "store_patterns", "StructuralPlasticity"]
