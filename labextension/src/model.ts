/**
 * The sidebar's model: one per notebook, the state of each `%%codeflow` request cell.
 *
 * It merges three sources that arrive at different times: the cell metadata saved in the
 * notebook (survives reloads), the run record in the cell's outputs (full history), and live
 * comm events while a cell runs (nothing is saved yet). It has no JupyterLab dependency so
 * its rules are unit tested on plain data.
 */

import { ISignal, Signal } from '@lumino/signaling';

import {
  IAttemptRecord,
  IAttemptSummary,
  ICodeMetadata,
  IFlowEvent,
  IPlanRecord,
  IProgressState,
  IRequestMetadata,
  IRunRecord,
  IStepSummary,
  METADATA_KEY,
  RECORD_MIME,
  REQUEST_METADATA_KEYS,
  ReviewState
} from './tokens';
import { writtenHash } from './trust';

export type RequestState =
  'idle' | 'running' | 'succeeded' | 'failed' | 'interrupted' | 'awaiting-review' | 'discarded';

/** The words a state is shown with (the state itself is a CSS-friendly token). */
export function stateLabel(state: RequestState): string {
  return state === 'awaiting-review' ? 'awaiting review' : state;
}

/**
 * Where one step of a `--steps` plan stands: `waiting` until the run reaches it (live only),
 * then the kernel's `running`, `ok`, `failed` or `not_run` (after a step that failed).
 */
export type StepState = 'waiting' | 'running' | 'ok' | 'failed' | 'not_run';

/** The words a step state is shown with. */
export function stepStateLabel(state: StepState): string {
  return state === 'not_run' ? 'not run' : state;
}

function toStepState(value: unknown): StepState {
  return value === 'running' || value === 'ok' || value === 'failed' || value === 'waiting'
    ? value
    : 'not_run';
}

/** One line of a request's plan in the sidebar. */
export interface IStepView {
  number: number;
  title: string;
  state: StepState;
  /** Attempts the step's run made (0: it did not run, or has not yet). */
  attempts: number;
  /** The last error of its run (a failed step's reason, or what a fix repaired). */
  lastError: IErrorSummary | null;
  /** The step's code cell in the notebook (null: not written yet, or deleted). */
  cellId: string | null;
}

/** A `--steps` request's plan as the sidebar shows it. */
export interface IPlanView {
  steps: IStepView[];
  /** The number of the step running now (0: none). */
  running: number;
}

/** An undo asked from the sidebar: under way, or the kernel's answer. */
export interface IUndoStatus {
  busy: boolean;
  ok: boolean;
  message: string;
}

/** A notebook cell as plain data (what `ICellModel` gives, or an nbformat cell). */
export interface IPlainCell {
  id: string;
  cell_type: string;
  source: string;
  metadata: Record<string, unknown>;
  outputs?: Array<Record<string, unknown>>;
}

/** What the model needs to know about one request cell. */
export interface ICellSnapshot {
  id: string;
  source: string;
  metadata: IRequestMetadata | null;
  record: IRunRecord | null;
  linkedCellId: string | null;
  /** The code cells of the request's plan by step number (`codeflow.plan_of` names it). */
  stepCells?: Record<number, string>;
}

export interface IAttemptView {
  number: number;
  kind: string;
  code: string;
  success: boolean;
  category: string;
  ename: string;
  evalue: string;
  traceback: string;
  explanation: string;
  generationSeconds: number;
  executionSeconds: number;
  inputTokens: number;
  outputTokens: number;
}

export interface IErrorSummary {
  category: string;
  ename: string;
  evalue: string;
}

export interface IRequestEntry {
  cellId: string;
  /** The request text (the cell body below the magic line). */
  request: string;
  /** First non-empty line of the request, for one-line display. */
  title: string;
  state: RequestState;
  /** What a running request is doing now (`generating`, `executing`...). */
  phase: string;
  attempts: IAttemptView[];
  attemptCount: number;
  lastError: IErrorSummary | null;
  seconds: number;
  inputTokens: number;
  outputTokens: number;
  runId: string;
  model: string;
  stopReason: string;
  /** Why a run ended without a result when the model could not be asked (empty otherwise). */
  cause: string;
  linkedCellId: string | null;
  /** The review state saved in the request metadata (null: the run was not reviewed). */
  review: ReviewState | null;
  /** The last run was undone (saved in the request metadata). */
  undone: boolean;
  /** The undo asked in this session, if any (its answer is not saved). */
  undo: IUndoStatus | null;
  /** A `--steps` request's plan (live while it runs, then from its record or metadata). */
  plan: IPlanView | null;
}

/** A step of a plan being run, as its events describe it. */
interface ILiveStep {
  number: number;
  title: string;
  state: StepState;
  attempts: Map<number, IAttemptView>;
}

/** A plan as the live events build it; `record` once `plan_finished` came. */
interface ILivePlan {
  steps: ILiveStep[];
  running: number;
  record: IPlanRecord | null;
}

interface ILiveState {
  running: boolean;
  phase: string;
  attempts: Map<number, IAttemptView>;
  record: IRunRecord | null;
  /** A `--steps` run: its plan (the run's own attempts stay empty; each step has its own). */
  plan?: ILivePlan;
  /** The run was interrupted: the entry shows the run before it (`previous`). */
  interrupted?: boolean;
  previous?: IRunRecord | null;
}

function asObject(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/** True when the source starts with the `%%codeflow` magic line (not `%%codeflow?`). */
export function isMagicSource(source: string): boolean {
  return /^%%codeflow(\s|$)/.test(source.trimStart());
}

/**
 * The kernel refused the cell before anything ran (a bad option): IPython prints a
 * `UsageError: ...` line on stderr (or an error output says so), and there is no record.
 */
function refused(cell: IPlainCell): boolean {
  let error = false;
  for (const output of cell.outputs ?? []) {
    if (output.output_type === 'error' && output.ename === 'UsageError') {
      error = true;
    }
    if (output.output_type === 'stream' && output.name === 'stderr') {
      const text = Array.isArray(output.text) ? output.text.join('') : str(output.text);
      if (text.startsWith('UsageError: ')) {
        error = true;
      }
    }
    const data = asObject(output.data);
    if (data && RECORD_MIME in data) {
      return false;
    }
  }
  return error;
}

/**
 * True for a cell that holds a real codeflow request: the magic line with a request below
 * it, or a request that ran before (its metadata). Help (`%%codeflow?`), an empty body and a
 * cell the kernel refused for a bad option are not requests.
 */
export function isRequestCell(cell: IPlainCell): boolean {
  if (cell.cell_type !== 'code') {
    return false;
  }
  const meta = asObject(cell.metadata[METADATA_KEY]);
  const ran = meta !== null && typeof meta.request === 'string' && !('generated_from' in meta);
  if (ran) {
    return true;
  }
  return isMagicSource(cell.source) && requestText(cell.source) !== '' && !refused(cell);
}

/** The last run record among a cell's outputs, if any. */
export function recordFromOutputs(
  outputs: Array<Record<string, unknown>> | undefined
): IRunRecord | null {
  let found: IRunRecord | null = null;
  for (const output of outputs ?? []) {
    const data = asObject(output.data);
    if (!data || !(RECORD_MIME in data)) {
      continue;
    }
    let value = data[RECORD_MIME];
    if (typeof value === 'string') {
      try {
        value = JSON.parse(value);
      } catch {
        continue;
      }
    }
    const record = asObject(value);
    if (record) {
      found = record as IRunRecord;
    }
  }
  return found;
}

/** Request cells of a notebook, in order, each with the code cell generated from it. */
export function snapshotCells(cells: IPlainCell[]): ICellSnapshot[] {
  const linked = new Map<string, string>();
  const steps = new Map<string, Record<number, string>>();
  for (const cell of cells) {
    const meta = asObject(cell.metadata[METADATA_KEY]);
    const from = meta ? str(meta.generated_from) : '';
    if (from && !linked.has(from)) {
      linked.set(from, cell.id);
    }
    const planOf = meta ? str(meta.plan_of) : '';
    const step = meta ? num(meta.step) : 0;
    if (planOf && step && cell.cell_type === 'code') {
      const byStep = steps.get(planOf) ?? {};
      byStep[step] = byStep[step] ?? cell.id;
      steps.set(planOf, byStep);
    }
  }
  return cells.filter(isRequestCell).map(cell => {
    const meta = asObject(cell.metadata[METADATA_KEY]);
    return {
      id: cell.id,
      source: cell.source,
      metadata: meta as IRequestMetadata | null,
      record: recordFromOutputs(cell.outputs),
      linkedCellId: linked.get(cell.id) ?? null,
      stepCells: steps.get(cell.id) ?? {}
    };
  });
}

/** The request text: the cell body below the `%%codeflow` line. */
export function requestText(source: string): string {
  const trimmed = source.trimStart();
  if (!isMagicSource(trimmed)) {
    return source.trim();
  }
  const newline = trimmed.indexOf('\n');
  return newline < 0 ? '' : trimmed.slice(newline + 1).trim();
}

/** Normalise one attempt dict (from a record, an event or a metadata summary). */
export function toAttemptView(
  raw: IAttemptRecord | Record<string, unknown>,
  index = 0
): IAttemptView {
  const data = raw as Record<string, unknown>;
  const error = asObject(data.error);
  const nested = (key: string): string => str(error?.[key]) || str(data[key]);
  const success = data.success === true;
  return {
    number: num(data.number) || index + 1,
    kind: str(data.kind) || 'generate',
    code: str(data.code),
    success,
    category: nested('category') || str(data.error_category),
    ename: nested('ename') || (typeof data.error === 'string' ? data.error : ''),
    evalue: nested('evalue'),
    traceback: nested('traceback'),
    explanation: str(data.explanation),
    generationSeconds: num(data.generation_s),
    executionSeconds: num(data.execution_s),
    inputTokens: num(data.input_tokens),
    outputTokens: num(data.output_tokens)
  };
}

function lastError(attempts: IAttemptView[]): IErrorSummary | null {
  for (let i = attempts.length - 1; i >= 0; i--) {
    const a = attempts[i];
    if (!a.success && (a.ename || a.category)) {
      return { category: a.category, ename: a.ename, evalue: a.evalue };
    }
  }
  return null;
}

function sortAttempts(attempts: Iterable<IAttemptView>): IAttemptView[] {
  return [...attempts].sort((x, y) => x.number - y.number);
}

type Derived = Omit<
  IRequestEntry,
  'cellId' | 'request' | 'title' | 'linkedCellId' | 'review' | 'undone' | 'undo' | 'plan'
>;

function reviewOf(value: unknown): ReviewState | null {
  return value === 'pending' || value === 'approved' || value === 'discarded' ? value : null;
}

/**
 * The state of a finished run once review is taken into account: a run that stopped for
 * review is "awaiting review" until the user discards it (then "discarded"); the record says
 * so live (`stop_reason`), the metadata after a reload (`review`).
 */
function reviewedState(derived: Derived, review: ReviewState | null): RequestState {
  if (derived.state === 'running' || derived.state === 'interrupted') {
    return derived.state;
  }
  const stoppedForReview = derived.stopReason === 'awaiting_review';
  if (review === 'discarded' && (stoppedForReview || derived.stopReason === '')) {
    return 'discarded';
  }
  if (stoppedForReview || review === 'pending') {
    return 'awaiting-review';
  }
  return derived.state;
}

function fromAttempts(attempts: IAttemptView[], state: RequestState, phase = ''): Derived {
  let seconds = 0;
  let inputTokens = 0;
  let outputTokens = 0;
  for (const a of attempts) {
    seconds += a.generationSeconds + a.executionSeconds;
    inputTokens += a.inputTokens;
    outputTokens += a.outputTokens;
  }
  return {
    state,
    phase,
    attempts,
    attemptCount: attempts.length,
    lastError: lastError(attempts),
    seconds,
    inputTokens,
    outputTokens,
    runId: '',
    model: '',
    stopReason: '',
    cause: ''
  };
}

function fromRecord(record: IRunRecord): Derived {
  const attempts = sortAttempts((record.attempts ?? []).map((a, i) => toAttemptView(a, i)));
  const base = fromAttempts(attempts, record.success ? 'succeeded' : 'failed');
  const metrics = record.metrics ?? {};
  return {
    ...base,
    seconds: num(metrics.total_s) || base.seconds,
    inputTokens: num(metrics.input_tokens) || base.inputTokens,
    outputTokens: num(metrics.output_tokens) || base.outputTokens,
    runId: str(record.run_id),
    model: str(record.model),
    stopReason: str(record.stop_reason),
    cause: str(record.error)
  };
}

function fromMetadata(meta: IRequestMetadata): Derived {
  const history: IAttemptSummary[] = Array.isArray(meta.history) ? meta.history : [];
  const attempts = sortAttempts(
    history.map((h, i) => toAttemptView((asObject(h) ?? {}) as Record<string, unknown>, i))
  );
  const state: RequestState =
    meta.success === true ? 'succeeded' : meta.success === false ? 'failed' : 'idle';
  const base = fromAttempts(attempts, state);
  return {
    ...base,
    attemptCount: Math.max(num(meta.attempts), attempts.length),
    runId: str(meta.run_id),
    model: str(meta.model),
    stopReason: str(meta.stop_reason),
    cause: str(meta.error)
  };
}

/** A finished plan's figures for its request: all steps' attempts, the plan's totals. */
function fromPlanRecord(plan: IPlanRecord): Derived {
  let count = 0;
  for (const step of plan.steps ?? []) {
    count += step.record?.attempts?.length ?? 0;
  }
  const metrics = plan.metrics ?? {};
  return {
    ...fromAttempts([], plan.success ? 'succeeded' : 'failed'),
    attemptCount: count,
    seconds: num(metrics.total_s),
    inputTokens: num(metrics.input_tokens),
    outputTokens: num(metrics.output_tokens),
    runId: str(plan.run_id),
    model: str(plan.model),
    stopReason: str(plan.stop_reason),
    cause: str(plan.error)
  };
}

type StepFacts = Omit<IStepView, 'cellId'>;

function stepsOfRecord(plan: IPlanRecord): StepFacts[] {
  return (plan.steps ?? []).map((step, i) => {
    const attempts = (step.record?.attempts ?? []).map((a, j) => toAttemptView(a, j));
    return {
      number: num(step.number) || i + 1,
      title: str(step.title),
      state: toStepState(step.state),
      attempts: attempts.length,
      lastError: lastError(attempts)
    };
  });
}

function stepsOfMetadata(steps: IStepSummary[]): StepFacts[] {
  return steps.map((raw, i) => {
    const step = (asObject(raw) ?? {}) as IStepSummary;
    const history = Array.isArray(step.history) ? step.history : [];
    const attempts = history.map((h, j) =>
      toAttemptView((asObject(h) ?? {}) as Record<string, unknown>, j)
    );
    return {
      number: num(step.number) || i + 1,
      title: str(step.title),
      state: toStepState(step.state),
      attempts: Math.max(num(step.attempts), attempts.length),
      lastError: lastError(attempts)
    };
  });
}

function stepsOfLive(plan: ILivePlan): StepFacts[] {
  return plan.steps.map(step => {
    const attempts = sortAttempts(step.attempts.values());
    return {
      number: step.number,
      title: step.title,
      state: step.state,
      attempts: attempts.length,
      lastError: lastError(attempts)
    };
  });
}

/** True for the metadata of a `--steps` request (its last run was a plan). */
function isPlanMetadata(meta: IRequestMetadata | null): meta is IRequestMetadata & {
  steps: IStepSummary[];
} {
  return meta !== null && Array.isArray(meta.steps);
}

/** The fields of the kernel's progress state the sidebar words a phase from. */
type PhaseFacts = Pick<IProgressState, 'last_kind' | 'package' | 'retry'>;

/**
 * The phase facts of an event: the kernel's reduced state when it sent one, else (a kernel
 * that sends none) the same fields read from the event itself.
 */
function phaseFacts(
  event: IFlowEvent,
  data: Record<string, unknown>,
  state?: IProgressState
): PhaseFacts {
  if (state && typeof state.last_kind === 'string') {
    return state;
  }
  return {
    last_kind: event.kind,
    package: event.kind === 'install' ? (data.package as string) : '',
    retry: event.kind === 'generating' ? str(data.retry) : ''
  };
}

/** What the sidebar shows for a running step: `generating`, `installing pandas`... */
function phaseOf(facts: PhaseFacts): string {
  const kind = facts.last_kind;
  if (kind === 'install' && typeof facts.package === 'string') {
    return `installing ${facts.package}`;
  }
  if (kind === 'generating' && typeof facts.retry === 'string' && facts.retry) {
    // An outage: the request is being sent again; say why it takes long.
    return `generating again: ${facts.retry}`;
  }
  return PHASES[kind] ?? kind;
}

/** The events of a plan itself (the steps' own runs carry `data.step` instead). */
const PLAN_KINDS = new Set(['plan_start', 'plan', 'step']);

/**
 * The request cell's metadata for a run that wrote no code (it failed, or write-back is
 * off): the kernel's keys (plus the failure's cause when there is one), keeping the link to
 * the code cell an earlier run wrote.
 */
export function recordedRequestMetadata(
  fromKernel: Record<string, unknown>,
  previous: Record<string, unknown> | null | undefined
): IRequestMetadata {
  const out = writeBackRequestMetadata(fromKernel, str(previous?.linked_cell_id) || null);
  if (typeof fromKernel.error === 'string' && fromKernel.error) {
    out.error = fromKernel.error;
    out.stop_reason = str(fromKernel.stop_reason);
  }
  return out;
}

/**
 * The request cell's metadata after a write-back: the kernel's keys (and no others), with
 * the id of the cell now holding the code, which only the frontend knows for a new cell.
 */
export function writeBackRequestMetadata(
  fromKernel: Record<string, unknown>,
  linkedCellId: string | null
): IRequestMetadata {
  const out: Record<string, unknown> = {};
  for (const key of REQUEST_METADATA_KEYS) {
    if (key in fromKernel) {
      out[key] = fromKernel[key];
    }
  }
  out.linked_cell_id = linkedCellId;
  return out as IRequestMetadata;
}

/** A written-back code cell's metadata: the link to its request and the run it came from. */
export function codeCellMetadata(
  requestId: string,
  fromKernel: Record<string, unknown>
): ICodeMetadata {
  return { generated_from: requestId, run_id: str(fromKernel.run_id) };
}

/**
 * The metadata of a code cell this extension writes `code` into: the link, the hash of the
 * code (computed here from what is actually written, so a later edit is always detectable)
 * and `review` (`"pending"` for code awaiting review, else null).
 */
export function writtenCodeMetadata(
  requestId: string,
  fromKernel: Record<string, unknown>,
  code: string
): ICodeMetadata {
  // The kernel's shape (`notebook.code_metadata`): all four keys, review only ever pending.
  return {
    ...codeCellMetadata(requestId, fromKernel),
    written_hash: writtenHash(code),
    review: fromKernel.review === 'pending' ? 'pending' : null
  };
}

/** Words shown for a running request, by event kind. */
const PHASES: Record<string, string> = {
  start: 'starting',
  generating: 'generating',
  delta: 'generating',
  code: 'code ready',
  scan: 'scanning',
  executing: 'executing',
  output: 'executing',
  install: 'installing',
  attempt: 'checking'
};

export class CodeflowModel {
  /** Emitted whenever the entries may have changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get entries(): readonly IRequestEntry[] {
    return this._entries;
  }

  entry(cellId: string): IRequestEntry | undefined {
    return this._entries.find(e => e.cellId === cellId);
  }

  /** Rebuild from the notebook's current cells (call on any cell, metadata or output change). */
  sync(snapshots: ICellSnapshot[]): void {
    this._snapshots = snapshots;
    this._rebuild();
  }

  /** An undo was asked (`busy`) or answered; null forgets it. Not saved in the notebook. */
  setUndo(cellId: string, status: IUndoStatus | null): void {
    if (status) {
      this._undo.set(cellId, status);
    } else {
      this._undo.delete(cellId);
    }
    this._rebuild();
  }

  /** The user queued a request cell for execution. */
  markScheduled(cellId: string): void {
    // A new run: the answer of an earlier undo no longer describes the entry.
    this._undo.delete(cellId);
    this._live.set(cellId, {
      running: true,
      phase: 'queued',
      attempts: new Map(),
      record: null,
      previous: this._previousRecord(cellId)
    });
    this._rebuild();
  }

  /** The record an interrupted run falls back to: the last one this session saw. */
  private _previousRecord(cellId: string): IRunRecord | null {
    const live = this._live.get(cellId);
    if (live) {
      return live.interrupted ? (live.previous ?? null) : (live.record ?? live.previous ?? null);
    }
    return this._snapshots.find(s => s.id === cellId)?.record ?? null;
  }

  /** A request cell's execution ended (whatever the outcome). */
  markExecuted(cellId: string): void {
    const live = this._live.get(cellId);
    if (live && live.running) {
      live.running = false;
      live.phase = '';
      this._rebuild();
    }
  }

  /**
   * A live progress event from the kernel, with the progress state it led to (kernels that
   * send one). The phase is worded from the state; attempts and records come from the event,
   * which carries them whole.
   */
  applyEvent(cellId: string, event: IFlowEvent, state?: IProgressState): void {
    const data = asObject(event.data) ?? {};
    // The events of a plan step's own run carry the step's number.
    const step = num(data.step);
    if (event.kind === 'interrupted') {
      // Nothing came of this run: show it as interrupted, with the history of the one before.
      const previous = this._previousRecord(cellId);
      this._live.set(cellId, {
        running: false,
        phase: '',
        attempts: new Map(),
        record: null,
        interrupted: true,
        previous
      });
      this._rebuild();
      return;
    }
    if (event.kind === 'plan_finished') {
      const plan = asObject(data.plan);
      if (plan) {
        this.applyPlanRecord(cellId, plan as IPlanRecord);
      }
      return;
    }
    if (event.kind === 'finished' && !step) {
      const record = (asObject(data.record) ?? data) as IRunRecord;
      this.applyRecord(cellId, record);
      return;
    }
    let live = this._live.get(cellId);
    // A step's `start` is a run inside the plan, not a new run of the request.
    const starts = (event.kind === 'start' && !step) || event.kind === 'plan_start';
    if (!live || !live.running || (starts && live.phase !== 'queued')) {
      // A run we had not seen start (or a new one): begin a fresh live state.
      const previous = this._previousRecord(cellId);
      live = { running: true, phase: '', attempts: new Map(), record: null, previous };
      this._undo.delete(cellId);
      this._live.set(cellId, live);
    }
    if (step || PLAN_KINDS.has(event.kind)) {
      live.plan = live.plan ?? { steps: [], running: 0, record: null };
      if (this._planEvent(live, live.plan, event, data, step, state)) {
        this._rebuild();
      }
      return;
    }
    const phase = phaseOf(phaseFacts(event, data, state));
    if (event.kind === 'attempt') {
      const attempt = toAttemptView(asObject(data.attempt) ?? data, live.attempts.size);
      live.attempts.set(attempt.number, attempt);
    } else if (live.phase === phase) {
      return;
    }
    live.phase = phase;
    this._rebuild();
  }

  /** The outcome of a `--steps` run (`plan_finished`): the plan and its totals. */
  applyPlanRecord(cellId: string, plan: IPlanRecord): void {
    this._live.set(cellId, {
      running: false,
      phase: '',
      attempts: new Map(),
      record: null,
      plan: { steps: [], running: 0, record: plan }
    });
    this._rebuild();
  }

  /**
   * One event of a running plan: the steps planned, a step's state, or progress of a step's
   * own run (its attempts count for that step only). True when the view changed.
   */
  private _planEvent(
    live: ILiveState,
    plan: ILivePlan,
    event: IFlowEvent,
    data: Record<string, unknown>,
    step: number,
    state?: IProgressState
  ): boolean {
    if (event.kind === 'plan_start') {
      live.phase = 'planning';
      return true;
    }
    if (event.kind === 'plan') {
      const planned = Array.isArray(data.steps) ? data.steps : [];
      plan.steps = planned.map((raw, i) => {
        const item = asObject(raw) ?? {};
        return {
          number: num(item.number) || i + 1,
          title: str(item.title),
          state: 'waiting' as StepState,
          attempts: new Map<number, IAttemptView>()
        };
      });
      live.phase = `${plan.steps.length} step${plan.steps.length === 1 ? '' : 's'} planned`;
      return true;
    }
    // `step` events number the step in `attempt` (the plan's own emit), a step's run in data.
    const number = event.kind === 'step' ? num(event.attempt) || step : step;
    if (!number) {
      return false;
    }
    let current = plan.steps.find(s => s.number === number);
    if (!current) {
      // The sidebar came up after `plan` (a reload mid-run): learn the step as it shows up.
      current = { number, title: '', state: 'waiting', attempts: new Map() };
      plan.steps.push(current);
      plan.steps.sort((a, b) => a.number - b.number);
    }
    const of = `step ${number} of ${Math.max(plan.steps.length, number)}`;
    if (event.kind === 'step') {
      current.state = toStepState(data.state);
      current.title = str(data.title) || current.title;
      if (current.state === 'running') {
        plan.running = number;
        live.phase = of;
      } else if (plan.running === number) {
        plan.running = 0;
      }
      return true;
    }
    const phase = `${of}: ${phaseOf(phaseFacts(event, data, state))}`;
    if (event.kind === 'attempt') {
      const attempt = toAttemptView(asObject(data.attempt) ?? data, current.attempts.size);
      current.attempts.set(attempt.number, attempt);
    } else if (live.phase === phase) {
      return false;
    }
    live.phase = phase;
    return true;
  }

  /** The full record of a finished run, sent by the kernel. */
  applyRecord(cellId: string, record: IRunRecord): void {
    this._live.set(cellId, { running: false, phase: '', attempts: new Map(), record });
    this._rebuild();
  }

  private _derive(snapshot: ICellSnapshot): IRequestEntry {
    const live = this._live.get(snapshot.id);
    const planMeta = isPlanMetadata(snapshot.metadata) ? snapshot.metadata : null;
    let derived: Derived;
    let steps: StepFacts[] | null = null;
    let runningStep = 0;
    if (live?.running && live.plan) {
      const facts = stepsOfLive(live.plan);
      // The figures of every step's attempts, but no request-level attempts to restore.
      const all = live.plan.steps.flatMap(step => sortAttempts(step.attempts.values()));
      derived = { ...fromAttempts(all, 'running', live.phase), attempts: [] };
      steps = facts;
      runningStep = live.plan.running;
    } else if (live?.running) {
      derived = fromAttempts(sortAttempts(live.attempts.values()), 'running', live.phase);
    } else if (live?.interrupted) {
      const before = live.previous
        ? fromRecord(live.previous)
        : snapshot.metadata
          ? fromMetadata(snapshot.metadata)
          : fromAttempts([], 'idle');
      derived = { ...before, state: 'interrupted' };
      steps = live.previous || !planMeta ? null : stepsOfMetadata(planMeta.steps);
    } else if (live?.record) {
      derived = fromRecord(live.record);
    } else if (live?.plan?.record) {
      derived = fromPlanRecord(live.plan.record);
      steps = stepsOfRecord(live.plan.record);
    } else if (snapshot.record && !planMeta) {
      // (A plan's metadata is newer than the record an earlier plain run left in the output.)
      derived = fromRecord(snapshot.record);
    } else if (live && live.attempts.size > 0) {
      const attempts = sortAttempts(live.attempts.values());
      derived = fromAttempts(
        attempts,
        attempts[attempts.length - 1].success ? 'succeeded' : 'failed'
      );
    } else if (snapshot.metadata) {
      derived = fromMetadata(snapshot.metadata);
      steps = planMeta ? stepsOfMetadata(planMeta.steps) : null;
    } else {
      derived = fromAttempts([], 'idle');
    }
    const stepCells = snapshot.stepCells ?? {};
    const plan: IPlanView | null = steps
      ? {
          steps: steps.map(step => ({ ...step, cellId: stepCells[step.number] ?? null })),
          running: runningStep
        }
      : null;
    // A replaced request's source is code: its words are kept in the metadata.
    const isMagic = isMagicSource(snapshot.source);
    const request =
      (isMagic ? requestText(snapshot.source) : '') ||
      str(snapshot.metadata?.request) ||
      str(snapshot.record?.request) ||
      requestText(snapshot.source);
    const title =
      request
        .split('\n')
        .find(line => line.trim() !== '')
        ?.trim() ?? '';
    const metaLinked = str(snapshot.metadata?.linked_cell_id);
    const review = reviewOf(snapshot.metadata?.review);
    const running = derived.state === 'running';
    return {
      ...derived,
      state: reviewedState(derived, review),
      cellId: snapshot.id,
      request,
      title,
      linkedCellId: snapshot.linkedCellId ?? (metaLinked || null),
      review,
      undone: !running && snapshot.metadata?.undone === true,
      undo: running ? null : (this._undo.get(snapshot.id) ?? null),
      plan
    };
  }

  private _rebuild(): void {
    this._entries = this._snapshots.map(s => this._derive(s));
    this._changed.emit();
  }

  private _snapshots: ICellSnapshot[] = [];
  private _entries: IRequestEntry[] = [];
  private _live = new Map<string, ILiveState>();
  private _undo = new Map<string, IUndoStatus>();
  private _changed = new Signal<this, void>(this);
}
