/**
 * Issue 14 on the frontend: edits are detected by hash, an edited linked cell is never
 * replaced without asking, and Discard and Undo put the linked cell back.
 *
 * The notebook is a small in-memory stand-in (fakes.ts) with the members notebookedit.ts
 * uses, so the real edit code runs unchanged.
 */

import { CodeflowModel, IPlainCell, snapshotCells } from '../model';
import { applyWriteBack, discardReview, undoLinked, writeLinkedCode } from '../notebookedit';
import { entryMetaParts } from '../render';
import { IRunRecord } from '../tokens';
import {
  CellStash,
  choiceFromActions,
  isEdited,
  needsAsk,
  OverwriteChoice,
  OVERWRITE_BUTTONS,
  toUndoReply,
  undoCommand,
  writtenHash
} from '../trust';
import {
  answer,
  FakeCell,
  FakeNotebook,
  Json,
  neverAsk,
  notebookWithLinked,
  writeBack
} from './fakes';

// -- the hash ---------------------------------------------------------------------------------

/** FNV-1a written the slow, obvious way (UTF-8 and the product by hand) to check the fast one. */
function referenceFnv(text: string): string {
  const bytes: number[] = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (cp < 0x80) {
      bytes.push(cp);
    } else if (cp < 0x800) {
      bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
    } else if (cp < 0x10000) {
      bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
    } else {
      bytes.push(
        0xf0 | (cp >> 18),
        0x80 | ((cp >> 12) & 63),
        0x80 | ((cp >> 6) & 63),
        0x80 | (cp & 63)
      );
    }
  }
  // The prime is 2^24 + 0x193: multiply in exact float arithmetic (below 2^53), then mod 2^32.
  let hash = 0x811c9dc5;
  for (const b of bytes) {
    const x = (hash ^ b) >>> 0;
    hash = (x * 0x193 + (x % 256) * 2 ** 24) % 2 ** 32;
  }
  return `fnv1a32:${hash.toString(16).padStart(8, '0')}`;
}

describe('written_hash', () => {
  it('matches the vectors the kernel side is held to', () => {
    // The contract's vectors: the Python half computes these same strings.
    expect(writtenHash('')).toBe('fnv1a32:811c9dc5');
    expect(writtenHash('a')).toBe('fnv1a32:e40c292c');
    expect(writtenHash('print(1)\n')).toBe('fnv1a32:0929a97c');
    expect(writtenHash('é→x')).toBe('fnv1a32:bccd542f');
  });

  it('agrees with a plain reference implementation over UTF-8', () => {
    for (const text of ['', 'x = 1\n', 'naïve 😀 code\r\n', 'df["é"] = 2', 'a'.repeat(1000)]) {
      expect(writtenHash(text)).toBe(referenceFnv(text));
    }
  });

  it('tells an edit from the written code; a legacy cell counts as unedited', () => {
    const meta = { generated_from: 'req', written_hash: writtenHash('x = 1\n') };
    expect(isEdited('x = 1\n', meta)).toBe(false);
    expect(isEdited('x = 1\n# mine\n', meta)).toBe(true);
    expect(isEdited('x = 1', meta)).toBe(true); // even the final newline counts
    expect(isEdited('anything', { generated_from: 'req', run_id: 'r' })).toBe(false);
    expect(isEdited('anything', null)).toBe(false);
    // Writing the text the user already has loses nothing: no question.
    expect(needsAsk('x = 2\n', meta, 'x = 2\n')).toBe(false);
    expect(needsAsk('x = 2\n', meta, 'x = 2')).toBe(false); // the kernel drops the final newline
    expect(needsAsk('x = 2\n', meta, 'x = 3\n')).toBe(true);
    expect(needsAsk('x = 1\n', meta, 'x = 3\n')).toBe(false);
  });
});

// -- never overwrite ------------------------------------------------------------------------

describe('writing into the linked cell', () => {
  it('replaces an unedited cell in place without asking, with the new hash', async () => {
    const nb = notebookWithLinked('print(1)\n');
    const result = await writeLinkedCode(
      nb.model,
      'req',
      'print(2)\n',
      { run_id: 'r2' },
      { ask: neverAsk }
    );
    expect(result?.choice).toBe('replace');
    expect(nb.list.map(c => c.id)).toEqual(['req', 'gen', 'md']);
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe('print(2)\n');
    expect(nb.byId('gen')?.getMetadata('codeflow')).toEqual({
      generated_from: 'req',
      run_id: 'r2',
      written_hash: writtenHash('print(2)\n'),
      review: null
    });
  });

  it('creates the linked cell right below the request when there is none', async () => {
    const nb = new FakeNotebook([
      new FakeCell('code', '%%codeflow\nx', {}, 'req'),
      new FakeCell('code', 'y', {}, 'y')
    ]);
    const result = await writeLinkedCode(nb.model, 'req', 'x = 1\n', {}, { ask: neverAsk });
    expect(result?.choice).toBe('new');
    expect(nb.list[1].id).toBe(result?.linkedId);
    expect(nb.list[1].getMetadata('codeflow')).toMatchObject({
      written_hash: writtenHash('x = 1\n')
    });
    expect(result?.stash?.before).toBeNull();
  });

  const mine = 'print(1)\n# my change\n';

  it('asks before replacing an edit: Replace writes over it', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('gen')?.sharedModel.setSource(mine);
    const ask = answer('replace');
    await applyWriteBack(nb.model, writeBack('print(2)\n'), { ask });
    expect(ask.asked).toEqual([
      {
        requestId: 'req',
        linkedId: 'gen',
        reason: 'writeback',
        current: mine,
        incoming: 'print(2)\n',
        choices: ['keep', 'replace', 'insert']
      }
    ]);
    expect(nb.list.map(c => c.id)).toEqual(['req', 'gen', 'md']);
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe('print(2)\n');
    expect(isEdited('print(2)\n', nb.byId('gen')?.getMetadata('codeflow') as Json)).toBe(false);
  });

  it('Keep mine leaves the cell as the user left it, the request metadata still updated', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('gen')?.sharedModel.setSource(mine);
    const before = nb.byId('gen')?.getMetadata('codeflow');
    const stash = new CellStash();
    await applyWriteBack(nb.model, writeBack('print(2)\n'), { ask: answer('keep'), stash });
    expect(nb.list.map(c => c.id)).toEqual(['req', 'gen', 'md']);
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe(mine);
    expect(nb.byId('gen')?.getMetadata('codeflow')).toEqual(before);
    expect(nb.byId('req')?.getMetadata('codeflow')).toMatchObject({
      run_id: 'r2',
      linked_cell_id: 'gen'
    });
    // Nothing was written, so an undo must not touch the user's cell.
    expect(stash.get('req')).toBeUndefined();
  });

  it('Insert below puts the code in a new linked cell under the user cell, which loses its link', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('gen')?.sharedModel.setSource(mine);
    await applyWriteBack(nb.model, writeBack('print(2)\n'), { ask: answer('insert') });
    expect(nb.list).toHaveLength(4);
    const inserted = nb.list[2];
    expect(nb.list.map(c => c.id)).toEqual(['req', 'gen', inserted.id, 'md']);
    expect(inserted.sharedModel.getSource()).toBe('print(2)\n');
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe(mine);
    expect(nb.byId('gen')?.getMetadata('codeflow')).toBeUndefined();
    expect(nb.linked('req').map(c => c.id)).toEqual([inserted.id]); // one linked cell
    expect(nb.byId('req')?.getMetadata('codeflow')).toMatchObject({ linked_cell_id: inserted.id });
  });

  it('without an asker keeps the edit and writes below, as the magic does', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('gen')?.sharedModel.setSource(mine);
    const result = await writeLinkedCode(nb.model, 'req', 'print(2)\n');
    expect(result?.choice).toBe('insert');
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe(mine);
  });

  it('maps the dialog buttons to choices; closing it keeps the user code', () => {
    for (const button of OVERWRITE_BUTTONS) {
      expect(choiceFromActions([`codeflow-${button.choice}`])).toBe(button.choice);
    }
    expect(new Set(OVERWRITE_BUTTONS.map(b => b.choice))).toEqual(
      new Set(['replace', 'keep', 'insert'])
    );
    expect(choiceFromActions([])).toBe('keep');
    expect(choiceFromActions(undefined)).toBe('keep');
  });
});

// -- discard and undo -----------------------------------------------------------------------

describe('putting the linked cell back', () => {
  it('Discard restores the cell from before the review wrote it', async () => {
    const nb = notebookWithLinked('print(1)\n');
    const before = {
      source: nb.byId('gen')?.sharedModel.getSource(),
      meta: nb.byId('gen')?.getMetadata('codeflow'),
      outputs: nb.byId('gen')?.outputs.toJSON()
    };
    const stash = new CellStash();
    await applyWriteBack(
      nb.model,
      writeBack('import os\nos.remove("x")\n', { review: 'pending' }),
      {
        ask: neverAsk,
        stash
      }
    );
    expect(nb.byId('gen')?.getMetadata('codeflow')).toMatchObject({ review: 'pending' });
    expect(stash.get('req')?.review).toBe(true);
    expect(await discardReview(nb.model, 'req', stash, neverAsk)).toBe(true);
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe(before.source);
    expect(nb.byId('gen')?.getMetadata('codeflow')).toEqual(before.meta);
    expect(nb.byId('gen')?.outputs.toJSON()).toEqual(before.outputs);
    expect(nb.byId('req')?.getMetadata('codeflow')).toMatchObject({
      review: 'discarded',
      linked_cell_id: 'gen'
    });
    expect(stash.get('req')).toBeUndefined();
  });

  it('Discard deletes a linked cell the review created', async () => {
    const nb = new FakeNotebook([new FakeCell('code', '%%codeflow\nprint x', {}, 'req')]);
    const stash = new CellStash();
    await applyWriteBack(nb.model, writeBack('print(9)\n', { review: 'pending' }), { stash });
    expect(nb.list).toHaveLength(2);
    await discardReview(nb.model, 'req', stash, neverAsk);
    expect(nb.list.map(c => c.id)).toEqual(['req']);
    expect(nb.byId('req')?.getMetadata('codeflow')).toMatchObject({
      review: 'discarded',
      linked_cell_id: null
    });
  });

  it('Undo restores source, outputs and count from before the last write-back', async () => {
    const nb = notebookWithLinked('print(1)\n');
    const gen = nb.byId('gen') as FakeCell;
    const before = {
      source: gen.sharedModel.getSource(),
      outputs: gen.outputs.toJSON(),
      meta: gen.getMetadata('codeflow')
    };
    const stash = new CellStash();
    await applyWriteBack(nb.model, writeBack('print(2)\n'), { stash });
    gen.outputs.clear();
    gen.outputs.add({ output_type: 'stream', name: 'stdout', text: 'new output\n' });
    gen.executionCount = 4;
    expect(await undoLinked(nb.model, 'req', stash, neverAsk)).toBe(true);
    expect(gen.sharedModel.getSource()).toBe(before.source);
    expect(gen.outputs.toJSON()).toEqual(before.outputs);
    expect(gen.executionCount).toBe(3);
    expect(gen.getMetadata('codeflow')).toEqual(before.meta);
    expect(nb.byId('req')?.getMetadata('codeflow')).toMatchObject({
      undone: true,
      linked_cell_id: 'gen'
    });
  });

  it('Undo after "insert below" removes the new cell and links the user cell again', async () => {
    const nb = notebookWithLinked('print(1)\n');
    nb.byId('gen')?.sharedModel.setSource('mine\n');
    const stash = new CellStash();
    await applyWriteBack(nb.model, writeBack('print(2)\n'), { ask: answer('insert'), stash });
    await undoLinked(nb.model, 'req', stash, neverAsk);
    expect(nb.list.map(c => c.id)).toEqual(['req', 'gen', 'md']);
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe('mine\n');
    expect(nb.linked('req').map(c => c.id)).toEqual(['gen']);
  });

  it('Undo after an approved review goes back to before the review, not to the pending code', async () => {
    const nb = notebookWithLinked('print(1)\n');
    const stash = new CellStash();
    await applyWriteBack(nb.model, writeBack('print(2)\n', { review: 'pending' }), { stash });
    // The user edits the pending code, then approves: the kernel writes back that code.
    nb.byId('gen')?.sharedModel.setSource('print(3)\n');
    await applyWriteBack(nb.model, writeBack('print(3)\n', { review: 'approved' }), {
      ask: neverAsk,
      stash
    });
    expect(nb.byId('gen')?.getMetadata('codeflow')).toMatchObject({ review: null });
    expect(nb.byId('req')?.getMetadata('codeflow')).toMatchObject({ review: 'approved' });
    expect(stash.get('req')?.review).toBe(false);
    await undoLinked(nb.model, 'req', stash, neverAsk);
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe('print(1)\n');
  });

  it('Undo asks before putting back over an edit made after the run', async () => {
    for (const choice of ['keep', 'replace'] as OverwriteChoice[]) {
      const nb = notebookWithLinked('print(1)\n');
      const stash = new CellStash();
      await applyWriteBack(nb.model, writeBack('print(2)\n'), { stash });
      nb.byId('gen')?.sharedModel.setSource('print(2)\n# mine\n');
      const ask = answer(choice);
      await undoLinked(nb.model, 'req', stash, ask);
      expect(ask.asked).toEqual([
        {
          requestId: 'req',
          linkedId: 'gen',
          reason: 'undo',
          current: 'print(2)\n# mine\n',
          incoming: 'print(1)\n',
          choices: ['keep', 'replace']
        }
      ]);
      const source = nb.byId('gen')?.sharedModel.getSource();
      expect(source).toBe(choice === 'keep' ? 'print(2)\n# mine\n' : 'print(1)\n');
      expect(nb.byId('req')?.getMetadata('codeflow')).toMatchObject({
        undone: true,
        linked_cell_id: 'gen'
      });
    }
    // Without an asker the edit is kept.
    const nb = notebookWithLinked('print(1)\n');
    const stash = new CellStash();
    await applyWriteBack(nb.model, writeBack('print(2)\n'), { stash });
    nb.byId('gen')?.sharedModel.setSource('mine\n');
    await undoLinked(nb.model, 'req', stash);
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe('mine\n');
  });

  it('Discard asks before deleting a created cell the user edited', async () => {
    const nb = new FakeNotebook([new FakeCell('code', '%%codeflow\nprint x', {}, 'req')]);
    const stash = new CellStash();
    await applyWriteBack(nb.model, writeBack('print(9)\n', { review: 'pending' }), { stash });
    const created = nb.list[1].id;
    nb.list[1].sharedModel.setSource('print(9)\n# mine\n');
    const ask = answer('keep');
    await discardReview(nb.model, 'req', stash, ask);
    expect(ask.asked.map(q => [q.reason, q.incoming])).toEqual([['discard', '']]);
    expect(nb.list.map(c => c.id)).toEqual(['req', created]);
    expect(nb.byId('req')?.getMetadata('codeflow')).toMatchObject({
      review: 'discarded',
      linked_cell_id: created
    });
  });

  it('Undo with nothing stashed (after a reload) only marks the request', async () => {
    const nb = notebookWithLinked('print(1)\n');
    expect(await undoLinked(nb.model, 'req', new CellStash())).toBe(true);
    expect(nb.byId('gen')?.sharedModel.getSource()).toBe('print(1)\n');
    expect(nb.byId('req')?.getMetadata('codeflow')).toMatchObject({ undone: true });
  });

  it('reads the kernel answer and builds a safe command', () => {
    expect(
      toUndoReply({
        type: 'undone',
        cell_id: 'c1',
        ok: true,
        restored: ['df', 3],
        kept: 'x',
        message: 'm'
      })
    ).toEqual({ cell_id: 'c1', ok: true, restored: ['df'], removed: [], kept: [], message: 'm' });
    expect(toUndoReply({ type: 'undone', ok: true })).toBeNull();
    expect(undoCommand('a1-B_2')).toBe('%codeflow undo --cell a1-B_2');
    expect(() => undoCommand('x; import os')).toThrow();
  });
});

// -- the sidebar model ----------------------------------------------------------------------

describe('review and undo in the sidebar model', () => {
  function requestCell(meta: Json | null, record?: IRunRecord): IPlainCell {
    return {
      id: 'req',
      cell_type: 'code',
      source: '%%codeflow --review\nprint x',
      metadata: meta ? { codeflow: meta } : {},
      outputs: record
        ? [{ output_type: 'display_data', data: { 'application/vnd.codeflow.run+json': record } }]
        : []
    };
  }
  const pendingRecord: IRunRecord = {
    request: 'print x',
    success: false,
    stop_reason: 'awaiting_review',
    run_id: 'r1',
    attempts: []
  };

  it('shows a run stopped for review as awaiting review, live and after a reload', () => {
    const live = new CodeflowModel();
    live.sync(snapshotCells([requestCell(null)]));
    live.applyRecord('req', pendingRecord);
    expect(live.entry('req')?.state).toBe('awaiting-review');

    const reloaded = new CodeflowModel();
    reloaded.sync(
      snapshotCells([requestCell({ request: 'print x', success: false, review: 'pending' })])
    );
    expect(reloaded.entry('req')).toMatchObject({ state: 'awaiting-review', review: 'pending' });
  });

  it('shows a discarded review as discarded, and an approved run as its outcome', () => {
    const model = new CodeflowModel();
    model.sync(
      snapshotCells([requestCell({ request: 'print x', review: 'discarded' }, pendingRecord)])
    );
    expect(model.entry('req')?.state).toBe('discarded');
    model.sync(
      snapshotCells([
        requestCell(
          { request: 'print x', success: true, review: 'approved' },
          {
            ...pendingRecord,
            success: true,
            stop_reason: 'success',
            attempts: [{ number: 1, success: true }]
          }
        )
      ])
    );
    expect(model.entry('req')).toMatchObject({ state: 'succeeded', review: 'approved' });
  });

  it('carries undone and the undo answer; a new run forgets the answer', () => {
    const model = new CodeflowModel();
    model.sync(
      snapshotCells([requestCell({ request: 'print x', success: true, attempts: 1, undone: true })])
    );
    const entry = model.entry('req');
    expect(entry?.undone).toBe(true);
    expect(entryMetaParts(entry!)[0]).toBe('undone');
    model.setUndo('req', { busy: false, ok: false, message: 'nothing to undo' });
    expect(model.entry('req')?.undo).toEqual({
      busy: false,
      ok: false,
      message: 'nothing to undo'
    });
    model.markScheduled('req');
    model.markExecuted('req');
    expect(model.entry('req')?.undo).toBeNull();
  });
});
