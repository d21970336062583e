"""The archive world: a generated image-archive site with one damaged volume."""

from __future__ import annotations

from runner.procedures.archive_volume.world.generator import Options, generate

__all__ = ["Options", "generate"]
