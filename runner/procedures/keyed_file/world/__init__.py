"""`recover world keyed`: deterministic keyed-file sites with crash damage."""

from runner.procedures.keyed_file.world.generator import Options, generate

__all__ = ["Options", "generate"]
