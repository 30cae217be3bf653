/**
 * The rules that keep codeflow from destroying the user's work (issue 14), as plain data.
 *
 * - A written cell carries the hash of exactly what codeflow wrote (`written_hash`), so any
 *   later edit by the user is visible without keeping the old text around: the kernel, the
 *   headless runner and this extension all compute the same 32-bit FNV-1a over UTF-8.
 * - A write that would replace an edited cell is a question, never a default.
 * - Before each write into a linked cell, its previous state is stashed (in memory, per
 *   notebook) so that Discard and Undo can put it back.
 *
 * No JupyterLab dependency: the decisions are unit tested on plain values.
 */

/** The prefix naming the hash function, so the format can change without ambiguity. */
export const HASH_PREFIX = 'fnv1a32:';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * 32-bit FNV-1a of the UTF-8 bytes of `text`, as `fnv1a32:` + 8 lowercase hex digits.
 * Chosen because it is a dozen lines in every language the project touches (Python kernel,
 * TypeScript, the headless runner) and needs no crypto API; it detects edits, it does not
 * authenticate.
 */
export function writtenHash(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let hash = FNV_OFFSET;
  for (const byte of bytes) {
    hash ^= byte;
    // Math.imul keeps the multiplication in 32 bits (a float product would lose bits).
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return HASH_PREFIX + hash.toString(16).padStart(8, '0');
}

/**
 * True when a linked cell was changed by the user since codeflow wrote it. A cell without a
 * `written_hash` (written by an older version) counts as not edited: we cannot tell, and
 * refusing every legacy cell would make re-runs useless.
 */
export function isEdited(
  source: string,
  codeMetadata: Record<string, unknown> | null | undefined
): boolean {
  const expected = codeMetadata?.written_hash;
  if (typeof expected !== 'string' || !expected) {
    return false;
  }
  return writtenHash(source) !== expected;
}

/** What the user chose when a write would replace their edit. */
export type OverwriteChoice = 'replace' | 'keep' | 'insert';

/** Why a write happens (shown in the question). */
export type WriteReason = 'writeback' | 'restore' | 'approve' | 'undo' | 'discard';

/** Every choice: a write can replace, keep the user's code, or go below it. */
export const ALL_CHOICES: readonly OverwriteChoice[] = ['keep', 'replace', 'insert'];

/** Putting a cell back (Undo, Discard) can only replace the edit or leave it. */
export const PUT_BACK_CHOICES: readonly OverwriteChoice[] = ['keep', 'replace'];

/** What the question shows: the user's current code and the code that would replace it. */
export interface IOverwriteQuestion {
  requestId: string;
  linkedId: string;
  reason: WriteReason;
  current: string;
  /** The code that would replace it (empty when the cell would be deleted). */
  incoming: string;
  /** The answers offered. */
  choices: readonly OverwriteChoice[];
}

/** Asks the user (a JupyterLab dialog in the app, a stub in tests). */
export type AskOverwrite = (question: IOverwriteQuestion) => Promise<OverwriteChoice>;

/**
 * Whether writing `incoming` over a linked cell needs the user's word: only when the cell was
 * edited and the write would change more than trailing blank space (writing the text the user
 * has is no loss, e.g. approving the code just edited in review, which the kernel writes back
 * without its final newline).
 */
export function needsAsk(
  current: string,
  codeMetadata: Record<string, unknown> | null | undefined,
  incoming: string
): boolean {
  return current.trimEnd() !== incoming.trimEnd() && isEdited(current, codeMetadata);
}

/** A code cell's state as it was before a write (what Discard and Undo put back). */
export interface ICellState {
  source: string;
  outputs: Array<Record<string, unknown>>;
  /** The cell's `codeflow` metadata (null: it had none). */
  codeflow: Record<string, unknown> | null;
  executionCount: number | null;
}

/** What one write-back into the notebook changed, enough to reverse it. */
export interface IStashEntry {
  requestId: string;
  /** The cell the write-back wrote into (or created). */
  linkedId: string;
  /** The cell before the write; null when the write-back created it. */
  before: ICellState | null;
  /** "Insert below": the user's cell that lost its link, and its metadata before. */
  unlinked: { cellId: string; codeflow: Record<string, unknown> | null } | null;
  /** The code written (the pending code of a review). */
  written: string;
  /** Taken for a write of code awaiting review (its approval must not replace it). */
  review: boolean;
}

/**
 * The in-memory stash of one notebook, one entry per request cell: the state before the last
 * write-back. It is deliberately not saved in the notebook (old code and outputs would bloat
 * every file); after a reload Undo restores the kernel only.
 */
export class CellStash {
  get(requestId: string): IStashEntry | undefined {
    return this._entries.get(requestId);
  }

  /**
   * Record a write-back. The approval of a pending review keeps the stash of the review's
   * write (same cell): Undo then goes back to before the review, not to the pending code.
   */
  record(entry: IStashEntry, approval: boolean): void {
    const existing = this._entries.get(entry.requestId);
    if (approval && existing && existing.review && existing.linkedId === entry.linkedId) {
      this._entries.set(entry.requestId, { ...existing, written: entry.written, review: false });
      return;
    }
    this._entries.set(entry.requestId, entry);
  }

  delete(requestId: string): void {
    this._entries.delete(requestId);
  }

  private _entries = new Map<string, IStashEntry>();
}

/** `%codeflow undo`'s answer on the comm. */
export interface IUndoReply {
  cell_id: string;
  ok: boolean;
  /** Names put back to their values before the run. */
  restored: string[];
  /** Names the run added, removed again. */
  removed: string[];
  /** Names that could not be put back (over the snapshot budget, other types). */
  kept: string[];
  message: string;
}

/** Normalise an `undone` comm message (null if it names no cell). */
export function toUndoReply(data: Record<string, unknown>): IUndoReply | null {
  if (typeof data.cell_id !== 'string' || !data.cell_id) {
    return null;
  }
  const names = (value: unknown): string[] =>
    Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  return {
    cell_id: data.cell_id,
    ok: data.ok === true,
    restored: names(data.restored),
    removed: names(data.removed),
    kept: names(data.kept),
    message: typeof data.message === 'string' ? data.message : ''
  };
}

/**
 * The line that runs an undo in the kernel. Cell ids are nbformat ids (letters, digits, `-`,
 * `_`); anything else is refused rather than pasted into code.
 */
export function undoCommand(requestId: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(requestId)) {
    throw new Error(`not a cell id: ${JSON.stringify(requestId)}`);
  }
  return `%codeflow undo --cell ${requestId}`;
}

/** The dialog's buttons, in the order shown, with the action tag each one carries. */
export const OVERWRITE_BUTTONS: ReadonlyArray<{
  choice: OverwriteChoice;
  label: string;
  caption: string;
}> = [
  {
    choice: 'keep',
    label: 'Keep mine',
    caption: 'Leave your cell as it is; the new code is not written'
  },
  { choice: 'replace', label: 'Replace', caption: 'Replace your edited code with the new code' },
  {
    choice: 'insert',
    label: 'Insert below',
    caption: 'Keep your cell and put the new code in a new cell below it'
  }
];

/**
 * The choice a closed dialog stands for. Closing it without a button (Escape, the close
 * icon) keeps the user's code: the one answer that can never lose work.
 */
export function choiceFromActions(actions: readonly string[] | undefined): OverwriteChoice {
  for (const button of OVERWRITE_BUTTONS) {
    if (actions?.includes(`codeflow-${button.choice}`)) {
      return button.choice;
    }
  }
  return 'keep';
}
