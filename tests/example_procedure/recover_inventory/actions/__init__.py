"""The inventory actions, in playbook order."""

from __future__ import annotations

from recover_inventory.actions.purge import Purge
from recover_inventory.actions.scan import Scan

ACTIONS = (Scan, Purge)
