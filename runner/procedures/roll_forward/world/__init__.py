"""The roll-forward world: a generated site with databases, backups, a crashed log set."""

from runner.procedures.roll_forward.world.generator import Options, generate

__all__ = ["Options", "generate"]
