/**
 * DOM building blocks shared by the output renderer and the sidebar.
 *
 * Everything goes through `textContent`, never `innerHTML`: codes, tracebacks and model
 * explanations are untrusted text.
 */

import { diffLines, diffStats } from './diff';
import { IAttemptView, IRequestEntry } from './model';

/** Create an element with classes, text and attributes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  options: {
    className?: string;
    text?: string;
    attrs?: Record<string, string>;
  } = {},
  children: Array<Node | null | undefined> = []
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (options.className) {
    node.className = options.className;
  }
  if (options.text !== undefined) {
    node.textContent = options.text;
  }
  for (const [key, value] of Object.entries(options.attrs ?? {})) {
    node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child) {
      node.appendChild(child);
    }
  }
  return node;
}

export function formatSeconds(seconds: number): string {
  if (!seconds) {
    return '0 s';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 120) {
    return `${Math.round(seconds)} s`;
  }
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function formatTokens(input: number, output: number): string {
  const total = input + output;
  return total === 1 ? '1 token' : `${total.toLocaleString('en-US')} tokens`;
}

/** ANSI colour codes (IPython tracebacks) make no sense as plain text. */
export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');
}

/** Keep the end of a long traceback: the frame that raised is at the bottom. */
export function trimTraceback(text: string, maxLines = 12): string {
  const lines = stripAnsi(text).replace(/\s+$/, '').split('\n');
  if (lines.length <= maxLines) {
    return lines.join('\n');
  }
  const dropped = lines.length - maxLines;
  return [`… ${dropped} more lines`, ...lines.slice(-maxLines)].join('\n');
}

/** The error line of an attempt: `runtime · NameError: name 'x' is not defined`. */
export function errorLine(attempt: Pick<IAttemptView, 'category' | 'ename' | 'evalue'>): string {
  const head = attempt.evalue ? `${attempt.ename}: ${attempt.evalue}` : attempt.ename;
  return attempt.category ? `${attempt.category} · ${head}` : head;
}

/** A code block; with `previous`, a line diff against it. */
export function renderCode(code: string, previous?: string): HTMLElement {
  const pre = h('pre', { className: 'jp-codeflow-code' });
  if (previous === undefined) {
    pre.textContent = code;
    return pre;
  }
  const lines = diffLines(previous, code);
  const stats = diffStats(lines);
  pre.classList.add('jp-codeflow-diff');
  pre.setAttribute('aria-label', `Changes: ${stats.added} added, ${stats.removed} removed`);
  for (const line of lines) {
    const marker = line.op === 'add' ? '+' : line.op === 'del' ? '-' : ' ';
    pre.appendChild(
      h('span', {
        className: `jp-codeflow-diff-line jp-codeflow-diff-${line.op}`,
        text: `${marker} ${line.text}\n`
      })
    );
  }
  return pre;
}

/** Details of one attempt: code (or diff), error, traceback, explanation, cost. */
export function renderAttemptBody(
  attempt: IAttemptView,
  previous: IAttemptView | undefined,
  options: { traceback?: boolean; diff?: boolean } = {}
): HTMLElement {
  const body = h('div', { className: 'jp-codeflow-attempt-body' });
  const useDiff = options.diff !== false && previous !== undefined && previous.code !== '';
  if (attempt.code) {
    body.appendChild(renderCode(attempt.code, useDiff ? previous.code : undefined));
  }
  if (!attempt.success && (attempt.ename || attempt.category)) {
    body.appendChild(h('div', { className: 'jp-codeflow-error', text: errorLine(attempt) }, []));
    if (options.traceback !== false && attempt.traceback) {
      // The box scrolls from its end (CSS column-reverse): the exception line shows first.
      body.appendChild(
        h('pre', { className: 'jp-codeflow-traceback', attrs: { tabindex: '0' } }, [
          h('span', { text: trimTraceback(attempt.traceback) })
        ])
      );
    }
  }
  if (attempt.explanation) {
    body.appendChild(h('div', { className: 'jp-codeflow-explanation', text: attempt.explanation }));
  }
  const cost = [
    `generation ${formatSeconds(attempt.generationSeconds)}`,
    `execution ${formatSeconds(attempt.executionSeconds)}`,
    formatTokens(attempt.inputTokens, attempt.outputTokens)
  ].join(' · ');
  body.appendChild(h('div', { className: 'jp-codeflow-cost', text: cost }));
  return body;
}

/** `Attempt 2 · fix · succeeded`. */
export function attemptTitle(attempt: IAttemptView): string {
  return `Attempt ${attempt.number} · ${attempt.kind} · ${attempt.success ? 'succeeded' : 'failed'}`;
}

/** Words for why a run stopped without a result (the kernel's `stop_reason`). */
const STOP_WORDS: Record<string, string> = {
  provider_unavailable: 'model unavailable',
  provider_error: 'model error'
};

/**
 * The figures under an entry's title, one piece each; pieces never wrap inside themselves
 * (the line wraps between them).
 */
export function entryMetaParts(entry: IRequestEntry): string[] {
  const parts: string[] = [];
  if (entry.undone) {
    // The figures below describe a run whose effects were taken back.
    parts.push('undone');
  }
  if (entry.state === 'interrupted') {
    parts.push('interrupted');
    if (entry.attemptCount === 0) {
      return parts;
    }
    parts.push('previous run:');
  }
  const plan = entry.plan;
  if (plan && plan.steps.length) {
    const n = plan.steps.length;
    parts.push(`${n} step${n === 1 ? '' : 's'}`);
  }
  const count = entry.attemptCount;
  parts.push(`${count} attempt${count === 1 ? '' : 's'}`);
  if (entry.state === 'running' && entry.phase) {
    parts.push(entry.phase);
  }
  const last = entry.attempts[entry.attempts.length - 1];
  const succeeded =
    entry.state === 'succeeded' || (entry.state === 'interrupted' && last?.success === true);
  const failedStep = plan?.steps.find(step => step.state === 'failed');
  if (entry.cause) {
    const words = STOP_WORDS[entry.stopReason] ?? 'stopped';
    parts.push(`${words}: ${entry.cause}`);
  } else if (failedStep && entry.state !== 'running') {
    // The step line says why; here, where the plan stopped.
    parts.push(`stopped at step ${failedStep.number}`);
  } else if (entry.lastError) {
    const err = entry.lastError;
    if (succeeded) {
      parts.push(`fixed ${err.category ? `a ${err.category} error` : err.ename}`);
    } else {
      parts.push([err.category, err.ename].filter(Boolean).join(' '));
    }
  }
  if (entry.seconds) {
    parts.push(formatSeconds(entry.seconds));
  }
  if (entry.inputTokens || entry.outputTokens) {
    parts.push(formatTokens(entry.inputTokens, entry.outputTokens));
  }
  return parts;
}
