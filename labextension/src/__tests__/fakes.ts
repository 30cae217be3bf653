/**
 * An in-memory stand-in for a notebook model, with exactly the members notebookedit.ts and
 * comm.ts use, so the real edit code runs unchanged in jest (shared by the spec files).
 */

import { INotebookModel } from '@jupyterlab/notebook';

import { IWriteBack } from '../notebookedit';
import { AskOverwrite, IOverwriteQuestion, OverwriteChoice, writtenHash } from '../trust';

export type Json = Record<string, unknown>;

export class FakeOutputs {
  constructor(private _items: Json[] = []) {}
  toJSON(): Json[] {
    return this._items.map(o => ({ ...o }));
  }
  clear(): void {
    this._items = [];
  }
  add(output: Json): void {
    this._items.push({ ...output });
  }
}

let nextId = 0;

export class FakeCell {
  constructor(
    public type: string,
    source: string,
    metadata: Json = {},
    public id = `new-${++nextId}`
  ) {
    this._source = source;
    this._metadata = JSON.parse(JSON.stringify(metadata));
  }
  outputs = new FakeOutputs();
  executionCount: number | null = null;
  sharedModel = {
    getSource: (): string => this._source,
    setSource: (value: string): void => {
      this._source = value;
    }
  };
  getMetadata(key: string): unknown {
    return this._metadata[key] === undefined
      ? undefined
      : JSON.parse(JSON.stringify(this._metadata[key]));
  }
  setMetadata(key: string, value: unknown): void {
    this._metadata[key] = JSON.parse(JSON.stringify(value));
  }
  deleteMetadata(key: string): void {
    delete this._metadata[key];
  }
  private _source: string;
  private _metadata: Json;
}

export class FakeNotebook {
  list: FakeCell[] = [];
  cells = {
    get: (i: number): FakeCell => this.list[i],
    get length(): number {
      return 0;
    }
  };
  constructor(cells: FakeCell[]) {
    this.list = cells;
    const list = (): FakeCell[] => this.list;
    Object.defineProperty(this.cells, 'length', { get: () => list().length });
  }
  sharedModel = {
    insertCell: (
      index: number,
      cell: { cell_type: string; source: string; metadata: Json }
    ): void => {
      this.list.splice(index, 0, new FakeCell(cell.cell_type, cell.source, cell.metadata));
    },
    /** As `YNotebook.insertCells`: code cells may come with outputs and a count. */
    insertCells: (
      index: number,
      cells: Array<{
        cell_type: string;
        source: string;
        metadata: Json;
        outputs?: Json[];
        execution_count?: number | null;
      }>
    ): void => {
      const made = cells.map(cell => {
        const fake = new FakeCell(cell.cell_type, cell.source, cell.metadata);
        for (const output of cell.outputs ?? []) {
          fake.outputs.add(output);
        }
        fake.executionCount = cell.execution_count ?? null;
        return fake;
      });
      this.list.splice(index, 0, ...made);
    },
    deleteCell: (index: number): void => {
      this.list.splice(index, 1);
    }
  };
  get model(): INotebookModel {
    return this as unknown as INotebookModel;
  }
  byId(id: string): FakeCell | undefined {
    return this.list.find(c => c.id === id);
  }
  linked(requestId: string): FakeCell[] {
    return this.list.filter(
      c => (c.getMetadata('codeflow') as Json | undefined)?.generated_from === requestId
    );
  }
}

/** A request cell `req` with a linked cell `gen` that codeflow wrote `code` into. */
export function notebookWithLinked(code: string): FakeNotebook {
  const request = new FakeCell(
    'code',
    '%%codeflow\nprint x',
    { codeflow: { request: 'print x' } },
    'req'
  );
  const linked = new FakeCell(
    'code',
    code,
    { codeflow: { generated_from: 'req', run_id: 'r1', written_hash: writtenHash(code) } },
    'gen'
  );
  linked.outputs.add({ output_type: 'stream', name: 'stdout', text: 'old output\n' });
  linked.executionCount = 3;
  return new FakeNotebook([request, linked, new FakeCell('markdown', '# after', {}, 'md')]);
}

/** An asker that answers `choice` and remembers what it was asked. */
export function answer(choice: OverwriteChoice): AskOverwrite & { asked: IOverwriteQuestion[] } {
  const asked: IOverwriteQuestion[] = [];
  const ask = (async (question: IOverwriteQuestion) => {
    asked.push(question);
    return choice;
  }) as AskOverwrite & { asked: IOverwriteQuestion[] };
  ask.asked = asked;
  return ask;
}

export const neverAsk: AskOverwrite = async () => {
  throw new Error('asked although the cell was not edited');
};

export function writeBack(code: string, extra: { review?: string } = {}): IWriteBack {
  const review = extra.review ? { review: extra.review } : {};
  return {
    cell_id: 'req',
    code,
    request_metadata: { request: 'print x', success: true, run_id: 'r2', ...review },
    code_metadata: {
      generated_from: 'req',
      run_id: 'r2',
      written_hash: writtenHash(code),
      ...review
    },
    mode: 'below'
  };
}
