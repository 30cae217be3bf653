/**
 * The codeflow JupyterLab plugin: sidebar, kernel link and settings, wired per notebook.
 *
 * Each open notebook gets its own model (live state belongs to that notebook's kernel) and
 * its own kernel link; the sidebar shows the model of the notebook in focus.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, Notebook, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { KernelLink } from './comm';
import { askOverwriteDialog } from './dialog';
import { CodeflowModel, IAttemptView, isRequestCell, snapshotCells } from './model';
import {
  discardReview,
  findCellIndex,
  findLinkedIndex,
  plainCells,
  writeLinkedCode
} from './notebookedit';
import { CodeflowPanel, ImproveFocus } from './panel';
import { DEFAULT_SETTINGS, ICodeflowSettings, METADATA_KEY, PLUGIN_ID, VERSION } from './tokens';
import { CellStash } from './trust';

interface INotebookState {
  model: CodeflowModel;
  link: KernelLink;
  /** Linked cells before each write-back, for Discard and Undo (this session only). */
  stash: CellStash;
}

function readSettings(settings: ISettingRegistry.ISettings): ICodeflowSettings {
  const get = <T>(key: string, fallback: T): T => {
    const value = settings.get(key).composite;
    return value === undefined || value === null ? fallback : (value as T);
  };
  return {
    model: get('model', DEFAULT_SETTINGS.model),
    maxAttempts: get('maxAttempts', DEFAULT_SETTINGS.maxAttempts),
    backend: get('backend', DEFAULT_SETTINGS.backend),
    writeback: get('writeback', DEFAULT_SETTINGS.writeback)
  };
}

function isRequest(cell: Cell): boolean {
  const model = cell.model;
  return isRequestCell({
    id: model.id,
    cell_type: model.type,
    source: model.sharedModel.getSource(),
    metadata: { [METADATA_KEY]: model.getMetadata(METADATA_KEY) }
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'codeflow sidebar, kernel link and settings.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    registry: ISettingRegistry | null
  ) => {
    let settings: ICodeflowSettings = { ...DEFAULT_SETTINGS };
    const states = new Map<NotebookPanel, INotebookState>();

    const panelOf = (notebook: Notebook): NotebookPanel | undefined =>
      tracker.find(p => p.content === notebook);

    const activateCell = (panel: NotebookPanel, cellId: string): boolean => {
      const model = panel.content.model;
      const index = model ? findCellIndex(model, cellId) : -1;
      if (index < 0) {
        return false;
      }
      app.shell.activateById(panel.id);
      const notebook = panel.content;
      notebook.activeCellIndex = index;
      notebook.deselectAll();
      const cell = notebook.widgets[index];
      if (cell) {
        void notebook.scrollToCell(cell);
      }
      return true;
    };

    const runCell = (panel: NotebookPanel, cellId: string): void => {
      if (activateCell(panel, cellId)) {
        void NotebookActions.run(panel.content, panel.sessionContext);
      }
    };

    /** The focused notebook with its codeflow state, or nothing. */
    const current = (): { panel: NotebookPanel; state: INotebookState } | null => {
      const panel = tracker.currentWidget;
      const state = panel ? states.get(panel) : undefined;
      return panel && state ? { panel, state } : null;
    };

    const sidebar = new CodeflowPanel({
      activate: cellId => {
        const panel = tracker.currentWidget;
        if (panel) {
          activateCell(panel, cellId);
        }
      },
      rerun: cellId => {
        const panel = tracker.currentWidget;
        if (panel) {
          runCell(panel, cellId);
        }
      },
      improve: (cellId: string, focus: ImproveFocus) => {
        const panel = tracker.currentWidget;
        const state = panel ? states.get(panel) : undefined;
        if (panel && state && state.link.setNextOptions(cellId, { focus })) {
          runCell(panel, cellId);
        }
      },
      restore: (cellId: string, attempt: IAttemptView) => {
        const panel = tracker.currentWidget;
        const model = panel?.content.model;
        if (!panel || !model) {
          return;
        }
        const linkedIndex = findLinkedIndex(model, cellId);
        const previous =
          linkedIndex >= 0
            ? ((model.cells.get(linkedIndex).getMetadata(METADATA_KEY) as Record<string, unknown>) ??
              {})
            : {};
        // Same run: the code changes, and the hash with it; an edited cell is asked about.
        void writeLinkedCode(model, cellId, attempt.code, previous, {
          ask: askOverwriteDialog,
          reason: 'restore'
        });
      },
      approve: cellId => {
        const here = current();
        const model = here?.panel.content.model;
        if (!here || !model) {
          return;
        }
        // What runs is what the cell shows now, including the user's edits during review.
        const linkedIndex = findLinkedIndex(model, cellId);
        const options: Record<string, unknown> = { approve: true };
        if (linkedIndex >= 0) {
          options.code = model.cells.get(linkedIndex).sharedModel.getSource();
        }
        if (here.state.link.setNextOptions(cellId, options)) {
          runCell(here.panel, cellId);
        }
      },
      discard: cellId => {
        const here = current();
        const model = here?.panel.content.model;
        if (!here || !model) {
          return;
        }
        here.state.link.discard(cellId);
        void discardReview(model, cellId, here.state.stash, askOverwriteDialog);
      },
      undo: cellId => {
        const here = current();
        if (!here) {
          return;
        }
        here.state.model.setUndo(cellId, { busy: true, ok: false, message: 'undoing' });
        if (!here.state.link.undo(cellId)) {
          here.state.model.setUndo(cellId, {
            busy: false,
            ok: false,
            message: 'Undo needs the kernel link: run %load_ext codeflow_magic'
          });
        }
      }
    });

    const showCurrent = (): void => {
      const panel = tracker.currentWidget;
      const state = panel ? states.get(panel) : undefined;
      sidebar.setSource(
        panel && state
          ? {
              model: state.model,
              label: panel.title.label,
              connected: () => state.link.connected,
              pendingChange: (cellId: string) => {
                const entry = state.stash.get(cellId);
                return entry && entry.review
                  ? { previous: entry.before?.source ?? '', pending: entry.written }
                  : null;
              }
            }
          : null
      );
    };

    const track = (panel: NotebookPanel): void => {
      const model = new CodeflowModel();
      const stash = new CellStash();
      const link = new KernelLink({
        panel,
        model,
        settings: () => settings,
        version: VERSION,
        stash,
        askOverwrite: askOverwriteDialog
      });
      states.set(panel, { model, link, stash });
      link.connectionChanged.connect(() => {
        if (tracker.currentWidget === panel) {
          sidebar.refresh();
        }
      });

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
        }, 50);
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
        states.delete(panel);
        if (timer !== undefined) {
          window.clearTimeout(timer);
        }
        showCurrent();
      });
      if (tracker.currentWidget === panel) {
        showCurrent();
      }
    };

    tracker.forEach(track);
    tracker.widgetAdded.connect((_, panel) => track(panel));
    tracker.currentChanged.connect(showCurrent);

    NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
      const panel = panelOf(notebook);
      const state = panel ? states.get(panel) : undefined;
      if (state && isRequest(cell)) {
        state.model.markScheduled(cell.model.id);
      }
    });
    NotebookActions.executed.connect((_, { notebook, cell }) => {
      const panel = panelOf(notebook);
      const state = panel ? states.get(panel) : undefined;
      if (state) {
        state.model.markExecuted(cell.model.id);
      }
    });

    app.shell.add(sidebar, 'right', { rank: 650 });
    if (restorer) {
      restorer.add(sidebar, 'codeflow-sidebar');
    }
    showCurrent();

    if (registry) {
      void registry
        .load(PLUGIN_ID)
        .then(loaded => {
          settings = readSettings(loaded);
          loaded.changed.connect(() => {
            settings = readSettings(loaded);
            for (const state of states.values()) {
              state.link.sendSettings();
            }
          });
        })
        .catch(reason => {
          console.error('codeflow: could not load settings', reason);
        });
    }
  }
};

export default plugin;
