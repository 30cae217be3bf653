/**
 * Shapes shared by the sidebar, the renderer and the kernel link.
 *
 * They mirror `codeflow_magic.models.RunRecord.to_dict()` so that the frontend reads exactly
 * what the kernel writes; every field is optional on input because notebooks saved by older
 * versions (or edited by hand) may lack some of them.
 */

import type { NotebookPanel } from '@jupyterlab/notebook';
import { Token } from '@lumino/coreutils';
import type { ISignal } from '@lumino/signaling';

import type { CodeflowModel } from './model';

/** The mime type a run record travels under in notebook outputs. */
export const RECORD_MIME = 'application/vnd.codeflow.run+json';

/** The comm target both sides use. */
export const COMM_TARGET = 'codeflow';

/** The cell metadata key holding codeflow state. */
export const METADATA_KEY = 'codeflow';

/** The settings plugin id (`<package name>:<schema file>`). */
export const PLUGIN_ID = 'codeflow-labextension:plugin';

export interface IAttemptErrorRecord {
  category?: string;
  ename?: string;
  evalue?: string;
  traceback?: string;
  line?: number | null;
  source_line?: string | null;
  root_cause?: string;
}

export interface IAttemptRecord {
  number: number;
  kind?: string;
  language?: string;
  code?: string;
  success?: boolean;
  outputs?: unknown[];
  error?: IAttemptErrorRecord | null;
  explanation?: string;
  generation_s?: number;
  execution_s?: number;
  input_tokens?: number;
  output_tokens?: number;
  cached?: boolean;
  score?: number | null;
  kept?: boolean;
}

export interface IMetricsRecord {
  generation_s?: number;
  execution_s?: number;
  improvement_s?: number;
  total_s?: number;
  input_tokens?: number;
  output_tokens?: number;
  llm_calls?: number;
  cache_hits?: number;
}

export interface IRunRecord {
  request?: string;
  language?: string;
  model?: string;
  success?: boolean;
  final_code?: string;
  outputs?: unknown[];
  attempts?: IAttemptRecord[];
  metrics?: IMetricsRecord;
  run_id?: string;
  stop_reason?: string;
  backend?: string;
  check?: string | null;
  focus?: string;
  /** Why the run ended without a result when the model could not be asked. */
  error?: string | null;
}

/** One attempt as the request cell's metadata summarises it (no code, no timings). */
export interface IAttemptSummary {
  number?: number;
  kind?: string;
  success?: boolean;
  category?: string | null;
  ename?: string | null;
  evalue?: string | null;
}

/**
 * What the request cell's `codeflow` metadata holds; the kernel (`notebook.request_metadata`)
 * writes exactly these keys.
 */
export interface IRequestMetadata {
  request?: string;
  model?: string;
  success?: boolean;
  /** How many attempts the last run made. */
  attempts?: number;
  /** One summary per attempt, in order. */
  history?: IAttemptSummary[];
  run_id?: string;
  cache_keys?: string[];
  /** The cell holding the code: the linked cell below, or the request itself after replace. */
  linked_cell_id?: string | null;
  /** Only on a run the model could not answer: why (the provider's message)... */
  error?: string;
  /** ...and the kind (`provider_unavailable` or `provider_error`). */
  stop_reason?: string;
  /** A reviewed run: its code waits for approval, was approved or discarded (null: no review). */
  review?: ReviewState | null;
  /** The last run was undone (kernel bindings and linked cell put back). */
  undone?: boolean;
  /** A `--steps` request: one summary per step of its plan (null otherwise). */
  steps?: IStepSummary[] | null;
}

/** One step of a `--steps` plan as the request cell's metadata summarises it (no code). */
export interface IStepSummary {
  number?: number;
  title?: string;
  state?: string;
  attempts?: number;
  history?: IAttemptSummary[];
}

/** One step of a plan record (`StepRecord.to_dict()`). */
export interface IStepRecord {
  number?: number;
  title?: string;
  prose?: string;
  code?: string;
  language?: string;
  /** `ok`, `failed` or `not_run`. */
  state?: string;
  /** The step's own run (null: it did not run). */
  record?: IRunRecord | null;
}

/** A `--steps` request's outcome (`PlanRecord.to_dict()`), sent with `plan_finished`. */
export interface IPlanRecord {
  request?: string;
  model?: string;
  success?: boolean;
  steps?: IStepRecord[];
  metrics?: IMetricsRecord;
  run_id?: string;
  stop_reason?: string;
  error?: string | null;
}

/** What a step cell's `codeflow` metadata holds (`notebook.plan_cells`). */
export type IStepCellMetadata = {
  /** The id of the request cell whose plan the cell belongs to. */
  plan_of: string;
  step: number;
  role: 'markdown' | 'code';
  run_id: string;
  state: string;
  /** Code cells only: the hash of the code written, so a user edit is detectable. */
  written_hash?: string;
  history: IAttemptSummary[];
};

/** One cell of a plan write-back, in notebook order (markdown, then code, per step). */
export interface IPlanCell {
  cell_type: 'markdown' | 'code';
  source: string;
  /** Code cells: the nbformat outputs of the step's run. */
  outputs?: Array<Record<string, unknown>>;
  /** Code cells with outputs: the count of the execution they ran in (the kernel knows it). */
  execution_count?: number | null;
  metadata: Record<string, unknown>;
}

/** Where a reviewed run stands. */
export type ReviewState = 'pending' | 'approved' | 'discarded';

/** The request cell's metadata keys, in the kernel's order. */
export const REQUEST_METADATA_KEYS: ReadonlyArray<keyof IRequestMetadata> = [
  'request',
  'model',
  'success',
  'attempts',
  'history',
  'run_id',
  'cache_keys',
  'linked_cell_id',
  'review',
  'undone',
  'steps'
];

/** What a written-back code cell's `codeflow` metadata holds (a type: it is JSON as is). */
export type ICodeMetadata = {
  generated_from: string;
  run_id: string;
  /** `fnv1a32:` hash of exactly the source codeflow wrote: a different source is a user edit. */
  written_hash?: string;
  /** `pending` while the written code awaits review, else null. */
  review?: 'pending' | null;
};

/** A live progress event (`FlowEvent`) as the kernel sends it. */
export interface IFlowEvent {
  kind: string;
  attempt?: number;
  data?: Record<string, unknown>;
}

/**
 * The kernel's progress state after an event (`events.ProgressState`, built by the one pure
 * reducer the magic's display and the CLI also render). Sent along with each live event, so
 * the sidebar words the phase from the same state instead of reading the event's kind again.
 */
export interface IProgressState {
  /** What the run is busy with: starting, planning, generating, scanning, executing, installing. */
  activity: string;
  /** The kind of the last event. */
  last_kind: string;
  /** What the model was last asked for: generate, fix or improve. */
  purpose: string;
  /** Why the current request to the model went out again (empty: it did not). */
  retry: string;
  /** The package being installed. */
  package: string;
  attempt: number;
  max_attempts: number;
  last_error: { category: string; ename: string; evalue: string } | null;
  last_attempt_ok: boolean | null;
  /** Characters of the answer received since the model was last asked. */
  streamed_chars: number;
  /** The end of the streamed answer (or of the code). */
  tail: string;
  /** The plan step whose run sent the event (0: the request's own run). */
  in_step: number;
  steps: Array<{ number: number; title: string; state: string }>;
  /** The step that last started running (0: none yet). */
  step: number;
  warnings: string[];
  finished: boolean;
  success: boolean | null;
  interrupted: boolean;
}

/** The user settings sent to the kernel. */
export interface ICodeflowSettings {
  model: string;
  maxAttempts: number;
  backend: string;
  writeback: boolean;
}

/** Messages the kernel sends over the comm. */
export type KernelMessage =
  | { type: 'event'; cell_id: string | null; event: IFlowEvent; state?: IProgressState }
  | { type: 'record'; cell_id: string | null; record: IRunRecord }
  | {
      type: 'writeback';
      cell_id: string;
      code: string;
      request_metadata: Record<string, unknown>;
      code_metadata: Record<string, unknown>;
      mode: 'below' | 'replace';
    }
  | { type: 'metadata'; cell_id: string; request_metadata: Record<string, unknown> }
  | {
      type: 'plan';
      cell_id: string;
      cells: IPlanCell[];
      request_metadata: Record<string, unknown>;
    }
  | {
      type: 'undone';
      cell_id: string;
      ok: boolean;
      restored: string[];
      kept: string[];
      message: string;
    };

/** Sent in `hello` so the kernel can tell which frontend it talks to. */
export const VERSION = '0.1.0';

/**
 * The codeflow model of each open notebook (live runs, records, review and undo state), for
 * other plugins: the sidebar is one view of it, not the only one possible.
 */
export interface ICodeflowTracker {
  /** The model of a tracked notebook panel (undefined: not a notebook codeflow follows). */
  modelFor(panel: NotebookPanel): CodeflowModel | undefined;
  /** The model of the notebook in focus (null: none). */
  readonly currentModel: CodeflowModel | null;
  /** Emitted when the notebook in focus changes, or when it closes. */
  readonly currentChanged: ISignal<ICodeflowTracker, CodeflowModel | null>;
}

/** The token the codeflow plugin provides its `ICodeflowTracker` under. */
export const ICodeflowTracker = new Token<ICodeflowTracker>(
  'codeflow-labextension:ICodeflowTracker',
  'The codeflow model of each open notebook.'
);
