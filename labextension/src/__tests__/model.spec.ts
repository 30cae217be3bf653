import {
  codeCellMetadata,
  CodeflowModel,
  IPlainCell,
  recordFromOutputs,
  requestText,
  snapshotCells,
  writeBackRequestMetadata
} from '../model';
import { IProgressState, IRunRecord, RECORD_MIME, REQUEST_METADATA_KEYS } from '../tokens';

/** A progress state shaped like `ProgressState.to_dict()`, with the given fields. */
function progressState(fields: Partial<IProgressState>): IProgressState {
  return {
    activity: 'starting',
    last_kind: '',
    purpose: '',
    retry: '',
    package: '',
    attempt: 0,
    max_attempts: 3,
    last_error: null,
    last_attempt_ok: null,
    streamed_chars: 0,
    tail: '',
    in_step: 0,
    steps: [],
    step: 0,
    warnings: [],
    finished: false,
    success: null,
    interrupted: false,
    ...fields
  };
}

/** A record shaped like `RunRecord.to_dict()`: a NameError fixed on the second attempt. */
function record(success = true): IRunRecord {
  return {
    request: 'print the value of undefined_name',
    language: 'python',
    model: 'claude-test',
    success,
    final_code: 'undefined_name = 42\nprint(undefined_name)\n',
    outputs: [],
    attempts: [
      {
        number: 1,
        kind: 'generate',
        code: 'print(undefined_name)\n',
        success: false,
        outputs: [],
        error: {
          category: 'runtime',
          ename: 'NameError',
          evalue: "name 'undefined_name' is not defined",
          traceback: 'Traceback...\nNameError',
          line: 1,
          source_line: 'print(undefined_name)',
          root_cause: ''
        },
        explanation: '',
        generation_s: 0.5,
        execution_s: 0.1,
        input_tokens: 100,
        output_tokens: 20
      },
      {
        number: 2,
        kind: 'fix',
        code: 'undefined_name = 42\nprint(undefined_name)\n',
        success,
        outputs: [],
        error: success
          ? null
          : { category: 'logical', ename: 'AssertionError', evalue: 'wrong value' },
        explanation: 'The name was never defined.',
        generation_s: 0.7,
        execution_s: 0.1,
        input_tokens: 200,
        output_tokens: 30
      }
    ],
    metrics: {
      generation_s: 1.2,
      execution_s: 0.2,
      improvement_s: 0.7,
      total_s: 1.5,
      input_tokens: 300,
      output_tokens: 50,
      llm_calls: 2,
      cache_hits: 0
    },
    run_id: 'run-1',
    stop_reason: success ? 'success' : 'max_attempts',
    backend: 'inline',
    check: null,
    focus: 'fix_errors'
  };
}

function requestCell(id: string, extra: Partial<IPlainCell> = {}): IPlainCell {
  return {
    id,
    cell_type: 'code',
    source: '%%codeflow\nprint the value of undefined_name',
    metadata: {},
    outputs: [],
    ...extra
  };
}

describe('snapshotCells', () => {
  it('finds request cells, their records and their linked code cells', () => {
    const cells: IPlainCell[] = [
      { id: 'load', cell_type: 'code', source: '%load_ext codeflow_magic', metadata: {} },
      { id: 'md', cell_type: 'markdown', source: '%%codeflow\nnot code', metadata: {} },
      requestCell('req', {
        source: '  %%codeflow --max-attempts 3\nprint it',
        outputs: [
          { output_type: 'stream', name: 'stdout', text: '42\n' },
          { output_type: 'display_data', data: { [RECORD_MIME]: record(), 'text/plain': 'x' } }
        ]
      }),
      {
        id: 'gen',
        cell_type: 'code',
        source: 'undefined_name = 42',
        metadata: { codeflow: { generated_from: 'req', run_id: 'run-1' } }
      },
      requestCell('other')
    ];
    const snaps = snapshotCells(cells);
    expect(snaps.map(s => s.id)).toEqual(['req', 'other']);
    expect(snaps[0].linkedCellId).toBe('gen');
    expect(snaps[0].record?.run_id).toBe('run-1');
    expect(snaps[1].linkedCellId).toBeNull();
    expect(snaps[1].record).toBeNull();
  });

  it('counts a replaced request (metadata only, no magic line) but not generated cells', () => {
    const snaps = snapshotCells([
      {
        id: 'replaced',
        cell_type: 'code',
        source: 'x = 1',
        metadata: { codeflow: { request: 'set x', success: true } }
      },
      {
        id: 'gen',
        cell_type: 'code',
        source: 'x = 1',
        metadata: { codeflow: { request: 'set x', generated_from: 'replaced' } }
      }
    ]);
    expect(snaps.map(s => s.id)).toEqual(['replaced']);
  });

  it('reads a record stored as a JSON string and keeps the last one', () => {
    const first = { ...record(), run_id: 'old' };
    const found = recordFromOutputs([
      { output_type: 'display_data', data: { [RECORD_MIME]: first } },
      { output_type: 'display_data', data: { [RECORD_MIME]: JSON.stringify(record()) } },
      { output_type: 'display_data', data: { [RECORD_MIME]: '{broken' } }
    ]);
    expect(found?.run_id).toBe('run-1');
  });

  it('takes the request text below the magic line', () => {
    expect(requestText('%%codeflow -m x\nline one\nline two\n')).toBe('line one\nline two');
    expect(requestText('%%codeflow')).toBe('');
  });
});

describe('CodeflowModel state', () => {
  it('is idle for a request that never ran', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([requestCell('a')]));
    expect(model.entries).toHaveLength(1);
    expect(model.entries[0]).toMatchObject({
      cellId: 'a',
      state: 'idle',
      attemptCount: 0,
      title: 'print the value of undefined_name',
      lastError: null
    });
  });

  it('reads saved metadata when there are no outputs', () => {
    const model = new CodeflowModel();
    model.sync(
      snapshotCells([
        requestCell('a', {
          metadata: {
            codeflow: {
              request: 'print it',
              success: false,
              attempts: 3,
              run_id: 'r9',
              model: 'm',
              linked_cell_id: 'g',
              history: [
                {
                  number: 1,
                  kind: 'generate',
                  success: false,
                  category: 'runtime',
                  ename: 'NameError'
                },
                {
                  number: 2,
                  kind: 'fix',
                  success: false,
                  category: 'syntax',
                  ename: 'SyntaxError',
                  evalue: 'bad'
                }
              ]
            }
          }
        })
      ])
    );
    const entry = model.entries[0];
    expect(entry.state).toBe('failed');
    expect(entry.attemptCount).toBe(3);
    expect(entry.attempts.map(a => a.ename)).toEqual(['NameError', 'SyntaxError']);
    expect(entry.lastError).toEqual({ category: 'syntax', ename: 'SyntaxError', evalue: 'bad' });
    expect(entry.linkedCellId).toBe('g');
    expect(entry.runId).toBe('r9');
  });

  it('reads the words and history of a replaced request from its metadata', () => {
    const model = new CodeflowModel();
    model.sync(
      snapshotCells([
        {
          id: 'r',
          cell_type: 'code',
          source: '# %%codeflow\n# print it\nprint(42)\n',
          metadata: {
            codeflow: {
              request: 'print it',
              model: 'm',
              success: true,
              attempts: 2,
              history: [
                {
                  number: 1,
                  kind: 'generate',
                  success: false,
                  category: 'runtime',
                  ename: 'NameError',
                  evalue: null
                },
                { number: 2, kind: 'fix', success: true, category: null, ename: null, evalue: null }
              ],
              run_id: 'r1',
              cache_keys: [],
              linked_cell_id: 'r'
            }
          }
        }
      ])
    );
    const entry = model.entries[0];
    expect(entry).toMatchObject({ state: 'succeeded', attemptCount: 2, title: 'print it' });
    expect(entry.lastError).toMatchObject({ ename: 'NameError' });
    expect(entry.linkedCellId).toBe('r');
  });

  it('ignores a list under `attempts`: the count and the history have one place each', () => {
    const model = new CodeflowModel();
    const stray = [{ number: 1, success: false, ename: 'NameError' }];
    model.sync(
      snapshotCells([
        requestCell('a', {
          metadata: { codeflow: { request: 'x', success: false, attempts: stray } }
        })
      ])
    );
    expect(model.entries[0]).toMatchObject({ state: 'failed', attemptCount: 0, attempts: [] });
  });

  it('prefers the record in the outputs over the metadata', () => {
    const model = new CodeflowModel();
    model.sync(
      snapshotCells([
        requestCell('a', {
          metadata: { codeflow: { success: false, attempts: 1 } },
          outputs: [{ output_type: 'display_data', data: { [RECORD_MIME]: record() } }]
        })
      ])
    );
    const entry = model.entries[0];
    expect(entry.state).toBe('succeeded');
    expect(entry.attemptCount).toBe(2);
    expect(entry.attempts.map(a => [a.number, a.kind, a.success])).toEqual([
      [1, 'generate', false],
      [2, 'fix', true]
    ]);
    expect(entry.attempts[0]).toMatchObject({ category: 'runtime', ename: 'NameError' });
    expect(entry.lastError).toMatchObject({ ename: 'NameError' });
    expect(entry.seconds).toBe(1.5);
    expect(entry.inputTokens + entry.outputTokens).toBe(350);
    expect(entry.model).toBe('claude-test');
  });

  it('goes running -> succeeded through live events', () => {
    const model = new CodeflowModel();
    let changes = 0;
    model.changed.connect(() => changes++);
    model.sync(snapshotCells([requestCell('a')]));
    model.markScheduled('a');
    expect(model.entry('a')).toMatchObject({ state: 'running', phase: 'queued', attemptCount: 0 });

    model.applyEvent('a', { kind: 'start', attempt: 0, data: { request: 'x', max_attempts: 3 } });
    model.applyEvent('a', { kind: 'generating', attempt: 1, data: { phase: 'generate' } });
    expect(model.entry('a')?.phase).toBe('generating');
    // an outage: the retry and its reason are shown, then the answer goes on as usual
    const why = 'the model API answered 529 <none>; sending the request again (retry 1)';
    model.applyEvent('a', {
      kind: 'generating',
      attempt: 1,
      data: { phase: 'generate', retry: why }
    });
    expect(model.entry('a')?.phase).toBe(`generating again: ${why}`);
    model.applyEvent('a', { kind: 'delta', attempt: 1, data: { text: '`' } });
    expect(model.entry('a')?.phase).toBe('generating');
    const before = changes;
    model.applyEvent('a', { kind: 'delta', attempt: 1, data: { text: 'pri' } });
    model.applyEvent('a', { kind: 'delta', attempt: 1, data: { text: 'nt' } });
    expect(changes).toBe(before); // streaming text alone does not re-render

    const rec = record();
    model.applyEvent('a', { kind: 'attempt', attempt: 1, data: { attempt: rec.attempts![0] } });
    let entry = model.entry('a')!;
    expect(entry.state).toBe('running');
    expect(entry.attempts.map(a => a.number)).toEqual([1]);
    expect(entry.lastError).toMatchObject({ category: 'runtime', ename: 'NameError' });
    expect(entry.inputTokens).toBe(100);

    model.applyEvent('a', { kind: 'executing', attempt: 2, data: {} });
    model.applyEvent('a', { kind: 'attempt', attempt: 2, data: { attempt: rec.attempts![1] } });
    expect(model.entry('a')?.attemptCount).toBe(2);

    model.applyEvent('a', { kind: 'finished', attempt: 0, data: { record: rec } });
    entry = model.entry('a')!;
    expect(entry.state).toBe('succeeded');
    expect(entry.seconds).toBe(1.5);
    model.markExecuted('a');
    expect(model.entry('a')?.state).toBe('succeeded');
  });

  it('words the phase from the progress state the kernel sends with an event', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([requestCell('a')]));
    model.markScheduled('a');
    const state = progressState({
      last_kind: 'install',
      activity: 'installing',
      package: 'pandas'
    });
    // The state, not the event's data, says what is installed.
    model.applyEvent('a', { kind: 'install', attempt: 1, data: {} }, state);
    expect(model.entry('a')?.phase).toBe('installing pandas');
    const retry = progressState({ last_kind: 'generating', retry: 'overloaded' });
    model.applyEvent('a', { kind: 'generating', attempt: 1, data: { phase: 'fix' } }, retry);
    expect(model.entry('a')?.phase).toBe('generating again: overloaded');
    // A retry kept in the state from an earlier request is not shown for later events.
    const delta = progressState({ last_kind: 'delta', retry: 'overloaded' });
    model.applyEvent('a', { kind: 'delta', attempt: 1, data: { text: 'x' } }, delta);
    expect(model.entry('a')?.phase).toBe('generating');
    // Inside a plan step, the step's phase is worded from the state as well.
    model.applyEvent('a', { kind: 'plan_start', attempt: 0, data: {} }, progressState({}));
    model.applyEvent('a', {
      kind: 'plan',
      attempt: 0,
      data: { steps: [{ number: 1, title: 't' }] }
    });
    const inStep = progressState({ last_kind: 'install', package: 'numpy', in_step: 1 });
    model.applyEvent('a', { kind: 'install', attempt: 1, data: { step: 1 } }, inStep);
    expect(model.entry('a')?.phase).toBe('step 1 of 1: installing numpy');
  });

  it('goes running -> failed, and a new run starts from no attempts', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([requestCell('a')]));
    model.markScheduled('a');
    model.applyRecord('a', record(false));
    expect(model.entry('a')).toMatchObject({ state: 'failed', stopReason: 'max_attempts' });
    expect(model.entry('a')?.lastError).toEqual({
      category: 'logical',
      ename: 'AssertionError',
      evalue: 'wrong value'
    });

    model.markScheduled('a');
    expect(model.entry('a')).toMatchObject({ state: 'running', attemptCount: 0 });
    model.applyEvent('a', { kind: 'start', attempt: 0, data: {} });
    expect(model.entry('a')?.attempts).toEqual([]);
  });

  it('ends a run without a record from its live attempts, then the saved record wins', () => {
    const model = new CodeflowModel();
    const cells = [requestCell('a')];
    model.sync(snapshotCells(cells));
    model.applyEvent('a', { kind: 'start', attempt: 0, data: {} });
    const failing = record().attempts![0];
    model.applyEvent('a', { kind: 'attempt', attempt: 1, data: { attempt: failing } });
    model.markExecuted('a');
    expect(model.entry('a')).toMatchObject({ state: 'failed', attemptCount: 1 });

    // A live record beats outputs from before; outputs are read when there is none.
    const withOutput = [
      requestCell('a', {
        outputs: [{ output_type: 'display_data', data: { [RECORD_MIME]: record() } }]
      })
    ];
    model.sync(snapshotCells(withOutput));
    expect(model.entry('a')).toMatchObject({ state: 'succeeded', attemptCount: 2 });
  });

  it('drops entries whose cells were deleted and ignores events for unknown cells', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([requestCell('a'), requestCell('b')]));
    model.applyEvent('zzz', { kind: 'start', attempt: 0, data: {} });
    expect(model.entries.map(e => e.cellId)).toEqual(['a', 'b']);
    model.sync(snapshotCells([requestCell('b')]));
    expect(model.entries.map(e => e.cellId)).toEqual(['b']);
  });
});

describe('write-back metadata', () => {
  // What `codeflow_magic.notebook.request_metadata` sends for "below" (no linked id yet).
  const fromKernel = {
    request: 'print it',
    model: 'm',
    success: true,
    attempts: 2,
    history: [
      {
        number: 1,
        kind: 'generate',
        success: false,
        category: 'runtime',
        ename: 'NameError',
        evalue: 'x'
      },
      { number: 2, kind: 'fix', success: true, category: null, ename: null, evalue: null }
    ],
    run_id: 'r1',
    cache_keys: ['k1', 'k2'],
    linked_cell_id: null,
    review: null,
    undone: false,
    steps: null
  };

  it('fills in the linked cell id and keeps exactly the kernel keys', () => {
    const meta = writeBackRequestMetadata({ ...fromKernel, stray: 1 }, 'new-cell');
    expect(Object.keys(meta)).toEqual([...REQUEST_METADATA_KEYS]);
    expect(meta).toEqual({ ...fromKernel, linked_cell_id: 'new-cell' });
  });

  it('reads back as the same entry the record gives', () => {
    const model = new CodeflowModel();
    const meta = writeBackRequestMetadata(fromKernel, 'g');
    model.sync(snapshotCells([requestCell('a', { metadata: { codeflow: meta } })]));
    expect(model.entry('a')).toMatchObject({
      state: 'succeeded',
      attemptCount: 2,
      runId: 'r1',
      model: 'm',
      linkedCellId: 'g',
      lastError: { category: 'runtime', ename: 'NameError', evalue: 'x' }
    });
  });

  it('gives a code cell only its request and run', () => {
    expect(
      codeCellMetadata('req', { generated_from: 'other', run_id: 'r1', language: 'python' })
    ).toEqual({
      generated_from: 'req',
      run_id: 'r1'
    });
    expect(codeCellMetadata('req', {})).toEqual({ generated_from: 'req', run_id: '' });
  });
});
