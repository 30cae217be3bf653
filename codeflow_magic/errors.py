"""The project's exception tree (every class subclasses Exception).

Error *classification* of failed attempts lives in `analysis`; these exceptions are for
failures of codeflow itself and of its inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import RunRecord


class CodeFlowError(Exception):
    """Base class; `exit_status` is what the CLI returns for it."""

    exit_status = 1


class UsageError(CodeFlowError):
    """Bad input from the user: an option, a request, a config value."""

    exit_status = 2


class ConfigError(UsageError):
    """A configuration key or value is invalid; the message names the key and allowed values."""


class ProviderError(CodeFlowError):
    """The model could not be asked as things stand (no key, key rejected, bad request, unknown
    model, replay miss); `ProviderUnavailable` is the transient kind."""

    exit_status = 3
    record: RunRecord | None = None
    """The run so far when this ended a run: the attempts made before it, and the cause."""


class AuthenticationError(ProviderError):
    pass


class ProviderUnavailable(ProviderError):
    """The model API could not answer for now (rate limit, overload, server error, timeout,
    lost connection) even after retries: a distinct status, so scripts know to try again later."""

    exit_status = 5


class CacheMiss(ProviderError):
    """Replay mode and no recorded response for the request."""


class BackendError(CodeFlowError):
    """An execution backend could not start or broke beyond recovery."""

    exit_status = 4


class BackendUnavailable(BackendError):
    """The backend cannot work on this machine; the message says why and how to fix it."""


class NotebookBusy(CodeFlowError):
    """Another codeflow run holds the notebook's lock; nothing was written."""

    exit_status = 6
