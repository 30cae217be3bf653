/**
 * The output renderer for run records.
 *
 * The final attempt's real outputs are separate outputs of the cell, so this shows only a
 * status line and the attempt history, folded by default to keep the notebook readable.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { toAttemptView } from './model';
import { attemptTitle, formatSeconds, formatTokens, h, renderAttemptBody } from './render';
import { IRunRecord, RECORD_MIME } from './tokens';

const CLASS_NAME = 'jp-codeflow-record';

/** Build the record view (exported for reuse and for tests in a DOM). */
export function renderRecord(record: IRunRecord): HTMLElement {
  const attempts = (record.attempts ?? []).map((a, i) => toAttemptView(a, i));
  const metrics = record.metrics ?? {};
  const success = record.success === true;
  // Code held for review did not fail: it has not run yet.
  const pending = !success && record.stop_reason === 'awaiting_review';
  const root = h('div', { className: 'jp-codeflow-record-inner' });

  const count = attempts.length;
  const parts = [
    success ? 'codeflow: succeeded' : pending ? 'codeflow: awaiting review' : 'codeflow: failed',
    `${count} attempt${count === 1 ? '' : 's'}`,
    formatSeconds(metrics.total_s ?? 0),
    formatTokens(metrics.input_tokens ?? 0, metrics.output_tokens ?? 0)
  ];
  if (record.model) {
    parts.push(record.model);
  }
  if (!success && !pending && record.stop_reason) {
    parts.push(`stopped: ${record.stop_reason.replace(/_/g, ' ')}`);
  }
  root.appendChild(
    h(
      'div',
      {
        className: `jp-codeflow-status ${
          success ? 'jp-mod-success' : pending ? 'jp-mod-pending' : 'jp-mod-failure'
        }`,
        attrs: { role: 'status' }
      },
      [
        h('span', {
          className: 'jp-codeflow-status-icon',
          text: success ? '✓' : pending ? '…' : '✗',
          attrs: { 'aria-hidden': 'true' }
        }),
        h('span', { className: 'jp-codeflow-status-text', text: parts.join(' · ') })
      ]
    )
  );

  if (count > 0) {
    const history = h('details', { className: 'jp-codeflow-history' }, [
      h('summary', { text: `History (${count} attempt${count === 1 ? '' : 's'})` })
    ]);
    attempts.forEach((attempt, i) => {
      const item = h(
        'section',
        {
          className: `jp-codeflow-attempt ${attempt.success ? 'jp-mod-success' : 'jp-mod-failure'}`
        },
        [h('div', { className: 'jp-codeflow-attempt-title', text: attemptTitle(attempt) })]
      );
      item.appendChild(renderAttemptBody(attempt, attempts[i - 1], { diff: false }));
      history.appendChild(item);
    });
    root.appendChild(history);
  }
  return root;
}

export class RecordRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this._mimeType = options.mimeType;
    this.addClass(CLASS_NAME);
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = model.data[this._mimeType] as unknown;
    let record: IRunRecord | null = null;
    if (typeof data === 'string') {
      try {
        record = JSON.parse(data) as IRunRecord;
      } catch {
        record = null;
      }
    } else if (data && typeof data === 'object') {
      record = data as IRunRecord;
    }
    this.node.textContent = '';
    if (record) {
      this.node.appendChild(renderRecord(record));
    } else {
      this.node.textContent = 'codeflow: unreadable run record';
    }
    return Promise.resolve();
  }

  private _mimeType: string;
}

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [RECORD_MIME],
  defaultRank: 0,
  createRenderer: options => new RecordRenderer(options)
};

const extension: IRenderMime.IExtension = {
  id: 'codeflow-labextension:renderer',
  description: 'Renders codeflow run records.',
  rendererFactory,
  rank: 0,
  dataType: 'json'
};

export default extension;
