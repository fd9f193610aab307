"""How wiring changes: Hebbian storage, Equilibrium Propagation, homeostasis.

    >>> from plasticity import EqProp, LipschitzBrake
"""

from .alignment import exact_gradient, slab_cosines
from .continuous import ContinuousNudge
from .dreaming import GenerativeTrainer, dream, dream_view, face_to_images
from .eqprop import EqProp
from .hebbian import store_patterns
from .homeostasis import LipschitzBrake, contraction
from .memory import capacity_curve, corrupt, learn_patterns, overlaps, recall
from .phase import hebbian_phase_weights, phase_cues, phase_overlap, random_phase_patterns
from .phase import recall as phase_recall
from .readout import group_means, one_hot_targets, predict_groups
from .structural import Scheduler, StructuralPlasticity, remap_slots
from .xy_eqprop import XYEqProp, XYSettler, exact_xy_gradient

__all__ = ["ContinuousNudge", "EqProp", "GenerativeTrainer", "capacity_curve", "corrupt", "dream", "dream_view",
           "face_to_images", "learn_patterns", "overlaps", "recall", "XYEqProp", "XYSettler", "exact_xy_gradient",
           "hebbian_phase_weights", "phase_cues", "phase_overlap", "phase_recall", "random_phase_patterns", "LipschitzBrake", "contraction", "exact_gradient", "group_means", "one_hot_targets",
           "predict_groups", "remap_slots", "Scheduler", "slab_cosines", "store_patterns", "StructuralPlasticity"]
