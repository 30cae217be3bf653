# IPython's display and magic_arguments helpers carry no type hints.
# mypy: disable-error-code="no-untyped-call,untyped-decorator"
"""`%%codeflow` and `%codeflow`: a thin adapter from a notebook cell to the flow.

The cell body is the request. The flow runs on a private event loop in a worker thread (the
kernel's own loop is busy running this very cell), while the main thread pumps jobs: running
generated code in the shell (inline backend) and refreshing one live progress display. When
the flow is done the final attempt's outputs are re-emitted as a plain cell would show them,
followed by the run record (its status line and folded history in one output); the final
code is written back below the cell.

The parts live beside it: the settings of a cell (`cellsettings`), the session's flows and
runs (`session`), the live progress (`progress`), what a cell shows (`display`) and where the
code goes (`writeback`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, magics_class
from IPython.core.magic import cell_magic as _cell_magic
from IPython.core.magic import line_magic as _line_magic
from IPython.core.magic_arguments import argument, magic_arguments

from . import display
from .cellsettings import OVERRIDES_ENV, backend_for, cache_dir_for, cell_settings
from .errors import CodeFlowError, ProviderError
from .errors import UsageError as CodeflowUsageError
from .models import DEFAULT_MAX_STEPS, PlanRecord, RunRecord
from .options import magic_decorators
from .progress import Progress
from .review import (
    Origin,
    parse_target,
    pick,
    previous_code,
    review_text,
    split_words,
    undo_text,
)
from .session import Session
from .writeback import finish_plan, save_metadata, write_back

F = TypeVar("F", bound=Callable[..., Any])
cell_magic = cast(Callable[[str], Callable[[F], F]], _cell_magic)
line_magic = cast(Callable[[str], Callable[[F], F]], _line_magic)

__all__ = ["OVERRIDES_ENV", "CodeflowMagics", "load_ipython_extension"]


def _frontend() -> Any:
    """The JupyterLab link module, or None when it is not part of this install."""
    try:
        from . import frontend
    except ImportError:
        return None
    return frontend


def _cell_error(exc: CodeFlowError) -> Exception:
    """What a failed cell raises: the user's mistakes as IPython's UsageError, anything else
    under its own class (`ProviderUnavailable`, `BackendError`...) as the CLI names it, shown
    as one line like a UsageError rather than a traceback into codeflow."""
    if isinstance(exc, CodeflowUsageError) or type(exc) is CodeFlowError:
        return IPythonUsageError(str(exc))
    line = f"{type(exc).__name__}: {exc}"
    exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
    exc.__traceback__ = None
    return exc


@magics_class
class CodeflowMagics(Magics):
    """`%%codeflow` (a request) and `%codeflow status|config|history|approve|undo`."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        from .config import SECTIONS

        self.sections: dict[str, Any] = {}
        for name, cls in SECTIONS.items():
            section = cls(parent=shell)
            self.sections[name] = section
            if shell is not None:
                shell.configurables.append(section)
        self.session = Session()
        self._one_shot: dict[str, Any] = {}
        """The sidebar's one-shot options for the cell running now (e.g. an approval)."""
        self._link: Any = None

    @property
    def history(self) -> list[RunRecord]:
        return self.session.history

    @property
    def plans(self) -> list[PlanRecord]:
        return self.session.plans

    @property
    def link(self) -> Any:
        if self._link is None:
            module = _frontend()
            if module is not None:
                try:
                    self._link = module.FrontendLink.for_shell(self.shell)
                except Exception:
                    self._link = None
        return self._link

    def _connected_link(self) -> Any:
        """The frontend link when the JupyterLab extension answered, else None."""
        link = self.link
        return link if link is not None and getattr(link, "connected", False) else None

    def settings_for(
        self, args: Any, cell_id: str | None = None
    ) -> tuple[Any, dict[str, Any], bool]:
        """Effective settings (`cellsettings.cell_settings`), the values set above the file,
        and whether the panel allows write-back."""
        settings, flat, writeback, self._one_shot = cell_settings(
            self.sections, self._connected_link(), args, cell_id
        )
        return settings, flat, writeback

    # -- %%codeflow --------------------------------------------------------------------------

    @cell_magic("codeflow")
    def codeflow_cell(self, line: str, cell: str) -> None:
        """Turn the plain-words request in the cell body into working code, run and fix it.

        The final attempt's outputs appear as in a plain cell, then a status line and the run
        history (collapsed). The final code is written into a linked code cell below (updated in
        place on re-run); with --replace this cell becomes the code, the request kept as a
        comment header. Example::

            %%codeflow --max-attempts 4 --check "len(df) > 0"
            load sales.csv into df and plot monthly revenue
        """
        self._request(line, cell, self._cell_id())

    for _decorate in magic_decorators(argument):  # the options, from the option table
        codeflow_cell = _decorate(codeflow_cell)
    codeflow_cell = magic_arguments()(codeflow_cell)
    del _decorate

    def _request(
        self, line: str, cell: str, cell_id: str | None, approved_code: str | None = None
    ) -> None:
        """One request from a cell (or an approval of one): settings, run, show, write back."""
        self._one_shot = {}
        try:
            from .config import check_request

            args = self._parse(line)
            settings, flat, panel_writeback = self.settings_for(args, cell_id)
            if approved_code is None and self._one_shot.get("approve") is True:
                approved_code = self._sidebar_approval(cell_id)
            request = check_request(
                cell.strip(), limit=settings.generation.max_request_chars, where="this cell"
            )
            backend = backend_for(settings, flat)
            flow = self.session.flow_for(
                settings, backend, "off" if args.no_cache else None, self.shell
            )
            _ = flow.provider  # bad model names and cache modes surface here, as one line
        except CodeFlowError as exc:
            raise _cell_error(exc) from None
        mode = "replace" if args.replace else "below"
        if args.no_writeback or not panel_writeback:
            mode = "off"
        cells = self.session.notebook_cells(self.shell, settings, cell_id, request)
        record = self._run(flow, request, args, settings, cell_id, cells, approved_code)
        if record is None:
            return
        link = self._connected_link()
        if isinstance(record, PlanRecord):
            self.plans.append(record)
            finish_plan(link, self.shell, record, request, cell_id)
            return
        self.history.append(record)
        self.session.origins[record.run_id] = Origin(request, line, cell_id, flow)
        display.show(record)
        if record.stop_reason == "awaiting_review":
            number = len(self.history)
            before = previous_code(self.history, self.session.origins, cell_id, number)
            print(review_text(record, before, number))
        write_back(link, self.shell, record, request, line, mode, cell_id)

    def _sidebar_approval(self, cell_id: str | None) -> str:
        """The code the sidebar's Run approves: what the linked cell holds now (the user may
        have edited it), else the code held for review."""
        _, record = pick(
            self.history,
            self.session.origins,
            self.session.closed_runs(self._connected_link()),
            number=None,
            cell=cell_id,
            want="approve",
        )
        self.session.closed.add(record.run_id)
        code = self._one_shot.get("code")
        return code if isinstance(code, str) and code.strip() else record.final_code

    def _parse(self, line: str) -> Any:
        """POSIX quoting (`--check "a == 'b'"`), which IPython's own splitter leaves quoted."""
        import shlex

        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise CodeFlowError(f"cannot read the options: {exc}") from None
        return cast(Any, self.codeflow_cell).parser.parse_args(argv)

    def _cell_id(self) -> str | None:
        module = _frontend()
        if module is not None:
            try:
                found = module.current_cell_id(self.shell)
            except Exception:
                found = None
            if found:
                return str(found)
        header = getattr(self.shell, "parent_header", None) or {}
        cell_id = (header.get("metadata") or {}).get("cellId")
        return str(cell_id) if cell_id else None

    def _run(
        self,
        flow: Any,
        request: str,
        args: Any,
        settings: Any,
        cell_id: str | None,
        cells: tuple[tuple[str, str], ...] = (),
        approved_code: str | None = None,
    ) -> RunRecord | PlanRecord | None:
        from .executors.inline import InlineExecutor, MainThreadPump

        pump = MainThreadPump()
        try:
            executor = flow.executor
        except CodeFlowError as exc:
            raise _cell_error(exc) from None
        if isinstance(executor, InlineExecutor):
            executor.pump = pump
        link = self._connected_link()
        progress = Progress(request, settings.improvement.max_attempts, link, cell_id or "")
        if args.steps:
            job = flow.aplan(
                request,
                max_steps=args.max_steps or DEFAULT_MAX_STEPS,
                check=args.check,
                on_event=progress.on_event,
                notebook=cells,
            )
        else:
            job = flow.arun(
                request,
                check=args.check,
                verify=args.verify,
                on_event=progress.on_event,
                notebook=cells,
                approved_code=approved_code,
            )
        future = flow.submit(job)
        self.last_progress = progress
        try:
            try:
                pump.run_until(future, idle=progress.tick)
            except KeyboardInterrupt:
                future.cancel()
                pump.run_until(future)
                display.clear()
                if link is not None:  # the sidebar keeps the previous record
                    progress.tick(force=True, render=False)
                    try:
                        link.send_event(cell_id or "", {"kind": "interrupted", "data": {}})
                    except Exception:
                        pass
                print("codeflow: interrupted")
                return None
            try:
                record: RunRecord | PlanRecord = future.result()
            except CodeFlowError as exc:
                display.clear()
                partial = exc.record if isinstance(exc, ProviderError) else None
                if partial is not None:  # what ran before the model failed, and why
                    self.history.append(partial)
                    display.show(partial)
                    progress.tick(force=True, render=False)
                    if link is not None:
                        try:
                            link.send_record(cell_id or "", partial.to_dict())
                        except Exception:
                            pass
                    save_metadata(link, partial, request, cell_id)
                raise _cell_error(exc) from None
        finally:
            if isinstance(executor, InlineExecutor):
                executor.pump = None
        progress.tick(force=True, render=False)  # flush the last events to the panel
        if link is not None and isinstance(record, RunRecord):
            try:
                link.send_record(cell_id or "", record.to_dict())
            except Exception:
                pass
        if progress.display_id is not None:
            display.clear()
        return record

    # -- %codeflow ---------------------------------------------------------------------------

    @line_magic("codeflow")
    def codeflow_line(self, line: str) -> None:
        """`%codeflow status` (backend, model, cache, kernel), `%codeflow config` (effective
        settings), `%codeflow history [N]` (the last runs in this session)."""
        words = line.split()
        command = words[0] if words else "status"
        try:
            if command == "status":
                print(self._status())
            elif command == "config":
                from .providers import resolve_cache_mode

                settings, _, _ = self.settings_for(None)
                shown = settings.as_dict()
                # The mode runs use (CODEFLOW_CACHE wins over the settings), as status says.
                shown["cache"]["mode"] = resolve_cache_mode(None, settings.cache.mode)
                print(json.dumps(shown, indent=2, sort_keys=True, default=str))
            elif command == "history":
                print(display.history_text(self.history, self.session.closed, words[1:]))
            elif command == "approve":
                self._approve(split_words(line)[1:])
            elif command == "undo":
                self._undo(split_words(line)[1:])
            else:
                raise CodeFlowError(
                    f"unknown subcommand {command!r}; use status, config, history [N], "
                    "approve [N] or undo [N]"
                )
        except CodeFlowError as exc:
            raise IPythonUsageError(str(exc)) from None

    def _approve(self, words: list[str]) -> None:
        """Run code held for review through the normal loop (fixes included)."""
        number, cell = parse_target(words, "approve")
        _, record = pick(
            self.history,
            self.session.origins,
            self.session.closed_runs(self._connected_link()),
            number=number,
            cell=cell,
            want="approve",
        )
        origin = self.session.origins[record.run_id]
        self.session.closed.add(record.run_id)
        self._request(origin.line, origin.request, origin.cell_id, record.final_code)

    def _undo(self, words: list[str]) -> None:
        """Put back the variables a run changed; the sidebar restores the linked cell."""
        from .rollback import call

        number, cell = parse_target(words, "undo")
        index, record = pick(
            self.history,
            self.session.origins,
            self.session.closed_runs(self._connected_link()),
            number=number,
            cell=cell,
            want="undo",
        )
        origin = self.session.origins[record.run_id]
        answer = self.session.in_flow(
            origin.flow, lambda: call(origin.flow.executor, "undo", undo_key=record.undo_key)
        )
        if answer.get("ok"):
            self.session.closed.add(record.run_id)
        print(undo_text(answer, index))
        link = self._connected_link()
        if link is not None and origin.cell_id and hasattr(link, "send_undone"):
            try:
                link.send_undone(origin.cell_id, answer)
            except Exception:
                pass

    def _status(self) -> str:
        from .providers import resolve_cache_dir

        settings, flat, _ = self.settings_for(None)
        backend = backend_for(settings, flat)
        cache_dir = cache_dir_for(settings) or resolve_cache_dir(
            None, settings.cache.dir, Path.cwd()
        )
        return display.status_text(
            settings,
            backend,
            cache_dir,
            self.session.running(),
            self.history,
            self._connected_link() is not None,
        )

    def close(self) -> None:
        self.session.close()


_LOADED: dict[int, CodeflowMagics] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (cheap: the SDK and the flow load on first use)."""
    if id(ipython) in _LOADED:
        return
    magics = CodeflowMagics(ipython)
    ipython.register_magics(magics)
    _LOADED[id(ipython)] = magics
    module = _frontend()
    if module is not None:
        try:
            module.FrontendLink.for_shell(ipython).open()
        except Exception:
            pass


def unload_ipython_extension(ipython: Any) -> None:
    magics = _LOADED.pop(id(ipython), None)
    if magics is None:
        return
    magics.close()
    for section in magics.sections.values():
        if section in ipython.configurables:
            ipython.configurables.remove(section)
    for kind in ("cell", "line"):
        ipython.magics_manager.magics[kind].pop("codeflow", None)
