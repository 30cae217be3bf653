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
import { applyWriteBack, IWriteBack } from './notebookedit';
import { COMM_TARGET, ICodeflowSettings, IFlowEvent, IRunRecord, METADATA_KEY } from './tokens';

export interface IKernelLinkOptions {
  panel: NotebookPanel;
  model: CodeflowModel;
  /** The current user settings (read each time they are sent). */
  settings: () => ICodeflowSettings;
  version: string;
  /** Called after a write-back changed the notebook. */
  onWriteBack?: (cellId: string) => void;
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
          model.applyEvent(cellId, data.event as IFlowEvent);
        }
        break;
      case 'record':
        if (cellId && data.record && typeof data.record === 'object') {
          model.applyRecord(cellId, data.record as IRunRecord);
        }
        break;
      case 'metadata': {
        // A run that wrote no code: its outcome and history still go into the notebook.
        const notebook = this._options.panel.content.model;
        const meta = data.request_metadata;
        if (!notebook || !cellId || !meta || typeof meta !== 'object') {
          break;
        }
        for (let i = 0; i < notebook.cells.length; i++) {
          const cell = notebook.cells.get(i);
          if (cell.id === cellId) {
            const previous = cell.getMetadata(METADATA_KEY) as Record<string, unknown> | undefined;
            cell.setMetadata(
              METADATA_KEY,
              recordedRequestMetadata(meta as Record<string, unknown>, previous)
            );
            break;
          }
        }
        break;
      }
      case 'writeback': {
        const notebook = this._options.panel.content.model;
        if (!notebook || !cellId || typeof data.code !== 'string') {
          break;
        }
        const message: IWriteBack = {
          cell_id: cellId,
          code: data.code,
          request_metadata: (data.request_metadata as Record<string, unknown>) ?? {},
          code_metadata: (data.code_metadata as Record<string, unknown>) ?? {},
          mode: data.mode === 'replace' ? 'replace' : 'below'
        };
        if (applyWriteBack(notebook, message)) {
          this._options.onWriteBack?.(cellId);
        }
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
  private _disposed = false;
  private _connectionChanged = new Signal<this, boolean>(this);
}
