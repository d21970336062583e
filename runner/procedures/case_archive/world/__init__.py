"""The case-archive world generator (`recover world cases`)."""

from runner.procedures.case_archive.world.generator import Options, generate

__all__ = ["Options", "generate"]
