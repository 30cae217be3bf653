# IPython's display and magic_arguments helpers carry no type hints.
# mypy: disable-error-code="no-untyped-call,untyped-decorator"
"""`%%codeflow` and `%codeflow`: a thin adapter from a notebook cell to the flow.

The cell body is the request. The flow runs on a private event loop in a worker thread (the
kernel's own loop is busy running this very cell), while the main thread pumps jobs: running
generated code in the shell (inline backend) and refreshing one live progress display. When
the flow is done the final attempt's outputs are re-emitted as a plain cell would show them,
followed by the run record (its status line and folded history in one output); the final
code is written back below the cell.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, magics_class
from IPython.core.magic import cell_magic as _cell_magic
from IPython.core.magic import line_magic as _line_magic
from IPython.core.magic_arguments import argument, magic_arguments

from .errors import CodeFlowError, ProviderError
from .errors import UsageError as CodeflowUsageError
from .models import DEFAULT_MAX_STEPS, PlanRecord, RunRecord
from .options import MAGIC_OPTIONS, OPTIONS, magic_decorators, settings_from
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
from .where import cells_above, notebook_dir

F = TypeVar("F", bound=Callable[..., Any])
cell_magic = cast(Callable[[str], Callable[[F], F]], _cell_magic)
line_magic = cast(Callable[[str], Callable[[F], F]], _line_magic)

OVERRIDES_ENV = "CODEFLOW_OVERRIDES"
"""JSON list of `section.name=value` strings applied to every request (set by `codeflow run`)."""

CELL_OPTION_KEYS: dict[str, str] = {
    name: str(OPTIONS[name].setting) for name in ("focus", "max_attempts", "model")
}
"""One-shot per-cell options the sidebar may set (Python names) and the settings they change."""


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
    """`%%codeflow` (a request) and `%codeflow status|config|history`."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        from .config import SECTIONS

        self.sections: dict[str, Any] = {}
        for name, cls in SECTIONS.items():
            section = cls(parent=shell)
            self.sections[name] = section
            if shell is not None:
                shell.configurables.append(section)
        self.history: list[RunRecord] = []
        self.plans: list[PlanRecord] = []
        self._origins: dict[str, Origin] = {}
        """run id → where the run came from (for approve and undo)."""
        self._closed: set[str] = set()
        """Runs already approved, discarded or undone."""
        self._one_shot: dict[str, Any] = {}
        """The sidebar's one-shot options for the cell running now (e.g. an approval)."""
        self._occurrences: dict[str, int] = {}
        self._flows: dict[str, Any] = {}
        self._link: Any = None

    # -- settings ----------------------------------------------------------------------------

    def _configured(self) -> dict[str, Any]:
        """Values changed through `ipython_config.py` or `%config` (non-defaults only)."""
        flat: dict[str, Any] = {}
        for name, section in self.sections.items():
            for trait_name, trait in section.traits(config=True).items():
                value = getattr(section, trait_name)
                if value != trait.default():
                    flat[f"{name}.{trait_name}"] = value
        return flat

    def _connected_link(self) -> Any:
        """The frontend link when the JupyterLab extension answered, else None."""
        link = self.link
        return link if link is not None and getattr(link, "connected", False) else None

    def _frontend_overrides(self, cell_id: str | None) -> tuple[dict[str, Any], bool]:
        """The sidebar's settings and its one-shot options for this cell, as dotted keys.

        Returns (settings, write-back enabled). The settings come from the link in Python
        names (`config_extra`); the one-shot options (the panel's "Improve" buttons) go on
        top. An option the settings would reject is dropped: it came from the panel, not from
        the user's typing, and must not break the cell.
        """
        from .config import validate_value
        from .errors import ConfigError

        link = self._connected_link()
        if link is None:
            return {}, True
        values: dict[str, Any] = dict(link.config_extra())
        self._one_shot = self._pop_options(link, cell_id)
        for name, value in self._one_shot.items():
            key = CELL_OPTION_KEYS.get(name)
            if key is None or value is None or value == "":
                continue
            try:
                validate_value(key, value)
            except ConfigError:
                continue
            values[key] = value
        return values, bool(link.writeback_enabled)

    @staticmethod
    def _pop_options(link: Any, cell_id: str | None) -> dict[str, Any]:
        if not cell_id:
            return {}
        try:
            options = link.pop_options(cell_id)
        except Exception:
            return {}
        return dict(options) if isinstance(options, Mapping) else {}

    def settings_for(
        self, args: Any, cell_id: str | None = None
    ) -> tuple[Any, dict[str, Any], bool]:
        """Effective settings: file < ipython config/%config < CODEFLOW_OVERRIDES < panel < line.

        Also says whether the panel allows write-back (True without a panel).
        """
        from .config import build_config, make_settings, parse_overrides

        flat: dict[str, Any] = dict(self._configured())
        env = os.environ.get(OVERRIDES_ENV, "").strip()
        if env:
            try:
                items = json.loads(env)
            except ValueError:
                items = None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise CodeFlowError(
                    f'{OVERRIDES_ENV} must be a JSON list of "section.name=value" strings'
                )
            flat.update(parse_overrides(items))
        panel, writeback = self._frontend_overrides(cell_id)
        flat.update(panel)
        if args is not None:
            flat.update(parse_overrides(args.overrides))
            flat.update(settings_from(args, MAGIC_OPTIONS))
        cfg = build_config(work_dir=Path.cwd(), overrides=flat)
        return make_settings(cfg), flat, writeback

    def _backend(self, settings: Any, flat: Mapping[str, Any]) -> str:
        """inline unless someone chose a backend (a notebook wants its own variables)."""
        if "execution.backend" in flat:
            return str(settings.execution.backend)
        from .config import find_config_file, load_yaml

        path = find_config_file(Path.cwd())
        if path is not None and "execution.backend" in load_yaml(path):
            return str(settings.execution.backend)
        return "inline"

    def cache_dir(self, settings: Any) -> Path | None:
        if settings.cache.dir:
            return None  # the provider resolves the configured folder
        folder = notebook_dir()
        return folder / ".codeflow" / "cache" if folder else None

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

    def _flow(self, settings: Any, backend: str, cache_mode: str | None) -> Any:
        """One CodeFlow per backend/model/cache/execution setup: a kernel backend persists."""
        from .api import CodeFlow

        cache_dir = self.cache_dir(settings)
        key = json.dumps(
            [
                str(Path.cwd()),
                backend,
                settings.model,
                str(cache_dir),
                cache_mode,
                settings.as_dict()["cache"],
                settings.as_dict()["execution"],
                settings.generation.base_url,
            ],
            sort_keys=True,
            default=str,
        )
        flow = self._flows.get(key)
        if flow is None:
            flow = CodeFlow(
                settings,
                work_dir=Path.cwd(),
                backend=backend,
                shell=self.shell,
                cache_dir=cache_dir,
                cache_mode=cache_mode,
            )
            self._flows[key] = flow
        flow.settings = settings
        return flow

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
            backend = self._backend(settings, flat)
            flow = self._flow(settings, backend, "off" if args.no_cache else None)
            _ = flow.provider  # bad model names and cache modes surface here, as one line
        except CodeFlowError as exc:
            raise _cell_error(exc) from None
        mode = "replace" if args.replace else "below"
        if args.no_writeback or not panel_writeback:
            mode = "off"
        cells = self._notebook_cells(settings, cell_id, request)
        record = self._run(flow, request, args, settings, cell_id, cells, approved_code)
        if record is None:
            return
        if isinstance(record, PlanRecord):
            self._finish_plan(record, request, cell_id)
            return
        self.history.append(record)
        self._origins[record.run_id] = Origin(request, line, cell_id, flow)
        self._show(record)
        if record.stop_reason == "awaiting_review":
            number = len(self.history)
            before = previous_code(self.history, self._origins, cell_id, number)
            print(review_text(record, before, number))
        self._write_back(record, request, line, mode, cell_id)

    def _closed_runs(self) -> set[str]:
        """Runs approved, discarded (in the sidebar, told over the comm) or undone."""
        link = self._connected_link()
        discarded: set[str] = getattr(link, "discarded", None) or set()
        for cell in list(discarded):
            for record in reversed(self.history):
                origin = self._origins.get(record.run_id)
                if origin is not None and origin.cell_id == cell:
                    if record.stop_reason == "awaiting_review":
                        self._closed.add(record.run_id)
                    break
            discarded.discard(cell)
        return self._closed

    def _finish_plan(self, plan: PlanRecord, request: str, cell_id: str | None) -> None:
        """Show the plan under the request; its steps go into cells below it (through the
        extension, or by `codeflow run`), else the code comes back as the next input."""
        from IPython.core.display_functions import publish_display_data

        from .notebook import plan_cells, plan_request_metadata
        from .report import plan_bundle

        self.plans.append(plan)
        link = self._connected_link()
        if link is None:  # nowhere to put the step cells: their outputs show here
            for step in plan.steps:
                if step.record is not None and step.state == "ok":
                    self._show_outputs(step.record)
        publish_display_data(data=plan_bundle(plan))
        data = plan.to_dict()
        if link is not None and cell_id and hasattr(link, "write_plan"):
            try:
                cells = plan_cells(data, cell_id)
                count = getattr(self.shell, "execution_count", None)
                for cell in cells:  # they ran as part of this cell's execution
                    if cell["cell_type"] == "code" and cell.get("outputs"):
                        cell["execution_count"] = count
                if link.write_plan(cell_id, cells, plan_request_metadata(data, request=request)):
                    return
            except Exception:
                pass
        code = "\n\n".join(
            (s.record.final_code if s.record else s.code).rstrip() for s in plan.steps
        )
        if code.strip() and self.shell is not None:
            self.shell.set_next_input(code)

    def _sidebar_approval(self, cell_id: str | None) -> str:
        """The code the sidebar's Run approves: what the linked cell holds now (the user may
        have edited it), else the code held for review."""
        _, record = pick(
            self.history,
            self._origins,
            self._closed_runs(),
            number=None,
            cell=cell_id,
            want="approve",
        )
        self._closed.add(record.run_id)
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

    def _notebook_cells(
        self, settings: Any, cell_id: str | None, request: str
    ) -> tuple[tuple[str, str], ...]:
        """The cells above this one, nearest first (`where.cells_above`); the n-th run of
        the same request text counts as the n-th such cell when no cell id comes."""
        occurrence = self._occurrences.get(request, 0)
        self._occurrences[request] = occurrence + 1
        if settings.generation.notebook_chars <= 0:
            return ()
        return cells_above(self.shell, cell_id, request, occurrence)

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
                self._clear()
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
                self._clear()
                partial = exc.record if isinstance(exc, ProviderError) else None
                if partial is not None:  # what ran before the model failed, and why
                    self.history.append(partial)
                    self._show(partial)
                    progress.tick(force=True, render=False)
                    if link is not None:
                        try:
                            link.send_record(cell_id or "", partial.to_dict())
                        except Exception:
                            pass
                    self._save_metadata(partial, request, cell_id)
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
            self._clear()
        return record

    @staticmethod
    def _clear() -> None:
        from IPython.display import clear_output

        clear_output(wait=True)

    def _show(self, record: RunRecord) -> None:
        """Final outputs as a plain cell shows them, then the record.

        The record bundle carries the status line itself (rendered by the extension, or in its
        HTML/text fallbacks), so no separate status output is published: it would show twice.
        """

        from IPython.core.display_functions import publish_display_data

        from .report import record_bundle

        self._show_outputs(record)
        publish_display_data(data=record_bundle(record))

    @staticmethod
    def _show_outputs(record: RunRecord) -> None:
        import sys

        from IPython.core.display_functions import publish_display_data

        for warning in record.warnings:
            sys.stderr.write(f"codeflow: warning: {warning}\n")
        for out in record.outputs:
            kind = out.get("output_type")
            if kind == "stream":
                stream = sys.stderr if out.get("name") == "stderr" else sys.stdout
                stream.write("".join(out.get("text", "")))
                stream.flush()
            elif kind in ("display_data", "execute_result"):
                publish_display_data(data=dict(out.get("data", {})), metadata=out.get("metadata"))
            elif kind == "error":
                text = (
                    "\n".join(out.get("traceback", ()))
                    or f"{out.get('ename')}: {out.get('evalue')}"
                )
                sys.stderr.write(text + "\n")

    def _write_back(
        self, record: RunRecord, request: str, line: str, mode: str, cell_id: str | None
    ) -> None:
        from .notebook import (
            code_metadata,
            generated_source,
            replaced_source,
            request_metadata,
            writes_code,
        )

        data = record.to_dict()
        if mode == "off" or not writes_code(data):
            self._save_metadata(record, request, cell_id)
            return
        code = generated_source(data)
        if mode == "replace":
            code = replaced_source(data, line, request)
        link = self._connected_link()
        if link is not None and cell_id:
            # The frontend fills in the linked cell's id for "below": only it knows the new id.
            linked = cell_id if mode == "replace" else None
            try:
                done = bool(
                    link.write_back(
                        cell_id,
                        code,
                        request_metadata(data, request=request, linked_cell_id=linked),
                        code_metadata(cell_id, data),
                        mode,
                    )
                )
            except Exception:
                done = False
            if done:
                return
        if self.shell is not None:
            self.shell.set_next_input(code, replace=mode == "replace")

    def _save_metadata(self, record: RunRecord, request: str, cell_id: str | None) -> None:
        """Record a run that wrote no code (failed, or write-back off) in the request cell's
        metadata, so its outcome and history survive Clear Outputs and a reload."""
        from .notebook import request_metadata

        link = self._connected_link()
        if link is None or not cell_id or not hasattr(link, "save_metadata"):
            return
        data = record.to_dict()
        meta = request_metadata(data, request=request)
        if record.error:  # the model could not be asked: why, and which kind of failure
            meta["error"] = record.error
            meta["stop_reason"] = record.stop_reason
        try:
            link.save_metadata(cell_id, meta)
        except Exception:
            pass

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
                print(self._history(words[1:]))
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
            self._origins,
            self._closed_runs(),
            number=number,
            cell=cell,
            want="approve",
        )
        origin = self._origins[record.run_id]
        self._closed.add(record.run_id)
        self._request(origin.line, origin.request, origin.cell_id, record.final_code)

    def _undo(self, words: list[str]) -> None:
        """Put back the variables a run changed; the sidebar restores the linked cell."""
        from .rollback import call

        number, cell = parse_target(words, "undo")
        index, record = pick(
            self.history, self._origins, self._closed_runs(), number=number, cell=cell, want="undo"
        )
        origin = self._origins[record.run_id]
        answer = self._in_flow(
            origin.flow, lambda: call(origin.flow.executor, "undo", undo_key=record.undo_key)
        )
        if answer.get("ok"):
            self._closed.add(record.run_id)
        print(undo_text(answer, index))
        link = self._connected_link()
        if link is not None and origin.cell_id and hasattr(link, "send_undone"):
            try:
                link.send_undone(origin.cell_id, answer)
            except Exception:
                pass

    @staticmethod
    def _in_flow(flow: Any, make: Callable[[], Any]) -> Any:
        """Run a coroutine on the flow's loop while this thread serves the notebook's shell."""
        from .executors.inline import InlineExecutor, MainThreadPump

        pump = MainThreadPump()
        executor = flow.executor
        if isinstance(executor, InlineExecutor):
            executor.pump = pump
        try:
            future = flow.submit(make())
            pump.run_until(future)
            return future.result()
        finally:
            if isinstance(executor, InlineExecutor):
                executor.pump = None

    def _status(self) -> str:
        from .providers import resolve_cache_dir, resolve_cache_mode
        from .report import dollars

        settings, flat, _ = self.settings_for(None)
        backend = self._backend(settings, flat)
        cache_dir = self.cache_dir(settings) or resolve_cache_dir(
            None, settings.cache.dir, Path.cwd()
        )
        mode = resolve_cache_mode(None, settings.cache.mode)
        kernel = "this notebook's shell" if backend == "inline" else settings.execution.kernel_name
        running = [f for f in self._flows.values() if getattr(f, "_executor", None) is not None]
        connected = self._connected_link() is not None
        tokens = sum(r.metrics.input_tokens + r.metrics.output_tokens for r in self.history)
        return "\n".join(
            [
                f"backend:   {backend}",
                f"model:     {settings.model}",
                f"cache:     {cache_dir} ({mode})",
                f"kernel:    {kernel}",
                f"executors: {len(running)} started",
                f"runs:      {len(self.history)} in this session",
                f"cost:      {dollars(sum(r.metrics.cost_usd for r in self.history))} "
                f"in this session ({tokens:,} tokens)",
                f"frontend:  {'connected' if connected else 'not connected'}",
            ]
        )

    def _history(self, words: list[str]) -> str:
        try:
            count = int(words[0]) if words else 10
        except ValueError:
            raise CodeFlowError(f"history takes a number of runs, not {words[0]!r}") from None
        if count < 1:
            raise CodeFlowError("history takes a number of runs of at least 1")
        if not self.history:
            return "no codeflow runs in this session yet"
        from .report import status_line

        lines = []
        start = max(0, len(self.history) - count)
        for index, record in enumerate(self.history[start:], start=start + 1):
            first = record.request.splitlines()[0][:70] if record.request else ""
            status = status_line(record)
            for emoji, mark in (("✅", "✓"), ("❌", "✗")):  # no emoji font needed
                status = status.replace(emoji, mark)
            if record.run_id in self._closed and record.undo_key:
                status += " · undone"
            lines.append(f"{index}. {first}\n   {status}")
        return "\n".join(lines)

    def close(self) -> None:
        for flow in self._flows.values():
            try:
                flow.close()
            except Exception:
                pass
        self._flows.clear()


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
