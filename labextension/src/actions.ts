/**
 * What the sidebar's buttons do to the notebook in focus: go to a cell, run it, restore an
 * attempt's code, approve or discard a review, undo a run.
 *
 * The sidebar only forwards clicks (`IPanelActions`); the notebook and kernel side lives here,
 * on top of the tracker's per-notebook state.
 */

import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import { IAttemptView } from './model';
import { discardReview, findCellIndex, findLinkedIndex, writeLinkedCode } from './notebookedit';
import { ImproveFocus, IPanelActions, IPanelSource } from './panel';
import { INotebookState } from './tracker';
import { METADATA_KEY } from './tokens';
import { AskOverwrite } from './trust';

export interface IPanelActionsOptions {
  /** Brings a notebook to the front (the application shell's `activateById`). */
  activateById: (id: string) => void;
  /** The notebook in focus and its codeflow state. */
  codeflow: {
    readonly currentPanel: NotebookPanel | null;
    readonly current: INotebookState | null;
  };
  /** Asks before restore or discard replaces a linked cell the user edited. */
  askOverwrite: AskOverwrite;
}

/** Shown when the sidebar's Undo cannot reach the kernel. */
export const UNDO_NEEDS_LINK = 'Undo needs the kernel link: run %load_ext codeflow_magic';

/** Select a cell, scroll to it and bring its notebook to the front; false if it is gone. */
function activateCell(
  activateById: (id: string) => void,
  panel: NotebookPanel,
  cellId: string
): boolean {
  const model = panel.content.model;
  const index = model ? findCellIndex(model, cellId) : -1;
  if (index < 0) {
    return false;
  }
  activateById(panel.id);
  const notebook = panel.content;
  notebook.activeCellIndex = index;
  notebook.deselectAll();
  const cell = notebook.widgets[index];
  if (cell) {
    void notebook.scrollToCell(cell);
  }
  return true;
}

export function createPanelActions(options: IPanelActionsOptions): IPanelActions {
  const { activateById, codeflow, askOverwrite } = options;

  const runCell = (panel: NotebookPanel, cellId: string): void => {
    if (activateCell(activateById, panel, cellId)) {
      void NotebookActions.run(panel.content, panel.sessionContext);
    }
  };

  return {
    activate: cellId => {
      const panel = codeflow.currentPanel;
      if (panel) {
        activateCell(activateById, panel, cellId);
      }
    },
    rerun: cellId => {
      const panel = codeflow.currentPanel;
      if (panel) {
        runCell(panel, cellId);
      }
    },
    improve: (cellId: string, focus: ImproveFocus) => {
      const here = codeflow.current;
      if (here && here.link.setNextOptions(cellId, { focus })) {
        runCell(here.panel, cellId);
      }
    },
    restore: (cellId: string, attempt: IAttemptView) => {
      const model = codeflow.currentPanel?.content.model;
      if (!model) {
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
        ask: askOverwrite,
        reason: 'restore'
      });
    },
    approve: cellId => {
      const here = codeflow.current;
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
      if (here.link.setNextOptions(cellId, options)) {
        runCell(here.panel, cellId);
      }
    },
    discard: cellId => {
      const here = codeflow.current;
      const model = here?.panel.content.model;
      if (!here || !model) {
        return;
      }
      here.link.discard(cellId);
      void discardReview(model, cellId, here.stash, askOverwrite);
    },
    undo: cellId => {
      const here = codeflow.current;
      if (!here) {
        return;
      }
      here.model.setUndo(cellId, { busy: true, ok: false, message: 'undoing' });
      if (!here.link.undo(cellId)) {
        here.model.setUndo(cellId, { busy: false, ok: false, message: UNDO_NEEDS_LINK });
      }
    }
  };
}

/** The sidebar's view of one notebook's state. */
export function panelSource(state: INotebookState): IPanelSource {
  return {
    model: state.model,
    label: state.panel.title.label,
    connected: () => state.link.connected,
    pendingChange: (cellId: string) => {
      const entry = state.stash.get(cellId);
      return entry && entry.review
        ? { previous: entry.before?.source ?? '', pending: entry.written }
        : null;
    }
  };
}
