/**
 * notebookedit.ts on an in-memory notebook: where a write-back puts the code, what restore
 * keeps, and the invariant that a request has at most one linked cell however often it runs,
 * wherever the cell moved and whatever happened while the user was asked.
 */

import {
  applyWriteBack,
  findLinkedIndex,
  IWriteBack,
  patchRequestMetadata,
  plainCells,
  restoreStash,
  writeLinkedCode
} from '../notebookedit';
import { ALL_CHOICES, AskOverwrite, CellStash, writtenHash } from '../trust';
import { answer, FakeCell, FakeNotebook, Json, neverAsk, notebookWithLinked } from './fakes';

/** A write-back of `code` from run `runId` for the request `req`. */
function message(code: string, runId: string, extra: Partial<IWriteBack> = {}): IWriteBack {
  return {
    cell_id: 'req',
    code,
    request_metadata: { request: 'print x', success: true, run_id: runId },
    code_metadata: { generated_from: 'req', run_id: runId },
    mode: 'below',
    ...extra
  };
}

function source(nb: FakeNotebook, id: string): string | undefined {
  return nb.byId(id)?.sharedModel.getSource();
}

function codeflow(nb: FakeNotebook, id: string): Json | undefined {
  return nb.byId(id)?.getMetadata('codeflow') as Json | undefined;
}

describe('write-back keeps one linked cell per request', () => {
  it('updates the same cell run after run instead of stacking copies', async () => {
    const nb = notebookWithLinked('print(1)\n');
    for (const [i, code] of ['print(2)\n', 'print(3)\n', 'print(4)\n'].entries()) {
      expect(await applyWriteBack(nb.model, message(code, `r${i + 2}`), { ask: neverAsk })).toBe(
        true
      );
    }
    expect(nb.list.map(c => c.id)).toEqual(['req', 'gen', 'md']);
    expect(nb.linked('req')).toHaveLength(1);
    expect(source(nb, 'gen')).toBe('print(4)\n');
    expect(codeflow(nb, 'gen')).toEqual({
      generated_from: 'req',
      run_id: 'r4',
      written_hash: writtenHash('print(4)\n'),
      review: null
    });
    expect(codeflow(nb, 'req')?.linked_cell_id).toBe('gen');
    expect(codeflow(nb, 'req')?.run_id).toBe('r4');
  });

  it('finds the linked cell wherever the user moved it', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.list = [nb.list[0], nb.list[2], nb.list[1]]; // req, md, gen
    await applyWriteBack(nb.model, message('print(2)\n', 'r2'), { ask: neverAsk });
    expect(nb.list.map(c => c.id)).toEqual(['req', 'md', 'gen']);
    expect(source(nb, 'gen')).toBe('print(2)\n');
  });

  it('links the first cell only when a copy of the notebook holds two', () => {
    const nb = notebookWithLinked('print(1)\n');
    const copy = new FakeCell('code', 'print(1)\n', { codeflow: { generated_from: 'req' } }, 'dup');
    nb.list.push(copy);
    expect(findLinkedIndex(nb.model, 'req')).toBe(1);
    expect(findLinkedIndex(nb.model, 'nope')).toBe(-1);
  });

  it('creates the first linked cell right below the request and names it there', async () => {
    const nb = new FakeNotebook([
      new FakeCell('markdown', '# intro', {}, 'intro'),
      new FakeCell('code', '%%codeflow\nprint x', {}, 'req'),
      new FakeCell('code', 'other()', {}, 'other')
    ]);
    const msg = message('print(1)\n', 'r1');
    msg.request_metadata = { ...msg.request_metadata, not_a_kernel_key: 1 };
    expect(await applyWriteBack(nb.model, msg)).toBe(true);
    const created = nb.list[2];
    expect(nb.list.map(c => c.id)).toEqual(['intro', 'req', created.id, 'other']);
    expect(created.sharedModel.getSource()).toBe('print(1)\n');
    expect((created.getMetadata('codeflow') as Json).generated_from).toBe('req');
    // Only the kernel's keys, and the id of the cell that only the frontend knows.
    expect(codeflow(nb, 'req')).toEqual({
      request: 'print x',
      success: true,
      run_id: 'r1',
      linked_cell_id: created.id
    });
  });

  it('replace mode writes into the request cell itself and forgets its stash', async () => {
    const nb = notebookWithLinked('print(1)\n');
    const stash = new CellStash();
    await applyWriteBack(nb.model, message('print(2)\n', 'r2'), { stash });
    expect(stash.get('req')).toBeDefined();

    await applyWriteBack(nb.model, message('x = 1\n', 'r3', { mode: 'replace' }), { stash });
    expect(source(nb, 'req')).toBe('x = 1\n');
    expect(codeflow(nb, 'req')?.linked_cell_id).toBe('req');
    expect(nb.list).toHaveLength(3);
    // There is no linked cell to put back any more: Undo must not write the old one back.
    expect(stash.get('req')).toBeUndefined();
  });

  it('changes nothing for a request that is not in this notebook', async () => {
    const nb = notebookWithLinked('print(1)\n');
    const before = JSON.stringify(plainCells(nb.model));
    expect(await applyWriteBack(nb.model, message('print(2)\n', 'r2', { cell_id: 'gone' }))).toBe(
      false
    );
    expect(
      await applyWriteBack(nb.model, message('y\n', 'r2', { cell_id: 'gone', mode: 'replace' }))
    ).toBe(false);
    expect(JSON.stringify(plainCells(nb.model))).toBe(before);
  });
});

describe('while the user is asked, the notebook may change', () => {
  it('replaces the right cell after cells were inserted above it', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('gen')?.sharedModel.setSource('mine()\n');
    const ask: AskOverwrite = async () => {
      nb.model.sharedModel.insertCell(0, { cell_type: 'code', source: 'new()', metadata: {} });
      return 'replace';
    };
    await applyWriteBack(nb.model, message('print(2)\n', 'r2'), { ask });
    expect(nb.list.map(c => c.sharedModel.getSource())).toEqual([
      'new()',
      '%%codeflow\nprint x',
      'print(2)\n',
      '# after'
    ]);
    expect(codeflow(nb, 'req')?.linked_cell_id).toBe('gen');
  });

  it('writes nothing when the request cell was deleted meanwhile', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('gen')?.sharedModel.setSource('mine()\n');
    const ask: AskOverwrite = async () => {
      nb.model.sharedModel.deleteCell(0);
      return 'replace';
    };
    const stash = new CellStash();
    expect(await applyWriteBack(nb.model, message('print(2)\n', 'r2'), { ask, stash })).toBe(false);
    expect(source(nb, 'gen')).toBe('mine()\n');
    expect(stash.get('req')).toBeUndefined();
  });
});

describe('asking', () => {
  it('asks an approval as an approval, with every choice', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('gen')?.sharedModel.setSource('mine()\n');
    const ask = answer('keep');
    const msg = message('print(2)\n', 'r2');
    msg.request_metadata.review = 'approved';
    await applyWriteBack(nb.model, msg, { ask });
    expect(ask.asked).toHaveLength(1);
    expect(ask.asked[0]).toMatchObject({
      requestId: 'req',
      linkedId: 'gen',
      reason: 'approve',
      current: 'mine()\n',
      incoming: 'print(2)\n',
      choices: ALL_CHOICES
    });
    expect(source(nb, 'gen')).toBe('mine()\n');
  });

  it('does not ask when the incoming code is the edit (approving reviewed code)', async () => {
    const nb = notebookWithLinked('print(1)\n');
    // The user edited the pending code; the kernel writes that code back without the newline.
    nb.byId('gen')?.sharedModel.setSource('print(5)\n');
    await applyWriteBack(nb.model, message('print(5)', 'r2'), { ask: neverAsk });
    expect(source(nb, 'gen')).toBe('print(5)');
    // The hash now names what is in the cell: the next run replaces it without a question.
    expect(codeflow(nb, 'gen')?.written_hash).toBe(writtenHash('print(5)'));
    await applyWriteBack(nb.model, message('print(6)\n', 'r3'), { ask: neverAsk });
    expect(source(nb, 'gen')).toBe('print(6)\n');
  });
});

describe('restoring an attempt from the sidebar', () => {
  it('keeps the run and the review, and writes the new hash', async () => {
    const nb = notebookWithLinked('print(1)\n');
    const previous = {
      ...(codeflow(nb, 'gen') as Json),
      review: 'pending'
    };
    const result = await writeLinkedCode(nb.model, 'req', 'print(0)\n', previous, {
      ask: neverAsk,
      reason: 'restore'
    });
    expect(result).toMatchObject({ linkedId: 'gen', choice: 'replace' });
    expect(result?.stash?.before?.source).toBe('print(1)\n');
    expect(source(nb, 'gen')).toBe('print(0)\n');
    expect(codeflow(nb, 'gen')).toEqual({
      generated_from: 'req',
      run_id: 'r1',
      written_hash: writtenHash('print(0)\n'),
      review: 'pending'
    });
  });

  it('asks with the restore reason and Keep mine changes nothing', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('gen')?.sharedModel.setSource('mine()\n');
    const before = codeflow(nb, 'gen');
    const ask = answer('keep');
    const result = await writeLinkedCode(
      nb.model,
      'req',
      'print(0)\n',
      {},
      {
        ask,
        reason: 'restore'
      }
    );
    expect(ask.asked.map(q => q.reason)).toEqual(['restore']);
    expect(result).toEqual({ linkedId: 'gen', choice: 'keep', stash: null });
    expect(source(nb, 'gen')).toBe('mine()\n');
    expect(codeflow(nb, 'gen')).toEqual(before);
  });

  it('returns null and writes nothing when the request is gone', async () => {
    const nb = new FakeNotebook([new FakeCell('code', 'x', {}, 'x')]);
    expect(await writeLinkedCode(nb.model, 'req', 'print(0)\n')).toBeNull();
    expect(nb.list).toHaveLength(1);
  });
});

describe('putting a cell back', () => {
  it('does not recreate a linked cell the user deleted', async () => {
    const nb = notebookWithLinked('print(1)\n');
    const stash = new CellStash();
    await applyWriteBack(nb.model, message('print(2)\n', 'r2'), { stash });
    nb.model.sharedModel.deleteCell(1);
    const entry = stash.get('req');
    expect(entry).toBeDefined();
    expect(await restoreStash(nb.model, entry!)).toBeNull();
    expect(nb.list.map(c => c.id)).toEqual(['req', 'md']);
  });

  it('puts back a cell the user has not touched since, without asking', async () => {
    const nb = notebookWithLinked('print(1)\n');
    const stash = new CellStash();
    await applyWriteBack(nb.model, message('print(2)\n', 'r2'), { stash });
    expect(await restoreStash(nb.model, stash.get('req')!, { ask: neverAsk })).toBe('gen');
    expect(source(nb, 'gen')).toBe('print(1)\n');
    expect(codeflow(nb, 'gen')?.run_id).toBe('r1');
  });
});

describe('reading the notebook', () => {
  it('gives plain cells: outputs for code cells only, codeflow metadata only', () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('md')?.setMetadata('tags', ['x']);
    const cells = plainCells(nb.model);
    expect(cells.map(c => c.id)).toEqual(['req', 'gen', 'md']);
    expect(cells[1].outputs).toEqual([
      { output_type: 'stream', name: 'stdout', text: 'old output\n' }
    ]);
    expect(cells[2]).toEqual({ id: 'md', cell_type: 'markdown', source: '# after', metadata: {} });
  });

  it('merges keys into the request metadata and reports a missing request', () => {
    const nb = notebookWithLinked('print(1)\n');
    expect(patchRequestMetadata(nb.model, 'req', { undone: true })).toBe(true);
    expect(codeflow(nb, 'req')).toEqual({ request: 'print x', undone: true });
    expect(patchRequestMetadata(nb.model, 'gone', { undone: true })).toBe(false);
  });
});
