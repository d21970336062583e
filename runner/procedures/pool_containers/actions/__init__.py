"""The pools actions, in playbook order."""

from runner.procedures.pool_containers.actions.check import CheckPools
from runner.procedures.pool_containers.actions.fix import FixPools

ACTIONS = (CheckPools, FixPools)
