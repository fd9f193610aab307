"""How tissue state moves in time: energies, forces and the Langevin settling engine."""

from .langevin import Langevin, SettleResult, SimulationDiverged

__all__ = ["Langevin", "SettleResult", "SimulationDiverged"]
