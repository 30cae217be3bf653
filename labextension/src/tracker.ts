/**
 * Per-notebook codeflow state: one model, kernel link and stash for each open notebook.
 *
 * Live state belongs to a notebook's kernel, so each notebook has its own; the tracker keeps
 * them in step with the notebook (its cells, its executions) and tells the views which one is
 * in focus. It has no view of its own: the sidebar and its actions read it.
 */

import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, Notebook, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { KernelLink } from './comm';
import { CodeflowModel, isRequestCell, snapshotCells } from './model';
import { plainCells } from './notebookedit';
import { ICodeflowSettings, ICodeflowTracker, METADATA_KEY } from './tokens';
import { AskOverwrite, CellStash } from './trust';

/** What codeflow keeps for one open notebook. */
export interface INotebookState {
  panel: NotebookPanel;
  model: CodeflowModel;
  link: KernelLink;
  /** Linked cells before each write-back, for Discard and Undo (this session only). */
  stash: CellStash;
}

export interface ICodeflowTrackerOptions {
  /** The notebooks to follow (every notebook the application opens). */
  notebooks: INotebookTracker;
  /** The current user settings (read each time they are sent to a kernel). */
  settings: () => ICodeflowSettings;
  /** Sent in `hello` so the kernel can tell which frontend it talks to. */
  version: string;
  /** Asks before a write-back replaces a linked cell the user edited. */
  askOverwrite?: AskOverwrite;
  /** How long cell edits are gathered before the model re-reads the notebook (ms). */
  syncDelay?: number;
}

/** True when a cell is a `%%codeflow` request (by its source or its metadata). */
function isRequest(cell: Cell): boolean {
  const model = cell.model;
  return isRequestCell({
    id: model.id,
    cell_type: model.type,
    source: model.sharedModel.getSource(),
    metadata: { [METADATA_KEY]: model.getMetadata(METADATA_KEY) }
  });
}

export class CodeflowTracker implements ICodeflowTracker, IDisposable {
  constructor(options: ICodeflowTrackerOptions) {
    this._options = options;
    const notebooks = options.notebooks;
    notebooks.forEach(panel => this._track(panel));
    notebooks.widgetAdded.connect(this._onAdded, this);
    notebooks.currentChanged.connect(this._emitCurrent, this);
    NotebookActions.executionScheduled.connect(this._onScheduled, this);
    NotebookActions.executed.connect(this._onExecuted, this);
  }

  /** The notebook panel in focus, tracked or not. */
  get currentPanel(): NotebookPanel | null {
    return this._options.notebooks.currentWidget;
  }

  /** The notebook in focus with its codeflow state, or null. */
  get current(): INotebookState | null {
    const panel = this.currentPanel;
    return (panel && this._states.get(panel)) ?? null;
  }

  get currentModel(): CodeflowModel | null {
    return this.current?.model ?? null;
  }

  /** Emitted when the notebook in focus changes, or when it closes. */
  get currentChanged(): ISignal<this, CodeflowModel | null> {
    return this._currentChanged;
  }

  /** Emitted when the kernel link of the notebook in focus opens or closes. */
  get currentConnectionChanged(): ISignal<this, boolean> {
    return this._currentConnectionChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  stateOf(panel: NotebookPanel): INotebookState | undefined {
    return this._states.get(panel);
  }

  modelFor(panel: NotebookPanel): CodeflowModel | undefined {
    return this._states.get(panel)?.model;
  }

  /** Send the current settings to every notebook's kernel (after the user changed them). */
  sendSettings(): void {
    for (const state of this._states.values()) {
      state.link.sendSettings();
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    const notebooks = this._options.notebooks;
    notebooks.widgetAdded.disconnect(this._onAdded, this);
    notebooks.currentChanged.disconnect(this._emitCurrent, this);
    NotebookActions.executionScheduled.disconnect(this._onScheduled, this);
    NotebookActions.executed.disconnect(this._onExecuted, this);
    for (const state of this._states.values()) {
      state.link.dispose();
    }
    this._states.clear();
    Signal.clearData(this);
  }

  private _onAdded(_: INotebookTracker, panel: NotebookPanel): void {
    this._track(panel);
  }

  private _emitCurrent(): void {
    this._currentChanged.emit(this.currentModel);
  }

  private _stateOfNotebook(notebook: Notebook): INotebookState | undefined {
    const panel = this._options.notebooks.find(p => p.content === notebook);
    return panel ? this._states.get(panel) : undefined;
  }

  private _onScheduled(_: unknown, args: { notebook: Notebook; cell: Cell }): void {
    const state = this._stateOfNotebook(args.notebook);
    if (state && isRequest(args.cell)) {
      state.model.markScheduled(args.cell.model.id);
    }
  }

  private _onExecuted(_: unknown, args: { notebook: Notebook; cell: Cell }): void {
    const state = this._stateOfNotebook(args.notebook);
    if (state) {
      state.model.markExecuted(args.cell.model.id);
    }
  }

  private _track(panel: NotebookPanel): void {
    const model = new CodeflowModel();
    const stash = new CellStash();
    const link = new KernelLink({
      panel,
      model,
      settings: this._options.settings,
      version: this._options.version,
      stash,
      askOverwrite: this._options.askOverwrite
    });
    this._states.set(panel, { panel, model, link, stash });
    link.connectionChanged.connect((_, connected) => {
      if (this.currentPanel === panel) {
        this._currentConnectionChanged.emit(connected);
      }
    });

    // Cell edits come in bursts (typing, a write-back): re-read the notebook once per burst.
    let timer: number | undefined;
    const sync = (): void => {
      if (timer !== undefined) {
        return;
      }
      timer = window.setTimeout(() => {
        timer = undefined;
        const notebookModel = panel.content.model;
        if (notebookModel && !panel.isDisposed) {
          model.sync(snapshotCells(plainCells(notebookModel)));
        }
      }, this._options.syncDelay ?? 50);
    };
    const connectModel = (): void => {
      const notebookModel = panel.content.model;
      if (notebookModel) {
        notebookModel.contentChanged.connect(sync);
        notebookModel.cells.changed.connect(sync);
        sync();
      }
    };
    panel.content.modelChanged.connect(connectModel);
    void panel.context.ready.then(connectModel);

    panel.disposed.connect(() => {
      link.dispose();
      this._states.delete(panel);
      if (timer !== undefined) {
        window.clearTimeout(timer);
      }
      this._emitCurrent();
    });
    if (this.currentPanel === panel) {
      this._emitCurrent();
    }
  }

  private _options: ICodeflowTrackerOptions;
  private _states = new Map<NotebookPanel, INotebookState>();
  private _disposed = false;
  private _currentChanged = new Signal<this, CodeflowModel | null>(this);
  private _currentConnectionChanged = new Signal<this, boolean>(this);
}
