/**
 * Rules behind the walk-through fixes (issue 16): failed runs keep their cause, interrupted
 * runs keep the history before them, only real requests are listed, figures read plainly.
 */

import {
  CodeflowModel,
  IPlainCell,
  IRequestEntry,
  isRequestCell,
  recordedRequestMetadata,
  snapshotCells
} from '../model';
import { entryMetaParts } from '../render';
import { IRunRecord } from '../tokens';

function cell(id: string, source: string, extra: Partial<IPlainCell> = {}): IPlainCell {
  return { id, cell_type: 'code', source, metadata: {}, outputs: [], ...extra };
}

const fixed: IRunRecord = {
  request: 'print x',
  success: true,
  model: 'm',
  run_id: 'r1',
  stop_reason: 'success',
  attempts: [
    {
      number: 1,
      kind: 'generate',
      code: 'print(x)',
      success: false,
      error: { category: 'runtime', ename: 'NameError', evalue: "name 'x' is not defined" },
      generation_s: 3,
      execution_s: 0.4
    },
    { number: 2, kind: 'fix', code: 'x = 1\nprint(x)', success: true, generation_s: 3.5 }
  ],
  metrics: { total_s: 6.9, input_tokens: 1000, output_tokens: 200 }
};

const unavailable: IRunRecord = {
  request: 'print x',
  success: false,
  model: 'm',
  run_id: 'r2',
  stop_reason: 'provider_unavailable',
  error: 'cannot reach the model server at http://127.0.0.1:9: connection refused',
  attempts: [],
  metrics: { total_s: 1.2 }
};

function only(model: CodeflowModel): IRequestEntry {
  expect(model.entries).toHaveLength(1);
  return model.entries[0];
}

describe('which cells are requests', () => {
  it('lists a request but not help, an empty body or a refused cell', () => {
    const refused = cell('bad', '%%codeflow --bogus\nprint x', {
      outputs: [
        { output_type: 'error', ename: 'UsageError', evalue: 'unrecognized', traceback: [] }
      ]
    });
    expect(isRequestCell(cell('ok', '%%codeflow\nprint x'))).toBe(true);
    expect(isRequestCell(cell('help', '%%codeflow?'))).toBe(false);
    expect(isRequestCell(cell('help2', '%%codeflow?\nprint x'))).toBe(false);
    expect(isRequestCell(cell('empty', '%%codeflow --max-attempts 2\n  '))).toBe(false);
    expect(isRequestCell(refused)).toBe(false);
    const printed = cell('bad2', '%%codeflow --bogus\nprint x', {
      outputs: [
        { output_type: 'stream', name: 'stderr', text: 'UsageError: unrecognized arguments' }
      ]
    });
    expect(isRequestCell(printed)).toBe(false);
    // A request that ran before stays listed even if a later edit was refused.
    expect(
      isRequestCell({ ...refused, metadata: { codeflow: { request: 'print x', success: true } } })
    ).toBe(true);
    // A model failure is no refusal: it carries a record.
    const failed = cell('f', '%%codeflow\nprint x', {
      outputs: [
        { output_type: 'display_data', data: { 'application/vnd.codeflow.run+json': unavailable } },
        { output_type: 'error', ename: 'ProviderUnavailable', evalue: 'x', traceback: [] }
      ]
    });
    expect(isRequestCell(failed)).toBe(true);
  });
});

describe('a run the model could not answer', () => {
  it('is failed with its cause, live and from the saved metadata', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([cell('a', '%%codeflow\nprint x')]));
    model.markScheduled('a');
    model.applyRecord('a', unavailable);
    model.markExecuted('a');
    const entry = only(model);
    expect(entry.state).toBe('failed');
    expect(entryMetaParts(entry).join(' · ')).toContain(
      'model unavailable: cannot reach the model server'
    );

    const meta = recordedRequestMetadata(
      {
        request: 'print x',
        model: 'm',
        success: false,
        attempts: 0,
        history: [],
        run_id: 'r2',
        cache_keys: [],
        linked_cell_id: null,
        error: unavailable.error,
        stop_reason: 'provider_unavailable'
      },
      { linked_cell_id: 'code-1' }
    );
    expect(meta.linked_cell_id).toBe('code-1');
    const reloaded = new CodeflowModel();
    reloaded.sync(
      snapshotCells([cell('a', '%%codeflow\nprint x', { metadata: { codeflow: meta } })])
    );
    const after = only(reloaded);
    expect(after.state).toBe('failed');
    expect(after.cause).toContain('cannot reach');
    expect(entryMetaParts(after).join(' · ')).toContain('model unavailable: cannot reach');
  });
});

describe('an interrupted run', () => {
  it('shows interrupted and keeps the record before it', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([cell('a', '%%codeflow\nprint x')]));
    model.markScheduled('a');
    model.applyRecord('a', fixed);
    model.markExecuted('a');
    model.markScheduled('a');
    model.applyEvent('a', { kind: 'start', data: {} });
    model.applyEvent('a', {
      kind: 'attempt',
      attempt: 1,
      data: { attempt: { number: 1, success: false, error: { ename: 'NameError' } } }
    });
    model.applyEvent('a', { kind: 'interrupted', data: {} });
    model.markExecuted('a');
    const entry = only(model);
    expect(entry.state).toBe('interrupted');
    expect(entry.attemptCount).toBe(2);
    expect(entry.runId).toBe('r1');
    const text = entryMetaParts(entry).join(' · ');
    expect(text).toContain('interrupted');
    expect(text).not.toContain('NameError');
  });
});

describe('figures under an entry', () => {
  it('say a fix happened rather than naming the error', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([cell('a', '%%codeflow\nprint x')]));
    model.applyRecord('a', fixed);
    expect(entryMetaParts(only(model))).toEqual([
      '2 attempts',
      'fixed a runtime error',
      '6.9 s',
      '1,200 tokens'
    ]);
  });
});
