/**
 * The frontend end of the `codeflow` comm, one per notebook panel.
 *
 * The kernel opens the comm when `%load_ext codeflow_magic` runs; we answer with `hello` and
 * the user's settings. After a page reload the kernel still has codeflow loaded but its comm
 * points at the old page, so on connecting we ask the kernel whether a codeflow comm exists
 * and, if so, open a fresh one from this side.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { CodeflowModel, recordedRequestMetadata } from './model';
import { applyPlan, applyWriteBack, IWriteBack, toPlanWrite, undoLinked } from './notebookedit';
import {
  COMM_TARGET,
  ICodeflowSettings,
  IFlowEvent,
  IProgressState,
  IRunRecord,
  METADATA_KEY
} from './tokens';
import { AskOverwrite, CellStash, IUndoReply, toUndoReply, undoCommand } from './trust';

export interface IKernelLinkOptions {
  panel: NotebookPanel;
  model: CodeflowModel;
  /** The current user settings (read each time they are sent). */
  settings: () => ICodeflowSettings;
  version: string;
  /** Called after a write-back changed the notebook. */
  onWriteBack?: (cellId: string) => void;
  /** The notebook's stash of linked cells before each write-back (for Discard and Undo). */
  stash: CellStash;
  /** Asks before a write-back replaces a linked cell the user edited. */
  askOverwrite?: AskOverwrite;
}

/** What the sidebar shows for an undo the kernel answered. */
export function undoMessage(reply: IUndoReply): string {
  if (reply.message) {
    return reply.message;
  }
  if (!reply.ok) {
    return 'The undo failed.';
  }
  const parts = ['Undone'];
  if (reply.restored.length) {
    parts.push(`restored: ${reply.restored.join(', ')}`);
  }
  if (reply.removed.length) {
    parts.push(`removed: ${reply.removed.join(', ')}`);
  }
  if (reply.kept.length) {
    parts.push(`could not restore: ${reply.kept.join(', ')}`);
  }
  return parts.join('; ');
}

/** Settings as the kernel reads them (Python names). */
export function settingsPayload(settings: ICodeflowSettings): Record<string, unknown> {
  return {
    model: settings.model,
    max_attempts: settings.maxAttempts,
    backend: settings.backend,
    writeback: settings.writeback
  };
}

export class KernelLink implements IDisposable {
  constructor(options: IKernelLinkOptions) {
    this._options = options;
    const context = options.panel.sessionContext;
    context.kernelChanged.connect(this._onKernelChanged, this);
    context.connectionStatusChanged.connect(this._onConnectionStatus, this);
    this._attach(context.session?.kernel ?? null);
  }

  /** Emitted when the comm opens or closes. */
  get connectionChanged(): ISignal<this, boolean> {
    return this._connectionChanged;
  }

  /** True while a comm to a kernel with codeflow loaded is open. */
  get connected(): boolean {
    return this._comm !== null;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    const context = this._options.panel.sessionContext;
    context.kernelChanged.disconnect(this._onKernelChanged, this);
    context.connectionStatusChanged.disconnect(this._onConnectionStatus, this);
    this._detach();
    Signal.clearData(this);
  }

  /** Send the current settings (after the user changed them). */
  sendSettings(): void {
    this._send({ type: 'settings', settings: settingsPayload(this._options.settings()) });
  }

  /** Options for the next run of one request cell (e.g. an improvement focus). */
  setNextOptions(cellId: string, options: Record<string, unknown>): boolean {
    return this._send({ type: 'set_next_options', cell_id: cellId, options });
  }

  /** Tell the kernel the user discarded the code awaiting review for this request. */
  discard(cellId: string): boolean {
    return this._send({ type: 'discard', cell_id: cellId });
  }

  /**
   * Undo the last run of a request: `%codeflow undo` runs silently in the kernel, which
   * answers on the comm (`undone`); the notebook half happens when that answer comes, so an
   * undo typed in a cell restores the linked cell too. A kernel that fails without answering
   * (an older codeflow, a usage error) is reported as a failed undo.
   */
  undo(cellId: string): boolean {
    const kernel = this._kernel;
    if (!kernel || !this._comm) {
      return false;
    }
    const fail = (message: string): void =>
      this._undone({ cell_id: cellId, ok: false, restored: [], removed: [], kept: [], message });
    let code: string;
    try {
      code = undoCommand(cellId);
    } catch (error) {
      fail(String(error));
      return true;
    }
    this._pendingUndo.add(cellId);
    let stderr = '';
    const future = kernel.requestExecute({ code, silent: true, store_history: false });
    future.onIOPub = msg => {
      const content = msg.content as Record<string, unknown>;
      if (msg.header.msg_type === 'stream' && content.name === 'stderr') {
        stderr += String(content.text ?? '');
      } else if (msg.header.msg_type === 'error') {
        stderr += `${String(content.ename)}: ${String(content.evalue)}`;
      }
    };
    future.done
      .then(reply => {
        if (!this._pendingUndo.delete(cellId)) {
          return; // answered on the comm
        }
        const content = reply.content as unknown as Record<string, unknown>;
        const error =
          content.status === 'error' ? `${String(content.ename)}: ${String(content.evalue)}` : '';
        fail(
          stderr.trim() ||
            error ||
            'The kernel did not answer the undo (is codeflow_magic up to date?)'
        );
      })
      .catch(reason => {
        if (this._pendingUndo.delete(cellId)) {
          fail(`The undo could not run: ${String(reason)}`);
        }
      });
    return true;
  }

  /** Apply an undo answer: the linked cell back from the stash, then the sidebar's words. */
  private _undone(reply: IUndoReply): void {
    this._pendingUndo.delete(reply.cell_id);
    this._queue(async () => {
      const notebook = this._options.panel.content.model;
      if (reply.ok && notebook) {
        await undoLinked(notebook, reply.cell_id, this._options.stash, this._options.askOverwrite);
      }
      this._options.model.setUndo(reply.cell_id, {
        busy: false,
        ok: reply.ok,
        message: undoMessage(reply)
      });
    });
  }

  /**
   * Run notebook edits one after the other: a write-back may wait on the user's answer, and
   * the messages after it (metadata, another write-back, an undo) must not overtake it.
   */
  private _queue(edit: () => void | Promise<unknown>): void {
    this._edits = this._edits.then(edit).catch(reason => {
      console.error('codeflow: a notebook edit failed', reason);
    });
  }

  private _send(data: Record<string, unknown>): boolean {
    if (!this._comm || this._comm.isDisposed) {
      return false;
    }
    this._comm.send(data as any);
    return true;
  }

  private _hello(): Record<string, unknown> {
    return {
      type: 'hello',
      version: this._options.version,
      settings: settingsPayload(this._options.settings())
    };
  }

  private _onKernelChanged(
    _: ISessionContext,
    change: { newValue: Kernel.IKernelConnection | null }
  ): void {
    this._attach(change.newValue);
  }

  private _onConnectionStatus(_: ISessionContext, status: Kernel.ConnectionStatus): void {
    if (status === 'connected' && this._kernel && !this._comm) {
      void this._probe(this._kernel);
    }
  }

  private _onKernelStatus(_: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      // The kernel forgets its comms on restart; `%load_ext` will open a new one.
      this._setComm(null);
    }
  }

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    if (kernel === this._kernel) {
      return;
    }
    this._detach();
    this._kernel = kernel;
    if (!kernel) {
      return;
    }
    kernel.registerCommTarget(COMM_TARGET, this._onCommOpen);
    kernel.statusChanged.connect(this._onKernelStatus, this);
    void this._probe(kernel);
  }

  private _detach(): void {
    const kernel = this._kernel;
    if (kernel && !kernel.isDisposed) {
      kernel.removeCommTarget(COMM_TARGET, this._onCommOpen);
      kernel.statusChanged.disconnect(this._onKernelStatus, this);
    }
    this._kernel = null;
    this._setComm(null);
  }

  /** Ask a kernel that already runs codeflow for a comm to this page. */
  private async _probe(kernel: Kernel.IKernelConnection): Promise<void> {
    if (this._probing) {
      return;
    }
    this._probing = true;
    try {
      const reply = await kernel.requestCommInfo({ target_name: COMM_TARGET });
      const content = reply.content;
      if (
        kernel !== this._kernel ||
        this._comm ||
        content.status !== 'ok' ||
        Object.keys(content.comms).length === 0
      ) {
        return;
      }
      const comm = kernel.createComm(COMM_TARGET);
      this._wire(comm);
      comm.open(this._hello() as any);
    } catch {
      // The kernel went away or does not answer comm_info; the kernel can still open the comm.
    } finally {
      this._probing = false;
    }
  }

  private _onCommOpen = (comm: Kernel.IComm, _msg: KernelMessage.ICommOpenMsg): void => {
    this._wire(comm);
    comm.send(this._hello() as any);
  };

  private _wire(comm: Kernel.IComm): void {
    comm.onMsg = msg => this._handle(comm, msg.content.data as Record<string, unknown>);
    comm.onClose = () => {
      if (this._comm === comm) {
        this._setComm(null);
      }
    };
    this._setComm(comm);
  }

  private _setComm(comm: Kernel.IComm | null): void {
    if (this._comm === comm) {
      return;
    }
    this._comm = comm;
    this._connectionChanged.emit(comm !== null);
  }

  private _handle(comm: Kernel.IComm, data: Record<string, unknown>): void {
    if (comm !== this._comm) {
      // A newer comm replaced this one; the kernel talks to the newest only.
      this._setComm(comm);
    }
    const cellId = typeof data.cell_id === 'string' ? data.cell_id : null;
    const model = this._options.model;
    switch (data.type) {
      case 'event':
        if (cellId && data.event && typeof data.event === 'object') {
          const event = data.event as IFlowEvent;
          if (data.state && typeof data.state === 'object') {
            model.applyEvent(cellId, event, data.state as IProgressState);
          } else {
            model.applyEvent(cellId, event);
          }
        }
        break;
      case 'record':
        if (cellId && data.record && typeof data.record === 'object') {
          model.applyRecord(cellId, data.record as IRunRecord);
        }
        break;
      case 'metadata': {
        // A run that wrote no code: its outcome and history still go into the notebook.
        const meta = data.request_metadata;
        if (!cellId || !meta || typeof meta !== 'object') {
          break;
        }
        this._queue(() => {
          const notebook = this._options.panel.content.model;
          if (!notebook) {
            return;
          }
          for (let i = 0; i < notebook.cells.length; i++) {
            const cell = notebook.cells.get(i);
            if (cell.id === cellId) {
              const previous = cell.getMetadata(METADATA_KEY) as
                Record<string, unknown> | undefined;
              cell.setMetadata(
                METADATA_KEY,
                recordedRequestMetadata(meta as Record<string, unknown>, previous)
              );
              break;
            }
          }
        });
        break;
      }
      case 'plan': {
        // A `--steps` run: its step cells below the request, in the same queue as the rest.
        const plan = toPlanWrite(data);
        if (!plan) {
          break;
        }
        this._queue(() => {
          const notebook = this._options.panel.content.model;
          if (notebook && applyPlan(notebook, plan)) {
            this._options.onWriteBack?.(plan.cell_id);
          }
        });
        break;
      }
      case 'undone': {
        const reply = toUndoReply(data);
        if (reply) {
          this._undone(reply);
        }
        break;
      }
      case 'writeback': {
        if (!cellId || typeof data.code !== 'string') {
          break;
        }
        const message: IWriteBack = {
          cell_id: cellId,
          code: data.code,
          request_metadata: (data.request_metadata as Record<string, unknown>) ?? {},
          code_metadata: (data.code_metadata as Record<string, unknown>) ?? {},
          mode: data.mode === 'replace' ? 'replace' : 'below'
        };
        this._queue(async () => {
          const notebook = this._options.panel.content.model;
          const applied =
            notebook &&
            (await applyWriteBack(notebook, message, {
              ask: this._options.askOverwrite,
              stash: this._options.stash
            }));
          if (applied) {
            this._options.onWriteBack?.(cellId);
          }
        });
        break;
      }
      default:
        break;
    }
  }

  private _options: IKernelLinkOptions;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _comm: Kernel.IComm | null = null;
  private _probing = false;
  private _pendingUndo = new Set<string>();
  private _edits: Promise<unknown> = Promise.resolve();
  private _disposed = false;
  private _connectionChanged = new Signal<this, boolean>(this);
}
