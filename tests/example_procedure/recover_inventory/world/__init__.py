"""The inventory world generator: `recover world inventory DIR`."""

from recover_inventory.world.generator import Options, generate

__all__ = ["Options", "generate"]
