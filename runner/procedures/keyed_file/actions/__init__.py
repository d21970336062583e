"""The keyed-file actions, in playbook order."""

from runner.procedures.keyed_file.actions.count import Count
from runner.procedures.keyed_file.actions.reload import Reload
from runner.procedures.keyed_file.actions.repair import Repair
from runner.procedures.keyed_file.actions.verify import Verify

ACTIONS = (Verify, Repair, Count, Reload)
