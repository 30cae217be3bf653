/**
 * The codeflow sidebar: the view of one notebook's `CodeflowModel`.
 *
 * The panel only renders and forwards clicks; what a click does (scroll to a cell, run it,
 * restore code, talk to the kernel) lives in `IPanelActions`, implemented by the plugin, so
 * the view has no notebook logic. It re-renders whole on change (the list is short) but keeps
 * expansion and keyboard focus across renders.
 */

import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  CodeflowModel,
  IAttemptView,
  IPlanView,
  IRequestEntry,
  stateLabel,
  stepStateLabel
} from './model';
import {
  attemptTitle,
  entryMetaParts,
  errorLine,
  h,
  renderAttemptBody,
  renderCode
} from './render';

export type ImproveFocus = 'optimize' | 'robustness';

export interface IPanelActions {
  activate(cellId: string): void;
  rerun(cellId: string): void;
  improve(cellId: string, focus: ImproveFocus): void;
  restore(cellId: string, attempt: IAttemptView): void;
  /** Run the code awaiting review (as the linked cell shows it now). */
  approve(cellId: string): void;
  /** Drop the code awaiting review and put the linked cell back. */
  discard(cellId: string): void;
  /** Undo the last run: kernel bindings and linked cell. */
  undo(cellId: string): void;
}

export interface IPanelSource {
  model: CodeflowModel;
  /** Shown in the header (the notebook's name). */
  label: string;
  /** Whether the kernel link is up (improve needs it). */
  connected: () => boolean;
  /**
   * The code awaiting review and the linked cell's code before it, when this session wrote
   * it (the stash lives in memory only).
   */
  pendingChange?: (cellId: string) => { previous: string; pending: string } | null;
}

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<path class="jp-icon3" fill="#616161" d="M4 5h9v2H4zm0 4h7v2H4zm0 4h5v2H4zm11.6-4.4 1.4-1.4 4.8 4.8-4.8 4.8-1.4-1.4 3.4-3.4zM12 19h9v2h-9z"/>
</svg>`;

export const codeflowIcon = new LabIcon({ name: 'codeflow:sidebar', svgstr: ICON_SVG });

function entryMeta(entry: IRequestEntry): HTMLElement {
  const box = h('div', { className: 'jp-codeflow-entry-meta' });
  entryMetaParts(entry).forEach((part, i) => {
    if (i > 0) {
      box.appendChild(document.createTextNode(' · '));
    }
    // A long cause may wrap; the short figures stay whole.
    const long = part.length > 40;
    box.appendChild(
      h('span', { className: long ? 'jp-codeflow-meta-long' : 'jp-codeflow-meta-part', text: part })
    );
  });
  return box;
}

export class CodeflowPanel extends Widget {
  constructor(actions: IPanelActions) {
    super();
    this._actions = actions;
    this.id = 'jp-codeflow-sidebar';
    this.addClass('jp-codeflow-panel');
    this.title.icon = codeflowIcon;
    this.title.caption = 'codeflow requests';
    this.title.label = 'codeflow';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'codeflow requests');
    this._render();
  }

  /** Show another notebook's model (or none). */
  setSource(source: IPanelSource | null): void {
    if (this._source?.model) {
      this._source.model.changed.disconnect(this._scheduleRender, this);
    }
    this._source = source;
    if (source) {
      source.model.changed.connect(this._scheduleRender, this);
    }
    this._render();
  }

  /** Re-render now (e.g. when the kernel link state changed). */
  refresh(): void {
    this._scheduleRender();
  }

  dispose(): void {
    this.setSource(null);
    super.dispose();
  }

  private _scheduleRender(): void {
    if (this._pending) {
      return;
    }
    this._pending = true;
    requestAnimationFrame(() => {
      this._pending = false;
      if (!this.isDisposed) {
        this._render();
      }
    });
  }

  private _render(): void {
    const active = document.activeElement as HTMLElement | null;
    const focusKey =
      active && this.node.contains(active) ? active.getAttribute('data-focus-key') : null;
    const scrollTop = this.node.scrollTop;

    this.node.textContent = '';
    const source = this._source;
    const header = h('div', { className: 'jp-codeflow-panel-header' }, [
      h('h2', { className: 'jp-codeflow-panel-title', text: 'codeflow' })
    ]);
    this.node.appendChild(header);
    if (!source) {
      this.node.appendChild(
        h('p', { className: 'jp-codeflow-empty', text: 'Open a notebook to see its requests.' })
      );
      return;
    }
    header.appendChild(
      h('div', {
        className: 'jp-codeflow-panel-notebook',
        text: source.label,
        attrs: { title: source.label }
      })
    );
    const connected = source.connected();
    header.appendChild(
      h('div', {
        className: `jp-codeflow-link ${connected ? 'jp-mod-connected' : ''}`,
        text: connected ? 'kernel linked' : 'kernel not linked (run %load_ext codeflow_magic)'
      })
    );
    const entries = source.model.entries;
    if (entries.length === 0) {
      this.node.appendChild(
        h('p', {
          className: 'jp-codeflow-empty',
          text: 'No %%codeflow cells in this notebook yet.'
        })
      );
    } else {
      const list = h('ul', { className: 'jp-codeflow-list', attrs: { role: 'list' } });
      for (const entry of entries) {
        list.appendChild(this._renderEntry(entry, connected));
      }
      this.node.appendChild(list);
    }

    this.node.scrollTop = scrollTop;
    if (focusKey) {
      const target = this.node.querySelector<HTMLElement>(
        `[data-focus-key="${CSS.escape(focusKey)}"]`
      );
      target?.focus();
    }
  }

  private _button(
    label: string,
    ariaLabel: string,
    focusKey: string,
    onClick: () => void,
    className = 'jp-codeflow-button'
  ): HTMLButtonElement {
    const button = h('button', {
      className,
      text: label,
      attrs: {
        type: 'button',
        'aria-label': ariaLabel,
        title: ariaLabel,
        'data-focus-key': focusKey
      }
    });
    button.addEventListener('click', event => {
      event.stopPropagation();
      onClick();
    });
    return button;
  }

  private _renderEntry(entry: IRequestEntry, connected: boolean): HTMLElement {
    const id = entry.cellId;
    const expanded = this._expanded.has(id);
    const title = entry.title || '(empty request)';
    const item = h('li', {
      className: `jp-codeflow-entry jp-mod-${entry.state}`,
      attrs: {
        'data-cell-id': id,
        'data-state': entry.state,
        'data-attempts': String(entry.attemptCount),
        'data-undone': String(entry.undone)
      }
    });

    const toggle = this._button(
      expanded ? '▾' : '▸',
      `${expanded ? 'Hide' : 'Show'} attempts of: ${title}`,
      `${id}:toggle`,
      () => {
        if (this._expanded.has(id)) {
          this._expanded.delete(id);
        } else {
          this._expanded.add(id);
        }
        this._render();
      },
      'jp-codeflow-toggle'
    );
    toggle.setAttribute('aria-expanded', String(expanded));

    const main = this._button(
      '',
      `Go to request: ${title}`,
      `${id}:main`,
      () => this._actions.activate(id),
      'jp-codeflow-entry-main'
    );
    main.title = entry.request || title;
    main.appendChild(
      h('span', {
        className: `jp-codeflow-badge jp-mod-${entry.state}`,
        text: stateLabel(entry.state)
      })
    );
    main.appendChild(h('span', { className: 'jp-codeflow-entry-title', text: title }));

    item.appendChild(h('div', { className: 'jp-codeflow-entry-row' }, [toggle, main]));
    item.appendChild(entryMeta(entry));
    if (entry.plan) {
      item.appendChild(this._renderPlan(entry, entry.plan));
    }

    const running = entry.state === 'running';
    const actions = h('div', { className: 'jp-codeflow-actions' });
    const rerun = this._button('Re-run', `Re-run request: ${title}`, `${id}:rerun`, () =>
      this._actions.rerun(id)
    );
    rerun.disabled = running;
    actions.appendChild(rerun);
    // Improving needs a working result to start from (an undone one is gone); a plan is
    // improved step by step in its cells, not as one run.
    const improvable = entry.state === 'succeeded' && !entry.undone && !entry.plan;
    for (const focus of improvable ? (['optimize', 'robustness'] as ImproveFocus[]) : []) {
      const button = this._button(
        `Improve: ${focus}`,
        `Improve (${focus}) request: ${title}`,
        `${id}:improve-${focus}`,
        () => this._actions.improve(id, focus)
      );
      button.disabled = running || !connected;
      if (!connected) {
        button.title = 'Needs the kernel link: run %load_ext codeflow_magic';
      }
      actions.appendChild(button);
    }
    this._trustActions(entry, actions, connected);
    item.appendChild(actions);
    const status = this._undoStatus(entry);
    if (status) {
      item.appendChild(status);
    }
    if (entry.state === 'awaiting-review') {
      const change = this._source?.pendingChange?.(id) ?? null;
      if (change) {
        const box = h('div', { className: 'jp-codeflow-review' }, [
          h('div', {
            className: 'jp-codeflow-review-legend',
            text: change.previous
              ? 'Code awaiting review, against the cell before:'
              : 'Code awaiting review:'
          }),
          renderCode(change.pending, change.previous ? change.previous : undefined)
        ]);
        item.appendChild(box);
      }
    }

    if (expanded) {
      item.appendChild(this._renderAttempts(entry));
    }
    return item;
  }

  /** Run / Discard for code awaiting review; Undo for a succeeded run not yet undone. */
  private _trustActions(entry: IRequestEntry, actions: HTMLElement, connected: boolean): void {
    const id = entry.cellId;
    const title = entry.title || '(empty request)';
    const needsLink = (button: HTMLButtonElement): void => {
      if (!connected) {
        button.disabled = true;
        button.title = 'Needs the kernel link: run %load_ext codeflow_magic';
      }
    };
    if (entry.state === 'awaiting-review') {
      const run = this._button('Run', `Run the reviewed code of: ${title}`, `${id}:approve`, () =>
        this._actions.approve(id)
      );
      needsLink(run);
      actions.insertBefore(run, actions.firstChild);
      const discard = this._button(
        'Discard',
        `Discard the code awaiting review of: ${title}`,
        `${id}:discard`,
        () => this._actions.discard(id)
      );
      actions.insertBefore(discard, run.nextSibling);
      return;
    }
    // A failed run leaves nothing to undo (its attempts were rolled back as they failed);
    // `%codeflow undo` takes back single runs, not the steps of a plan.
    if (entry.state === 'succeeded' && !entry.undone && entry.attemptCount > 0 && !entry.plan) {
      const busy = entry.undo?.busy === true;
      const undo = this._button(
        busy ? 'Undoing' : 'Undo',
        `Undo the last run of: ${title}`,
        `${id}:undo`,
        () => this._actions.undo(id)
      );
      needsLink(undo);
      undo.disabled = undo.disabled || busy;
      actions.appendChild(undo);
    }
  }

  /** The kernel's word on an undo: why it failed, or what it could not put back. */
  private _undoStatus(entry: IRequestEntry): HTMLElement | null {
    const undo = entry.undo;
    if (undo && !undo.busy) {
      return h('div', {
        className: `jp-codeflow-undo ${undo.ok ? 'jp-mod-ok' : 'jp-mod-error'}`,
        text: undo.ok ? undo.message : `Undo failed: ${undo.message}`,
        attrs: { role: 'status' }
      });
    }
    if (entry.undone) {
      return h('div', {
        className: 'jp-codeflow-undo jp-mod-ok',
        text: 'Undone',
        attrs: { role: 'status' }
      });
    }
    return null;
  }

  /**
   * A plan, one line per step: its state and attempts; a click goes to the step's code cell.
   * The running step is marked for assistive technology too (`aria-current`).
   */
  private _renderPlan(entry: IRequestEntry, plan: IPlanView): HTMLElement {
    const title = entry.title || '(empty request)';
    const list = h('ol', {
      className: 'jp-codeflow-steps',
      attrs: { 'aria-label': `Steps of: ${title}` }
    });
    if (plan.steps.length === 0) {
      list.appendChild(
        h('li', {
          className: 'jp-codeflow-step jp-codeflow-empty',
          text: entry.state === 'running' ? 'Waiting for the plan.' : 'The plan has no steps.'
        })
      );
      return list;
    }
    for (const step of plan.steps) {
      const name = step.title || `Step ${step.number}`;
      const state = stepStateLabel(step.state);
      const item = h('li', {
        className: `jp-codeflow-step jp-mod-${step.state}`,
        attrs: {
          'data-step': String(step.number),
          'data-state': step.state,
          'data-attempts': String(step.attempts)
        }
      });
      if (step.number === plan.running) {
        item.setAttribute('aria-current', 'step');
      }
      const cellId = step.cellId;
      const go = this._button(
        '',
        cellId
          ? `Go to step ${step.number} (${state}): ${name}`
          : `Step ${step.number} (${state}): ${name}`,
        `${entry.cellId}:step-${step.number}`,
        () => {
          if (cellId) {
            this._actions.activate(cellId);
          }
        },
        'jp-codeflow-step-main'
      );
      go.disabled = cellId === null;
      go.appendChild(h('span', { className: 'jp-codeflow-step-number', text: `${step.number}.` }));
      go.appendChild(h('span', { className: 'jp-codeflow-step-title', text: name }));
      go.appendChild(
        h('span', { className: `jp-codeflow-badge jp-mod-${step.state}`, text: state })
      );
      if (step.attempts > 0) {
        go.appendChild(
          h('span', {
            className: 'jp-codeflow-step-attempts',
            text: `${step.attempts} attempt${step.attempts === 1 ? '' : 's'}`
          })
        );
      }
      item.appendChild(go);
      if (step.state === 'failed' && step.lastError) {
        item.appendChild(
          h('div', {
            className: 'jp-codeflow-step-error',
            text: errorLine(step.lastError)
          })
        );
      }
      list.appendChild(item);
    }
    return list;
  }

  private _renderAttempts(entry: IRequestEntry): HTMLElement {
    const box = h('div', { className: 'jp-codeflow-attempts' });
    if (entry.attempts.length === 0) {
      box.appendChild(
        h('p', {
          className: 'jp-codeflow-empty',
          text: entry.plan
            ? "Each step's attempts are in the request cell's output."
            : entry.attemptCount
              ? 'Attempt details are in the cell output once it has run in this session.'
              : 'No attempts yet.'
        })
      );
      return box;
    }
    entry.attempts.forEach((attempt, i) => {
      const section = h('section', {
        className: `jp-codeflow-attempt ${attempt.success ? 'jp-mod-success' : 'jp-mod-failure'}`,
        attrs: { 'data-attempt': String(attempt.number) }
      });
      const head = h('div', { className: 'jp-codeflow-attempt-head' }, [
        h('span', { className: 'jp-codeflow-attempt-title', text: attemptTitle(attempt) })
      ]);
      if (attempt.code) {
        head.appendChild(
          this._button(
            'Restore',
            `Restore the code of attempt ${attempt.number}`,
            `${entry.cellId}:restore-${attempt.number}`,
            () => this._actions.restore(entry.cellId, attempt)
          )
        );
      }
      section.appendChild(head);
      section.appendChild(renderAttemptBody(attempt, entry.attempts[i - 1]));
      box.appendChild(section);
    });
    return box;
  }

  private _actions: IPanelActions;
  private _source: IPanelSource | null = null;
  private _expanded = new Set<string>();
  private _pending = false;
}
