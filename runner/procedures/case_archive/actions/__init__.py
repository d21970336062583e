"""The cases.* actions, in playbook order."""

from __future__ import annotations

from runner.procedures.case_archive.actions.restore import DeleteCase, Restore
from runner.procedures.case_archive.actions.store import Store
from runner.procedures.case_archive.actions.tapes import LoadTape, NewTape, ReinitTape, WriteTape

ACTIONS = (Store, WriteTape, Restore, LoadTape, NewTape, ReinitTape, DeleteCase)
