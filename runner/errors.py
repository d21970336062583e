"""User-facing errors. Each carries its exit code; the CLI maps them to a message.

Anything that is not a RecoverError is a bug: the CLI logs it with a traceback
to the run log and tells the user where to find it.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1  # invalid playbook, failed precondition, failed step, bad media
EXIT_USAGE = 2  # wrong command-line usage
EXIT_REFUSED = 3  # a safety gate said no: confirmation, loss budget, stale plan, lock
EXIT_INTERRUPTED = 130  # Ctrl-C


class RecoverError(Exception):
    """An expected failure with a plain message (and optionally a fix)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def render(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


class UsageError(RecoverError):
    exit_code = EXIT_USAGE


class PlaybookError(RecoverError):
    """The playbook is invalid; `diagnostics` holds every problem found."""

    def __init__(self, diagnostics: Sequence[object], message: str | None = None) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__(message or f"{len(diagnostics)} problem(s) in the playbook")


class SiteError(RecoverError):
    """The site is missing, unreadable, or a path leaves it."""


class MediaError(RecoverError):
    """Media are missing, truncated or corrupt."""


class PreconditionFailed(RecoverError):
    """A step's preconditions do not hold on this site."""


class StepFailed(RecoverError):
    """A step failed while running; its changes were rolled back."""


class SafetyRefusal(RecoverError):
    """A safety gate refused. The refused step's uncommitted work is rolled back;
    batches it committed earlier (each within every gate) stay, and a re-run
    continues from them."""

    exit_code = EXIT_REFUSED


class ConfirmationRequired(SafetyRefusal):
    pass


class LossBudgetExceeded(SafetyRefusal):
    pass


class StalePlan(SafetyRefusal):
    pass


class SiteLocked(SafetyRefusal):
    pass
