"""The pools world: a repository restored from backups of different ages."""

from runner.procedures.pool_containers.world.generator import Options, generate

__all__ = ["Options", "generate"]
