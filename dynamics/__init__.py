"""How tissue state moves in time: energies, forces, the Langevin settling engine, costs for
nudged settling, the event-driven engine, and the limit-cycle (Stuart-Landau, Kuramoto/XY) integrators."""

from . import phase_measures
from .costs import GroupCrossEntropy, GroupSquared
from .events import EventEngine, EventResult
from .landscape import Landscape, find_fixed_points
from .langevin import Langevin, SettleResult, SimulationDiverged
from .oscillators import Drive, Integrator, Kuramoto, Network, OscResult, StuartLandau, xy_energy

__all__ = ["Drive", "EventEngine", "EventResult", "GroupCrossEntropy", "GroupSquared", "Integrator", "Kuramoto", "Landscape", "Langevin", "Network",
           "OscResult", "SettleResult", "SimulationDiverged", "StuartLandau", "find_fixed_points", "phase_measures", "xy_energy"]
