"""The kernel end of the `codeflow` comm to the JupyterLab extension.

The magic uses this link for three things the notebook alone cannot do: live progress in the
sidebar while a request runs, write-back that carries cell metadata (`set_next_input` cannot),
and user settings from the Settings Editor. Everything degrades quietly: with no kernel, no
frontend, or a frontend without the extension, `connected` stays false and every send returns
False so the magic can fall back to `set_next_input`.

Comm messages from the frontend are handled by the kernel between cell executions, so the
`hello` that answers `open()` arrives after the `%load_ext` cell has finished.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from .events import ProgressState
from .options import lab_fields, lab_settings
from .version import __version__

COMM_TARGET = "codeflow"
"""The comm target name on both sides."""

WriteBackMode = Literal["below", "replace"]


log = logging.getLogger(__name__)


def _kernel_of(shell: Any) -> Any | None:
    """The ipykernel kernel behind a shell, or None for a plain IPython shell."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "get_parent"):
        return None
    return kernel


def current_cell_id(shell: Any) -> str | None:
    """The id of the notebook cell being executed, as JupyterLab sends it.

    JupyterLab puts the cell id in the execute_request's `metadata.cellId`; other frontends
    (and plain IPython) send none.
    """
    kernel = _kernel_of(shell)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell")
    except TypeError:  # ipykernel < 6 had no channel argument
        parent = kernel.get_parent()
    except Exception:  # no request is being processed
        return None
    metadata = parent.get("metadata") if isinstance(parent, Mapping) else None
    if not isinstance(metadata, Mapping):
        return None
    cell_id = metadata.get("cellId")
    return cell_id if isinstance(cell_id, str) and cell_id else None


def normalize_settings(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only known, valid settings (Python names); a bad value is dropped, not guessed.

    Accepts the Settings Editor's camelCase names too, so either side may rename freely; the
    fields and their bounds are the option table's (`options.LAB_OPTIONS`).
    """
    return lab_settings(raw)


class FrontendLink:
    """One link per shell between the magic and the codeflow JupyterLab extension."""

    _links: ClassVar[weakref.WeakKeyDictionary[Any, FrontendLink]] = weakref.WeakKeyDictionary()

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.connected = False
        self.frontend_version = ""
        self._settings: dict[str, Any] = {}
        self._next_options: dict[str, dict[str, Any]] = {}
        self.discarded: set[str] = set()
        """Request cells whose code awaiting review the user discarded in the sidebar."""
        self._comm: Any | None = None
        self._target_registered = False

    @classmethod
    def for_shell(cls, shell: Any) -> FrontendLink:
        """The shell's link, created on first use."""
        link = cls._links.get(shell)
        if link is None:
            link = cls(shell)
            cls._links[shell] = link
        return link

    # -- settings and options -------------------------------------------------------------

    @property
    def settings(self) -> dict[str, Any]:
        """The user's frontend settings (`model`, `max_attempts`, `backend`, `writeback`)."""
        return dict(self._settings)

    @property
    def writeback_enabled(self) -> bool:
        return bool(self._settings.get("writeback", True))

    def config_extra(self) -> dict[str, Any]:
        """Settings as `load_settings(extra=...)` keys; the magic's own options go on top."""
        extra: dict[str, Any] = {}
        for option, lab in lab_fields():
            if option.setting is None:
                continue
            value = self._settings.get(lab.name)
            if value not in (None, ""):
                extra[option.setting] = value
        return extra

    def pop_options(self, cell_id: str | None) -> dict[str, Any]:
        """One-shot options the sidebar set for the next run of a cell (e.g. a focus)."""
        if not cell_id:
            return {}
        return self._next_options.pop(cell_id, {})

    # -- the comm ---------------------------------------------------------------------------

    def open(self) -> bool:
        """Open (or reopen) the comm to the frontend; False when there is no kernel."""
        if _kernel_of(self.shell) is None:
            return False
        try:
            import comm as comm_pkg
        except ImportError:
            return False
        if not self._target_registered:
            comm_pkg.get_comm_manager().register_target(COMM_TARGET, self._on_frontend_open)
            self._target_registered = True
        if self._comm is not None and not getattr(self._comm, "_closed", False):
            return True
        new = comm_pkg.create_comm(
            target_name=COMM_TARGET, data={"type": "open", "version": __version__}
        )
        self._adopt(new)
        return True

    def close(self) -> None:
        """Close the comm and forget the frontend (on `%unload_ext`)."""
        comm, self._comm = self._comm, None
        self.connected = False
        if comm is not None and not getattr(comm, "_closed", False):
            comm.close()
        if self._target_registered:
            try:
                import comm as comm_pkg

                comm_pkg.get_comm_manager().unregister_target(COMM_TARGET, self._on_frontend_open)
            except (ImportError, KeyError):
                pass
            self._target_registered = False

    def _adopt(self, comm: Any) -> None:
        self._comm = comm
        self.connected = False
        comm.on_msg(lambda msg: self._on_comm_msg(comm, msg))
        comm.on_close(lambda msg: self._on_comm_close(comm))

    def _on_frontend_open(self, comm: Any, msg: Mapping[str, Any]) -> None:
        """The frontend opened a comm (after a page reload): it replaces the old one."""
        old = self._comm
        self._adopt(comm)
        if old is not None and old is not comm and not getattr(old, "_closed", False):
            # Dropped without a comm_close: the page that owned it is gone, and the new page
            # would only log "Comm not found" for a comm it never knew.
            old._closed = True
            try:
                import comm as comm_pkg

                comm_pkg.get_comm_manager().unregister_comm(old)
            except (ImportError, KeyError):
                pass
        self.handle_message(msg.get("content", {}).get("data") or {})

    def _on_comm_msg(self, comm: Any, msg: Mapping[str, Any]) -> None:
        if comm is not self._comm:
            return
        self.handle_message(msg.get("content", {}).get("data") or {})

    def _on_comm_close(self, comm: Any) -> None:
        if comm is self._comm:
            self._comm = None
            self.connected = False

    def handle_message(self, data: Mapping[str, Any]) -> None:
        """Apply one message from the frontend; unknown or malformed ones are ignored."""
        if not isinstance(data, Mapping):
            return
        kind = data.get("type")
        if kind == "hello":
            self.connected = True
            self.frontend_version = str(data.get("version", ""))
            settings = data.get("settings")
            self._settings = normalize_settings(settings) if isinstance(settings, Mapping) else {}
        elif kind == "settings":
            settings = data.get("settings")
            if isinstance(settings, Mapping):
                self._settings = normalize_settings(settings)
        elif kind == "discard":
            cell_id = data.get("cell_id")
            if isinstance(cell_id, str) and cell_id:
                self.discarded.add(cell_id)
        elif kind == "set_next_options":
            cell_id = data.get("cell_id")
            options = data.get("options")
            if isinstance(cell_id, str) and cell_id and isinstance(options, Mapping):
                self._next_options[cell_id] = dict(options)
        else:
            log.debug("codeflow: ignored frontend message %r", kind)

    def _send(self, data: dict[str, Any]) -> bool:
        comm = self._comm
        if not self.connected or comm is None or getattr(comm, "_closed", False):
            return False
        try:
            comm.send(data)
        except Exception as exc:  # a broken link must never break the user's cell
            log.debug("codeflow: comm send failed: %s", exc)
            return False
        return True

    # -- outgoing -------------------------------------------------------------------------

    def send_event(
        self,
        cell_id: str | None,
        event: Mapping[str, Any] | Any,
        state: ProgressState | Mapping[str, Any] | None = None,
    ) -> bool:
        """Live progress for the sidebar: a FlowEvent or its dict (kind, attempt, data).

        `state` is the progress state the event led to (`events.reduce`); with it the sidebar
        words what the run is doing from the same state the magic shows, instead of working
        it out from the event's kind again. The event itself still goes along: the sidebar
        keeps each attempt's full record, which the state leaves out.
        """
        if not isinstance(event, Mapping):
            event = {
                "kind": getattr(event, "kind", ""),
                "attempt": getattr(event, "attempt", 0),
                "data": getattr(event, "data", {}),
            }
        message: dict[str, Any] = {"type": "event", "cell_id": cell_id, "event": dict(event)}
        if state is not None:
            message["state"] = state.to_dict() if isinstance(state, ProgressState) else dict(state)
        return self._send(message)

    def send_record(self, cell_id: str | None, record: Mapping[str, Any]) -> bool:
        """The finished run's record (`RunRecord.to_dict()`)."""
        return self._send({"type": "record", "cell_id": cell_id, "record": dict(record)})

    def write_plan(
        self,
        cell_id: str | None,
        cells: list[dict[str, Any]],
        request_metadata: Mapping[str, Any],
    ) -> bool:
        """Ask the frontend to put a plan's step cells below the request (replacing the
        cells of its previous plan; a step cell the user edited stays, as with write-back).
        False means nobody will: the caller falls back to `set_next_input`."""
        if not cell_id or not self.connected:
            return False
        if not self.writeback_enabled:  # no cells, but the request still records its plan
            self.save_metadata(cell_id, request_metadata)
            return True
        return self._send(
            {
                "type": "plan",
                "cell_id": cell_id,
                "cells": cells,
                "request_metadata": dict(request_metadata),
            }
        )

    def send_undone(self, cell_id: str, answer: Mapping[str, Any]) -> bool:
        """What `%codeflow undo` put back, so the sidebar restores the linked cell too."""
        return self._send(
            {
                "type": "undone",
                "cell_id": cell_id,
                "ok": bool(answer.get("ok")),
                "restored": [str(n) for n in answer.get("restored", ())],
                "removed": [str(n) for n in answer.get("removed", ())],
                "kept": [str(n) for n in answer.get("kept", ())],
                "message": str(answer.get("message", "")),
            }
        )

    def save_metadata(self, cell_id: str | None, request_metadata: Mapping[str, Any]) -> bool:
        """Record a run that wrote no code (failed, or write-back off) in the request cell's
        metadata; the frontend keeps the link to an existing code cell."""
        if not cell_id:
            return False
        return self._send(
            {"type": "metadata", "cell_id": cell_id, "request_metadata": dict(request_metadata)}
        )

    def write_back(
        self,
        cell_id: str | None,
        code: str,
        request_metadata: Mapping[str, Any],
        code_metadata: Mapping[str, Any],
        mode: WriteBackMode = "below",
    ) -> bool:
        """Ask the frontend to write the code into the notebook.

        `below` puts `code` into the request's linked code cell (created if missing);
        `replace` makes `code` the request cell's full new source. False means nobody will
        do it (no frontend or no cell id): the caller falls back to `set_next_input`. When
        the user turned write-back off in the settings nothing is sent and the answer is
        True, so that no fallback writes the code anyway.
        """
        if mode not in ("below", "replace"):
            raise ValueError(f"write-back mode must be 'below' or 'replace', not {mode!r}")
        if not cell_id or not self.connected:
            return False
        if not self.writeback_enabled:
            return True
        return self._send(
            {
                "type": "writeback",
                "cell_id": cell_id,
                "code": code,
                "request_metadata": dict(request_metadata),
                "code_metadata": dict(code_metadata),
                "mode": mode,
            }
        )
