/**
 * A small line diff (longest common subsequence) for showing what a fix changed.
 *
 * Generated code is short, so the quadratic table is cheap; the common head and tail are
 * stripped first and a size cap keeps a pathological pair from freezing the sidebar (past the
 * cap the middle is shown as removed + added, which is still a correct diff).
 */

export type DiffOp = 'same' | 'add' | 'del';

export interface IDiffLine {
  op: DiffOp;
  text: string;
  /** 1-based line number in the old text (`same` and `del`). */
  oldLine?: number;
  /** 1-based line number in the new text (`same` and `add`). */
  newLine?: number;
}

/** Past this many table cells the middle is not aligned line by line. */
export const MAX_TABLE_CELLS = 4_000_000;

/** Split text into lines; a final newline does not make an extra empty line. */
export function splitLines(text: string): string[] {
  if (text === '') {
    return [];
  }
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.length > 1 && lines[lines.length - 1] === '') {
    lines.pop();
  }
  return lines;
}

/** Diff two texts line by line. */
export function diffLines(oldText: string, newText: string): IDiffLine[] {
  const a = splitLines(oldText);
  const b = splitLines(newText);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) {
    head++;
  }
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  ) {
    tail++;
  }
  const out: IDiffLine[] = [];
  for (let i = 0; i < head; i++) {
    out.push({ op: 'same', text: a[i], oldLine: i + 1, newLine: i + 1 });
  }
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  for (const line of diffMiddle(midA, midB)) {
    out.push({
      op: line.op,
      text: line.text,
      oldLine: line.oldLine === undefined ? undefined : line.oldLine + head,
      newLine: line.newLine === undefined ? undefined : line.newLine + head
    });
  }
  for (let k = 0; k < tail; k++) {
    const i = a.length - tail + k;
    const j = b.length - tail + k;
    out.push({ op: 'same', text: a[i], oldLine: i + 1, newLine: j + 1 });
  }
  return out;
}

function diffMiddle(a: string[], b: string[]): IDiffLine[] {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0 || n * m > MAX_TABLE_CELLS) {
    return [
      ...a.map((text, i): IDiffLine => ({ op: 'del', text, oldLine: i + 1 })),
      ...b.map((text, j): IDiffLine => ({ op: 'add', text, newLine: j + 1 }))
    ];
  }
  // lcs[i][j]: length of the LCS of a[i:] and b[j:], in one flat array.
  const width = m + 1;
  const lcs = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * width + j] =
        a[i] === b[j]
          ? lcs[(i + 1) * width + j + 1] + 1
          : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const out: IDiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ op: 'same', text: a[i], oldLine: i + 1, newLine: j + 1 });
      i++;
      j++;
    } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
      out.push({ op: 'del', text: a[i], oldLine: i + 1 });
      i++;
    } else {
      out.push({ op: 'add', text: b[j], newLine: j + 1 });
      j++;
    }
  }
  for (; i < n; i++) {
    out.push({ op: 'del', text: a[i], oldLine: i + 1 });
  }
  for (; j < m; j++) {
    out.push({ op: 'add', text: b[j], newLine: j + 1 });
  }
  return out;
}

/** Counts of added and removed lines, for a compact summary. */
export function diffStats(lines: IDiffLine[]): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const line of lines) {
    if (line.op === 'add') {
      added++;
    } else if (line.op === 'del') {
      removed++;
    }
  }
  return { added, removed };
}
