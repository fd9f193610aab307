"""How wiring changes. Issue 2 ships Hebbian pattern storage (``plasticity.hebbian``);
Equilibrium Propagation, homeostasis and structural plasticity arrive with later issues."""

from .hebbian import store_patterns

__all__ = ["store_patterns"]
