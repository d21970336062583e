"""The roll-forward actions, in playbook order."""

from runner.procedures.roll_forward.actions.flags import SetFlags, ShowFlags
from runner.procedures.roll_forward.actions.recover import Recover
from runner.procedures.roll_forward.actions.restore import Restore

ACTIONS = (ShowFlags, SetFlags, Restore, Recover)
