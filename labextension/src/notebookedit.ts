/**
 * Edits to a notebook model: write-back from the kernel, restore, discard and undo from the
 * sidebar.
 *
 * They keep one invariant: a request cell has at most one linked code cell (the first cell
 * whose `codeflow.generated_from` names it). A new run updates that cell in place instead of
 * stacking duplicates below the request, except when the user edited it: then the user is
 * asked (replace / keep mine / insert below), and nothing they typed is lost silently.
 */

import { ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { INotebookModel } from '@jupyterlab/notebook';

import {
  IPlainCell,
  recordedRequestMetadata,
  writeBackRequestMetadata,
  writtenCodeMetadata
} from './model';
import { ICodeMetadata, IPlanCell, METADATA_KEY } from './tokens';
import {
  ALL_CHOICES,
  AskOverwrite,
  CellStash,
  ICellState,
  isEdited,
  IStashEntry,
  needsAsk,
  OverwriteChoice,
  PUT_BACK_CHOICES,
  WriteReason
} from './trust';

export interface IWriteBack {
  cell_id: string;
  code: string;
  request_metadata: Record<string, unknown>;
  code_metadata: Record<string, unknown>;
  mode: 'below' | 'replace';
}

function cellAt(model: INotebookModel, index: number): ICellModel {
  return model.cells.get(index);
}

export function findCellIndex(model: INotebookModel, id: string): number {
  for (let i = 0; i < model.cells.length; i++) {
    if (cellAt(model, i).id === id) {
      return i;
    }
  }
  return -1;
}

/** Index of the code cell generated from `requestId`, or -1. */
export function findLinkedIndex(model: INotebookModel, requestId: string): number {
  for (let i = 0; i < model.cells.length; i++) {
    const meta = cellAt(model, i).getMetadata(METADATA_KEY) as Record<string, unknown> | undefined;
    if (meta && meta.generated_from === requestId) {
      return i;
    }
  }
  return -1;
}

/** The notebook's cells as plain data for the sidebar model. */
export function plainCells(model: INotebookModel): IPlainCell[] {
  const cells: IPlainCell[] = [];
  for (let i = 0; i < model.cells.length; i++) {
    const cell = cellAt(model, i);
    const meta = cell.getMetadata(METADATA_KEY);
    const plain: IPlainCell = {
      id: cell.id,
      cell_type: cell.type,
      source: cell.sharedModel.getSource(),
      metadata: meta === undefined ? {} : { [METADATA_KEY]: meta }
    };
    if (cell.type === 'code') {
      plain.outputs = (cell as ICodeCellModel).outputs.toJSON() as unknown as Array<
        Record<string, unknown>
      >;
    }
    cells.push(plain);
  }
  return cells;
}

/** A cell's `codeflow` metadata as a plain object (null when it has none). */
function codeflowOf(cell: ICellModel): Record<string, unknown> | null {
  const meta = cell.getMetadata(METADATA_KEY) as Record<string, unknown> | undefined;
  return meta && typeof meta === 'object' ? { ...meta } : null;
}

function setCodeflow(cell: ICellModel, meta: Record<string, unknown> | null): void {
  if (meta === null) {
    cell.deleteMetadata(METADATA_KEY);
  } else {
    cell.setMetadata(METADATA_KEY, meta);
  }
}

/** What Discard and Undo need to put a cell back: source, outputs, metadata, count. */
export function cellState(cell: ICellModel): ICellState {
  const code = cell.type === 'code' ? (cell as ICodeCellModel) : null;
  return {
    source: cell.sharedModel.getSource(),
    outputs: code ? (code.outputs.toJSON() as unknown as Array<Record<string, unknown>>) : [],
    codeflow: codeflowOf(cell),
    executionCount: code ? code.executionCount : null
  };
}

function applyCellState(cell: ICellModel, state: ICellState): void {
  cell.sharedModel.setSource(state.source);
  setCodeflow(cell, state.codeflow);
  if (cell.type === 'code') {
    const code = cell as ICodeCellModel;
    code.outputs.clear();
    for (const output of state.outputs) {
      code.outputs.add(output as any);
    }
    code.executionCount = state.executionCount;
  }
}

/** The outcome of writing code for a request into the notebook. */
export interface ILinkedWrite {
  /** The linked cell afterwards (the user's own cell on "keep mine"). */
  linkedId: string;
  /** `new`: no linked cell existed; `replace`: written in place (asked or not needed). */
  choice: OverwriteChoice | 'new';
  /** How to reverse the write; null when nothing in the notebook changed. */
  stash: IStashEntry | null;
}

export interface IWriteOptions {
  /**
   * Asks the user when the write would replace their edit. Without it the edit is kept and
   * the code goes below, as the magic and headless runs do.
   */
  ask?: AskOverwrite;
  reason?: WriteReason;
}

function insertLinkedBelow(
  model: INotebookModel,
  index: number,
  code: string,
  metadata: ICodeMetadata
): string {
  model.sharedModel.insertCell(index + 1, {
    cell_type: 'code',
    source: code,
    metadata: { [METADATA_KEY]: metadata }
  });
  return cellAt(model, index + 1).id;
}

/**
 * Put `code` into the request's linked code cell (created right below the request when
 * there is none), asking first when the user edited that cell. `fromKernel` gives the
 * metadata to keep (run id, review); the written hash is computed here from `code`.
 * Returns null when the request cell is gone.
 */
export async function writeLinkedCode(
  model: INotebookModel,
  requestId: string,
  code: string,
  fromKernel: Record<string, unknown> = {},
  options: IWriteOptions = {}
): Promise<ILinkedWrite | null> {
  const metadata = writtenCodeMetadata(requestId, fromKernel, code);
  const base = (linkedId: string, before: ICellState | null): IStashEntry => ({
    requestId,
    linkedId,
    before,
    unlinked: null,
    written: code,
    review: metadata.review === 'pending'
  });
  let linkedIndex = findLinkedIndex(model, requestId);
  let choice: OverwriteChoice | 'new' = 'replace';
  if (linkedIndex >= 0) {
    const linked = cellAt(model, linkedIndex);
    const current = linked.sharedModel.getSource();
    if (needsAsk(current, codeflowOf(linked), code)) {
      choice = options.ask
        ? await options.ask({
            requestId,
            linkedId: linked.id,
            reason: options.reason ?? 'writeback',
            current,
            incoming: code,
            choices: ALL_CHOICES
          })
        : 'insert';
      // The notebook may have changed while the question was open: find the cell again.
      linkedIndex = findCellIndex(model, linked.id);
    }
  }
  const requestIndex = findCellIndex(model, requestId);
  if (requestIndex < 0) {
    return null;
  }
  if (linkedIndex < 0) {
    const id = insertLinkedBelow(model, requestIndex, code, metadata);
    return { linkedId: id, choice: 'new', stash: base(id, null) };
  }
  const linked = cellAt(model, linkedIndex);
  if (choice === 'keep') {
    return { linkedId: linked.id, choice, stash: null };
  }
  if (choice === 'insert') {
    // The new cell takes over the link; the user's cell becomes a plain cell.
    const before = codeflowOf(linked);
    linked.deleteMetadata(METADATA_KEY);
    const id = insertLinkedBelow(model, linkedIndex, code, metadata);
    return {
      linkedId: id,
      choice,
      stash: { ...base(id, null), unlinked: { cellId: linked.id, codeflow: before } }
    };
  }
  const before = cellState(linked);
  linked.sharedModel.setSource(code);
  linked.setMetadata(METADATA_KEY, metadata);
  return { linkedId: linked.id, choice: 'replace', stash: base(linked.id, before) };
}

/** Merge keys into a request cell's `codeflow` metadata; false when the cell is gone. */
export function patchRequestMetadata(
  model: INotebookModel,
  requestId: string,
  patch: Record<string, unknown>
): boolean {
  const index = findCellIndex(model, requestId);
  if (index < 0) {
    return false;
  }
  const cell = cellAt(model, index);
  cell.setMetadata(METADATA_KEY, { ...(codeflowOf(cell) ?? {}), ...patch });
  return true;
}

/** True when a write-back message approves reviewed code. */
function isApproval(message: IWriteBack): boolean {
  return (
    message.request_metadata.review === 'approved' || message.code_metadata.review === 'approved'
  );
}

/**
 * Apply a kernel's write-back message; false when the request cell is not in this notebook.
 * With a `stash`, the linked cell's state before the write is kept for Discard and Undo.
 */
export async function applyWriteBack(
  model: INotebookModel,
  message: IWriteBack,
  options: IWriteOptions & { stash?: CellStash } = {}
): Promise<boolean> {
  const index = findCellIndex(model, message.cell_id);
  if (index < 0) {
    return false;
  }
  if (message.mode === 'replace') {
    // The request cell itself now holds the code; there is no linked cell to put back.
    const request = cellAt(model, index);
    request.sharedModel.setSource(message.code);
    request.setMetadata(
      METADATA_KEY,
      writeBackRequestMetadata(message.request_metadata, message.cell_id)
    );
    options.stash?.delete(message.cell_id);
    return true;
  }
  const approval = isApproval(message);
  const written = await writeLinkedCode(
    model,
    message.cell_id,
    message.code,
    message.code_metadata,
    {
      ask: options.ask,
      reason: approval ? 'approve' : (options.reason ?? 'writeback')
    }
  );
  if (!written) {
    return false;
  }
  const requestIndex = findCellIndex(model, message.cell_id);
  if (requestIndex < 0) {
    return false;
  }
  cellAt(model, requestIndex).setMetadata(
    METADATA_KEY,
    writeBackRequestMetadata(message.request_metadata, written.linkedId)
  );
  if (options.stash) {
    if (written.stash) {
      options.stash.record(written.stash, approval);
    } else {
      // "Keep mine": the cell holds the user's code, which Undo must not replace.
      options.stash.delete(message.cell_id);
    }
  }
  return true;
}

/**
 * Reverse one write-back: the linked cell gets its previous source, outputs and metadata
 * back (a cell the write-back created is deleted; a cell "insert below" unlinked is linked
 * again). If the user edited the linked cell since, they are asked first (replace or keep
 * mine; without an asker the edit is kept). Returns the request's linked cell id afterwards
 * (null: none), or undefined when the user kept their cell and nothing changed.
 */
export async function restoreStash(
  model: INotebookModel,
  entry: IStashEntry,
  options: { ask?: AskOverwrite; reason?: WriteReason } = {}
): Promise<string | null | undefined> {
  let index = findCellIndex(model, entry.linkedId);
  if (index >= 0) {
    const cell = cellAt(model, index);
    const current = cell.sharedModel.getSource();
    const back = entry.before?.source ?? '';
    const changes = entry.before === null || back.trimEnd() !== current.trimEnd();
    if (changes && isEdited(current, codeflowOf(cell))) {
      const choice = options.ask
        ? await options.ask({
            requestId: entry.requestId,
            linkedId: entry.linkedId,
            reason: options.reason ?? 'undo',
            current,
            incoming: back,
            choices: PUT_BACK_CHOICES
          })
        : 'keep';
      if (choice !== 'replace') {
        return undefined;
      }
      index = findCellIndex(model, entry.linkedId);
    }
  }
  let linkedId: string | null = null;
  if (index >= 0) {
    if (entry.before === null) {
      model.sharedModel.deleteCell(index);
    } else {
      applyCellState(cellAt(model, index), entry.before);
      linkedId = entry.linkedId;
    }
  }
  if (entry.unlinked) {
    const userIndex = findCellIndex(model, entry.unlinked.cellId);
    if (userIndex >= 0) {
      setCodeflow(cellAt(model, userIndex), entry.unlinked.codeflow);
      linkedId = entry.unlinked.cellId;
    }
  }
  return linkedId;
}

/**
 * Discard code awaiting review: the linked cell goes back to what it was before the review
 * wrote it, and the request records `review: "discarded"`. False when the request is gone.
 */
export async function discardReview(
  model: INotebookModel,
  requestId: string,
  stash: CellStash,
  ask?: AskOverwrite
): Promise<boolean> {
  const entry = stash.get(requestId);
  const patch: Record<string, unknown> = { review: 'discarded' };
  // Only the review's own write is reversed (not an older run's, if the review kept mine).
  if (entry && entry.review) {
    const linked = await restoreStash(model, entry, { ask, reason: 'discard' });
    if (linked !== undefined) {
      patch.linked_cell_id = linked;
    }
    stash.delete(requestId);
  }
  return patchRequestMetadata(model, requestId, patch);
}

/**
 * The notebook half of an undo the kernel confirmed: the linked cell as before the last
 * write-back (when this session saw it), and `undone: true` on the request.
 */
export async function undoLinked(
  model: INotebookModel,
  requestId: string,
  stash: CellStash,
  ask?: AskOverwrite
): Promise<boolean> {
  const entry = stash.get(requestId);
  const patch: Record<string, unknown> = { undone: true };
  if (entry) {
    const linked = await restoreStash(model, entry, { ask, reason: 'undo' });
    if (linked !== undefined) {
      patch.linked_cell_id = linked;
    }
    stash.delete(requestId);
  }
  return patchRequestMetadata(model, requestId, patch);
}

/** A plan write-back from the kernel (`{type: "plan"}` on the comm). */
export interface IPlanWrite {
  cell_id: string;
  cells: IPlanCell[];
  request_metadata: Record<string, unknown>;
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Read a `plan` comm message; null when it names no request or a cell is malformed (a
 * half-applied plan would be worse than none: the request's old steps stay as they are).
 */
export function toPlanWrite(data: Record<string, unknown>): IPlanWrite | null {
  if (typeof data.cell_id !== 'string' || !data.cell_id || !Array.isArray(data.cells)) {
    return null;
  }
  const cells: IPlanCell[] = [];
  for (const raw of data.cells) {
    if (
      !isJsonObject(raw) ||
      (raw.cell_type !== 'markdown' && raw.cell_type !== 'code') ||
      typeof raw.source !== 'string'
    ) {
      return null;
    }
    const cell: IPlanCell = {
      cell_type: raw.cell_type,
      source: raw.source,
      metadata: isJsonObject(raw.metadata) ? raw.metadata : {}
    };
    if (raw.cell_type === 'code') {
      cell.outputs = Array.isArray(raw.outputs) ? raw.outputs.filter(isJsonObject) : [];
    }
    cells.push(cell);
  }
  return {
    cell_id: data.cell_id,
    cells,
    request_metadata: isJsonObject(data.request_metadata) ? data.request_metadata : {}
  };
}

/** Indices of the cells of a request's plan (`codeflow.plan_of` names it), in order. */
export function findPlanIndices(model: INotebookModel, requestId: string): number[] {
  const found: number[] = [];
  for (let i = 0; i < model.cells.length; i++) {
    const meta = cellAt(model, i).getMetadata(METADATA_KEY) as Record<string, unknown> | undefined;
    if (meta && typeof meta === 'object' && meta.plan_of === requestId) {
      found.push(i);
    }
  }
  return found;
}

/**
 * Write a plan's step cells below its request, as the kernel's `notebook.apply_plan` does
 * for headless runs, so a notebook looks the same whichever side wrote it.
 *
 * A re-run replaces the previous plan's cells where they were (never a second copy). A step
 * code cell the user edited is not theirs to lose: it stays, unlinked (no `codeflow`
 * metadata, so the next re-run leaves it alone too), and the new steps go right below the
 * last such cell. Nothing is asked: the edit is kept and the new code is next to it.
 * Returns the ids of the new cells, or null when the request cell is not in this notebook.
 */
export function applyPlan(model: INotebookModel, message: IPlanWrite): string[] | null {
  const requestId = message.cell_id;
  const requestIndex = findCellIndex(model, requestId);
  if (requestIndex < 0) {
    return null;
  }
  const request = cellAt(model, requestIndex);
  const old = findPlanIndices(model, requestId);
  const kept: string[] = [];
  // From the end, so the indices still to visit stay valid.
  for (const index of [...old].reverse()) {
    const cell = cellAt(model, index);
    if (cell.type === 'code' && isEdited(cell.sharedModel.getSource(), codeflowOf(cell))) {
      cell.deleteMetadata(METADATA_KEY);
      kept.push(cell.id);
    } else {
      model.sharedModel.deleteCell(index);
    }
  }
  let at: number;
  if (kept.length) {
    at = Math.max(...kept.map(id => findCellIndex(model, id))) + 1;
  } else if (old.length) {
    at = old[0]; // nothing before the first old cell was deleted
  } else {
    at = findCellIndex(model, requestId) + 1;
  }
  // The steps ran as part of the request cell's execution: their outputs carry its count.
  const count = request.type === 'code' ? (request as ICodeCellModel).executionCount : null;
  const cells = message.cells.map(cell =>
    cell.cell_type === 'code'
      ? {
          cell_type: 'code' as const,
          source: cell.source,
          metadata: cell.metadata,
          outputs: cell.outputs ?? [],
          execution_count: cell.outputs?.length ? (cell.execution_count ?? count) : null
        }
      : { cell_type: 'markdown' as const, source: cell.source, metadata: cell.metadata }
  );
  // One insertion: one change for the views and one step for the notebook's undo.
  model.sharedModel.insertCells(at, cells as Parameters<typeof model.sharedModel.insertCells>[1]);
  const ids = cells.map((_, i) => cellAt(model, at + i).id);
  const index = findCellIndex(model, requestId);
  if (index >= 0) {
    // The kernel's keys (with `steps`); a plan has no single linked cell.
    cellAt(model, index).setMetadata(
      METADATA_KEY,
      recordedRequestMetadata(message.request_metadata, null)
    );
  }
  return ids;
}
