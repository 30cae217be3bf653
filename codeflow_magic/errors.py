"""The project's exception tree (every class subclasses Exception).

Error *classification* of failed attempts lives in `analysis`; these exceptions are for
failures of codeflow itself and of its inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import RunRecord

EXIT_OK = 0
EXIT_FAILED = 1
"""A request or a cell failed (every attempt, or a step)."""
EXIT_USAGE = 2
EXIT_PROVIDER = 3
EXIT_BACKEND = 4
EXIT_UNAVAILABLE = 5
EXIT_BUSY = 6
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
"""The command line's exit statuses; each exception below names its own."""


class CodeFlowError(Exception):
    """Base class; `exit_status` is what the CLI returns for it."""

    exit_status = EXIT_FAILED


class UsageError(CodeFlowError):
    """Bad input from the user: an option, a request, a config value."""

    exit_status = EXIT_USAGE


class ConfigError(UsageError):
    """A configuration key or value is invalid; the message names the key and allowed values."""


class ProviderError(CodeFlowError):
    """The model could not be asked as things stand (no key, key rejected, bad request, unknown
    model, replay miss); `ProviderUnavailable` is the transient kind."""

    exit_status = EXIT_PROVIDER
    record: RunRecord | None = None
    """The run so far when this ended a run: the attempts made before it, and the cause."""


class AuthenticationError(ProviderError):
    pass


class ProviderUnavailable(ProviderError):
    """The model API could not answer for now (rate limit, overload, server error, timeout,
    lost connection) even after retries: a distinct status, so scripts know to try again later."""

    exit_status = EXIT_UNAVAILABLE


class CacheMiss(ProviderError):
    """Replay mode and no recorded response for the request."""


class BackendError(CodeFlowError):
    """An execution backend could not start or broke beyond recovery."""

    exit_status = EXIT_BACKEND


class BackendUnavailable(BackendError):
    """The backend cannot work on this machine; the message says why and how to fix it."""


class NotebookBusy(CodeFlowError):
    """Another codeflow run holds the notebook's lock; nothing was written."""

    exit_status = EXIT_BUSY
