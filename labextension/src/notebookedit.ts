/**
 * Edits to a notebook model: write-back from the kernel and restore from the sidebar.
 *
 * Both keep one invariant: a request cell has at most one linked code cell (the first cell
 * whose `codeflow.generated_from` names it). A new run updates that cell in place instead of
 * stacking duplicates below the request.
 */

import { ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { INotebookModel } from '@jupyterlab/notebook';

import { codeCellMetadata, IPlainCell, writeBackRequestMetadata } from './model';
import { METADATA_KEY } from './tokens';

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

/**
 * Put `code` into the request's linked code cell, creating it right below the request when
 * there is none. Returns the linked cell's id, or null when the request cell is gone.
 */
export function setLinkedCode(
  model: INotebookModel,
  requestId: string,
  code: string,
  codeMetadata: Record<string, unknown> = {}
): string | null {
  const requestIndex = findCellIndex(model, requestId);
  if (requestIndex < 0) {
    return null;
  }
  const metadata = codeCellMetadata(requestId, codeMetadata);
  const linkedIndex = findLinkedIndex(model, requestId);
  if (linkedIndex >= 0) {
    const linked = cellAt(model, linkedIndex);
    linked.sharedModel.setSource(code);
    linked.setMetadata(METADATA_KEY, metadata);
    return linked.id;
  }
  model.sharedModel.insertCell(requestIndex + 1, {
    cell_type: 'code',
    source: code,
    metadata: { [METADATA_KEY]: metadata }
  });
  return cellAt(model, requestIndex + 1).id;
}

/** Apply a kernel's write-back message; false when the request cell is not in this notebook. */
export function applyWriteBack(model: INotebookModel, message: IWriteBack): boolean {
  const index = findCellIndex(model, message.cell_id);
  if (index < 0) {
    return false;
  }
  const request = cellAt(model, index);
  if (message.mode === 'replace') {
    // The request cell itself now holds the code.
    request.sharedModel.setSource(message.code);
    request.setMetadata(
      METADATA_KEY,
      writeBackRequestMetadata(message.request_metadata, message.cell_id)
    );
    return true;
  }
  const linkedId = setLinkedCode(model, message.cell_id, message.code, message.code_metadata);
  request.setMetadata(METADATA_KEY, writeBackRequestMetadata(message.request_metadata, linkedId));
  return true;
}
