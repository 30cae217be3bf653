/**
 * `%%codeflow --steps` in the extension: where a plan's step cells go (notebookedit.ts, as
 * the kernel's `notebook.apply_plan` puts them), and the sidebar model's plan from live
 * events, the finished plan record and the saved metadata (model.ts).
 */

import {
  CodeflowModel,
  IPlainCell,
  IPlanView,
  recordedRequestMetadata,
  snapshotCells
} from '../model';
import { applyPlan, findPlanIndices, IPlanWrite, plainCells, toPlanWrite } from '../notebookedit';
import { entryMetaParts } from '../render';
import { IPlanCell, IPlanRecord, IStepSummary } from '../tokens';
import { writtenHash } from '../trust';
import { FakeCell, FakeNotebook, Json } from './fakes';

interface IStepSpec {
  title: string;
  code: string;
  state?: 'ok' | 'failed' | 'not_run';
  /** What the step printed (its outputs when it ran). */
  printed?: string;
}

/** The cells the kernel sends for a plan (`notebook.plan_cells`): markdown, code per step. */
function planCells(requestId: string, runId: string, steps: IStepSpec[]): IPlanCell[] {
  return steps.flatMap((step, i): IPlanCell[] => {
    const state = step.state ?? 'ok';
    const base = { plan_of: requestId, step: i + 1, run_id: `${runId}-${i + 1}` };
    const outputs =
      state === 'ok' && step.printed
        ? [{ output_type: 'stream', name: 'stdout', text: step.printed }]
        : [];
    return [
      {
        cell_type: 'markdown',
        source: `## ${step.title}`,
        metadata: { codeflow: { ...base, role: 'markdown', state, history: [] } }
      },
      {
        cell_type: 'code',
        source: step.code,
        outputs,
        metadata: {
          codeflow: {
            ...base,
            role: 'code',
            state,
            written_hash: writtenHash(step.code),
            history: state === 'not_run' ? [] : [{ number: 1, kind: 'plan', success: true }]
          }
        }
      }
    ];
  });
}

function summary(steps: IStepSpec[]): IStepSummary[] {
  return steps.map((step, i) => ({
    number: i + 1,
    title: step.title,
    state: step.state ?? 'ok',
    attempts: (step.state ?? 'ok') === 'not_run' ? 0 : 1,
    history: []
  }));
}

function planWrite(runId: string, steps: IStepSpec[], requestId = 'req'): IPlanWrite {
  return {
    cell_id: requestId,
    cells: planCells(requestId, runId, steps),
    request_metadata: {
      request: 'analyse the data',
      model: 'm',
      success: steps.every(s => (s.state ?? 'ok') === 'ok'),
      attempts: steps.length,
      history: [],
      run_id: runId,
      cache_keys: [],
      linked_cell_id: null,
      review: null,
      undone: false,
      steps: summary(steps)
    }
  };
}

const THREE: IStepSpec[] = [
  { title: 'Load', code: 'values = [1, 2, 3]\nprint(len(values))', printed: '3\n' },
  { title: 'Double', code: 'doubled = [v * 2 for v in values]', printed: '' },
  { title: 'Show', code: 'print(doubled)', printed: '[2, 4, 6]\n' }
];

/** A request `req` between an intro cell and a cell after it, with execution count 5. */
function notebook(): FakeNotebook {
  const request = new FakeCell('code', '%%codeflow --steps\nanalyse the data', {}, 'req');
  request.executionCount = 5;
  return new FakeNotebook([
    new FakeCell('markdown', '# intro', {}, 'intro'),
    request,
    new FakeCell('code', 'after()', {}, 'after')
  ]);
}

function meta(cell: FakeCell): Json | undefined {
  return cell.getMetadata('codeflow') as Json | undefined;
}

/** The notebook's cells as (type, source) pairs, for order checks. */
function layout(nb: FakeNotebook): string[] {
  return nb.list.map(c => `${c.type}:${c.sharedModel.getSource()}`);
}

function expectedBlock(steps: IStepSpec[]): string[] {
  return steps.flatMap(s => [`markdown:## ${s.title}`, `code:${s.code}`]);
}

describe('a plan write-back', () => {
  it('puts a markdown and a code cell per step right below the request, with outputs', () => {
    const nb = notebook();
    const message = planWrite('p1', THREE);
    const ids = applyPlan(nb.model, message);
    expect(layout(nb)).toEqual([
      'markdown:# intro',
      'code:%%codeflow --steps\nanalyse the data',
      ...expectedBlock(THREE),
      'code:after()'
    ]);
    expect(ids).toEqual(nb.list.slice(2, 2 + 2 * THREE.length).map(c => c.id));
    THREE.forEach((step, i) => {
      const code = nb.list[2 + 2 * i + 1];
      expect(meta(code)).toEqual(message.cells[2 * i + 1].metadata.codeflow);
      expect(code.outputs.toJSON()).toEqual(message.cells[2 * i + 1].outputs);
      // It ran as part of the request's execution (a step without outputs has no count).
      expect(code.executionCount).toBe(step.printed ? 5 : null);
      expect(meta(nb.list[2 + 2 * i])?.role).toBe('markdown');
    });
    expect(meta(nb.byId('req')!)).toEqual(recordedRequestMetadata(message.request_metadata, null));
    expect((meta(nb.byId('req')!)?.steps as IStepSummary[]).map(s => s.title)).toEqual(
      THREE.map(s => s.title)
    );
  });

  it('replaces the previous plan where it was on a re-run, never a second copy', () => {
    const nb = notebook();
    applyPlan(nb.model, planWrite('p1', THREE));
    // The user moved the plan below the next cell.
    const block = nb.list.splice(2, 2 * THREE.length);
    nb.list.push(...block);
    const second: IStepSpec[] = [
      { title: 'Load again', code: 'values = [4]', printed: '' },
      { title: 'Print', code: 'print(values)', printed: '[4]\n' }
    ];
    applyPlan(nb.model, planWrite('p2', second));
    expect(layout(nb)).toEqual([
      'markdown:# intro',
      'code:%%codeflow --steps\nanalyse the data',
      'code:after()',
      ...expectedBlock(second)
    ]);
    expect(findPlanIndices(nb.model, 'req')).toHaveLength(2 * second.length);
    // Once more with the same plan: still one block.
    applyPlan(nb.model, planWrite('p3', second));
    expect(nb.list).toHaveLength(3 + 2 * second.length);
    expect(meta(nb.byId('req')!)?.run_id).toBe('p3');
  });

  it('keeps a step cell the user edited, unlinked, and puts the new steps below it', () => {
    const nb = notebook();
    applyPlan(nb.model, planWrite('p1', THREE));
    const edited = nb.list[2 + 3]; // step 2's code cell
    edited.sharedModel.setSource('doubled = [v * 3 for v in values]  # mine');
    const untouched = nb.list[2 + 1]; // step 1's code cell, as written
    applyPlan(nb.model, planWrite('p2', THREE));
    expect(nb.byId(edited.id)).toBe(edited);
    expect(meta(edited)).toBeUndefined();
    expect(nb.byId(untouched.id)).toBeUndefined();
    expect(layout(nb)).toEqual([
      'markdown:# intro',
      'code:%%codeflow --steps\nanalyse the data',
      'code:doubled = [v * 3 for v in values]  # mine',
      ...expectedBlock(THREE),
      'code:after()'
    ]);
    // The user's cell is theirs now: the next re-run leaves it where it is.
    applyPlan(nb.model, planWrite('p3', THREE));
    expect(nb.list[2]).toBe(edited);
    expect(findPlanIndices(nb.model, 'req')).toHaveLength(2 * THREE.length);
  });

  it('leaves the plans of other requests alone', () => {
    const nb = notebook();
    nb.list.push(new FakeCell('code', '%%codeflow --steps\nother', {}, 'req2'));
    applyPlan(nb.model, planWrite('p1', THREE));
    applyPlan(nb.model, planWrite('q1', THREE.slice(0, 1), 'req2'));
    applyPlan(nb.model, planWrite('p2', THREE.slice(1)));
    expect(findPlanIndices(nb.model, 'req2')).toHaveLength(2);
    expect(findPlanIndices(nb.model, 'req')).toHaveLength(4);
    expect(nb.list[nb.list.length - 1].sharedModel.getSource()).toBe(THREE[0].code);
  });

  it('writes nothing for a request that is not in the notebook', () => {
    const nb = notebook();
    expect(applyPlan(nb.model, planWrite('p1', THREE, 'gone'))).toBeNull();
    expect(nb.list).toHaveLength(3);
  });

  it('reads the comm message, and refuses a malformed one whole', () => {
    const message = planWrite('p1', THREE);
    expect(toPlanWrite({ type: 'plan', ...message })).toEqual(message);
    const markdownWithOutputs = { ...message.cells[0], outputs: [{ output_type: 'stream' }] };
    expect(toPlanWrite({ ...message, cells: [markdownWithOutputs] })?.cells[0]).toEqual(
      message.cells[0]
    );
    expect(toPlanWrite({ ...message, cells: [{ cell_type: 'raw', source: '' }] })).toBeNull();
    expect(toPlanWrite({ ...message, cells: [{ cell_type: 'code', source: 3 }] })).toBeNull();
    expect(toPlanWrite({ ...message, cells: 'no' })).toBeNull();
    expect(toPlanWrite({ ...message, cell_id: '' })).toBeNull();
  });
});

// -- the sidebar model ------------------------------------------------------------------------

function requestCell(extra: Partial<IPlainCell> = {}): IPlainCell {
  return {
    id: 'req',
    cell_type: 'code',
    source: '%%codeflow --steps\nanalyse the data',
    metadata: {},
    outputs: [],
    ...extra
  };
}

/** A model over the notebook's cells as the tracker gives them. */
function modelOf(nb: FakeNotebook): CodeflowModel {
  const model = new CodeflowModel();
  model.sync(snapshotCells(plainCells(nb.model)));
  return model;
}

function planOf(model: CodeflowModel): IPlanView {
  const plan = model.entry('req')?.plan;
  expect(plan).toBeTruthy();
  return plan!;
}

/** A plan record as `plan_finished` carries it (`PlanRecord.to_dict()`). */
function planRecord(states: Array<'ok' | 'failed' | 'not_run'>, attempts: number[]): IPlanRecord {
  return {
    request: 'analyse the data',
    model: 'm',
    success: states.every(s => s === 'ok'),
    run_id: 'p1',
    stop_reason: states.every(s => s === 'ok') ? 'success' : 'step_failed',
    error: null,
    metrics: { total_s: 2.5, input_tokens: 300, output_tokens: 60 },
    steps: states.map((state, i) => ({
      number: i + 1,
      title: THREE[i].title,
      state,
      record:
        state === 'not_run'
          ? null
          : {
              success: state === 'ok',
              attempts: Array.from({ length: attempts[i] }, (_, j) => ({
                number: j + 1,
                kind: j === 0 ? 'plan' : 'fix',
                success: state === 'ok' && j === attempts[i] - 1,
                error:
                  state === 'ok' && j === attempts[i] - 1
                    ? null
                    : { category: 'runtime', ename: 'NameError', evalue: 'x' }
              }))
            }
    }))
  };
}

describe('the sidebar model of a plan', () => {
  it('follows a running plan: the steps, the running one, each step its own attempts', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([requestCell()]));
    model.markScheduled('req');
    model.applyEvent('req', { kind: 'plan_start', attempt: 0, data: { request: 'x' } });
    expect(model.entry('req')).toMatchObject({ state: 'running', phase: 'planning' });
    model.applyEvent('req', {
      kind: 'plan',
      attempt: 0,
      data: { steps: THREE.map((s, i) => ({ number: i + 1, title: s.title })) }
    });
    expect(planOf(model).steps.map(s => [s.title, s.state])).toEqual(
      THREE.map(s => [s.title, 'waiting'])
    );
    model.applyEvent('req', {
      kind: 'step',
      attempt: 1,
      data: { state: 'running', title: 'Load' }
    });
    // The step's own run starts: it is not a new run of the request.
    model.applyEvent('req', { kind: 'start', attempt: 0, data: { step: 1 } });
    model.applyEvent('req', { kind: 'executing', attempt: 1, data: { step: 1 } });
    expect(planOf(model).running).toBe(1);
    expect(model.entry('req')?.phase).toBe(`step 1 of ${THREE.length}: executing`);
    model.applyEvent('req', {
      kind: 'attempt',
      attempt: 1,
      data: { step: 1, attempt: { number: 1, kind: 'plan', success: true } }
    });
    model.applyEvent('req', { kind: 'step', attempt: 1, data: { state: 'ok', title: 'Load' } });
    model.applyEvent('req', {
      kind: 'step',
      attempt: 2,
      data: { state: 'running', title: 'Double' }
    });
    for (const [number, success] of [
      [1, false],
      [2, true]
    ] as const) {
      model.applyEvent('req', {
        kind: 'attempt',
        attempt: number,
        data: {
          step: 2,
          attempt: {
            number,
            success,
            error: success ? null : { category: 'runtime', ename: 'NameError' }
          }
        }
      });
    }
    const plan = planOf(model);
    expect(plan.running).toBe(2);
    expect(plan.steps.map(s => [s.state, s.attempts])).toEqual([
      ['ok', 1],
      ['running', 2],
      ['waiting', 0]
    ]);
    const entry = model.entry('req')!;
    expect(entry.state).toBe('running');
    expect(entry.attemptCount).toBe(3);
    // Step attempts are not the request's own (nothing to restore into a linked cell).
    expect(entry.attempts).toEqual([]);
    expect(entryMetaParts(entry)).toContain(`${THREE.length} steps`);
  });

  it('shows the finished plan from its record: states, attempts, totals', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([requestCell()]));
    model.applyEvent('req', { kind: 'plan_start', attempt: 0, data: {} });
    const record = planRecord(['ok', 'failed', 'not_run'], [1, 3, 0]);
    model.applyEvent('req', { kind: 'plan_finished', attempt: 0, data: { plan: record } });
    const entry = model.entry('req')!;
    expect(entry).toMatchObject({
      state: 'failed',
      attemptCount: 4,
      runId: 'p1',
      stopReason: 'step_failed',
      seconds: 2.5
    });
    expect(entry.plan?.running).toBe(0);
    expect(entry.plan?.steps.map(s => [s.number, s.state, s.attempts])).toEqual([
      [1, 'ok', 1],
      [2, 'failed', 3],
      [3, 'not_run', 0]
    ]);
    expect(entry.plan?.steps[1].lastError).toEqual({
      category: 'runtime',
      ename: 'NameError',
      evalue: 'x'
    });
    expect(entryMetaParts(entry)).toContain('stopped at step 2');
  });

  it('reads a saved plan from the metadata, each step linked to its code cell', () => {
    const nb = notebook();
    const steps: IStepSpec[] = THREE.map((s, i) => ({
      ...s,
      state: i === 2 ? 'not_run' : 'ok'
    }));
    applyPlan(nb.model, planWrite('p1', steps));
    const model = modelOf(nb);
    // Only the request is an entry; its step cells are not requests.
    expect(model.entries.map(e => e.cellId)).toEqual(['req']);
    const codeIds = nb.list.filter(c => meta(c)?.role === 'code').map(c => c.id);
    expect(planOf(model).steps.map(s => [s.title, s.state, s.cellId])).toEqual(
      steps.map((s, i) => [s.title, s.state, codeIds[i]])
    );
    expect(model.entry('req')?.state).toBe('failed');
  });

  it('prefers the plan over the record an earlier plain run left in the outputs', () => {
    const record = { success: true, run_id: 'old', attempts: [{ number: 1, success: true }] };
    const cell = requestCell({
      metadata: {
        codeflow: recordedRequestMetadata(planWrite('p1', THREE).request_metadata, null)
      },
      outputs: [
        {
          output_type: 'display_data',
          data: { 'application/vnd.codeflow.run+json': record },
          metadata: {}
        }
      ]
    });
    const model = new CodeflowModel();
    model.sync(snapshotCells([cell]));
    expect(model.entry('req')?.runId).toBe('p1');
    expect(planOf(model).steps).toHaveLength(THREE.length);
  });

  it('has no plan for a plain request', () => {
    const model = new CodeflowModel();
    model.sync(snapshotCells([requestCell({ source: '%%codeflow\nprint x' })]));
    model.markScheduled('req');
    model.applyEvent('req', { kind: 'start', attempt: 0, data: {} });
    model.applyEvent('req', {
      kind: 'attempt',
      attempt: 1,
      data: { attempt: { number: 1, success: true } }
    });
    expect(model.entry('req')?.plan).toBeNull();
    expect(model.entry('req')?.attemptCount).toBe(1);
  });
});
