/**
 * The "you edited this cell" question as a JupyterLab dialog. Kept apart from the edit logic
 * (notebookedit.ts) so that logic runs in tests with a stub in place of this dialog.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { h, renderCode } from './render';
import { AskOverwrite, choiceFromActions, IOverwriteQuestion, OVERWRITE_BUTTONS } from './trust';

const WHAT: Record<IOverwriteQuestion['reason'], string> = {
  writeback: 'The new run would replace your code.',
  restore: 'Restoring this attempt would replace your code.',
  approve: 'The approved run would replace your code.',
  undo: 'Undoing the run would put back the code from before it.',
  discard: 'Discarding the review would put back the code from before it.'
};

function body(question: IOverwriteQuestion): Widget {
  const node = h('div', { className: 'jp-codeflow-overwrite' }, [
    h('p', {
      text: `You edited the code cell linked to this request. ${WHAT[question.reason]}`
    }),
    h('p', {
      className: 'jp-codeflow-overwrite-legend',
      text: 'Your code (-) and the new code (+):'
    }),
    renderCode(question.incoming, question.current)
  ]);
  return new Widget({ node });
}

/**
 * Ask with a dialog: Keep mine / Replace / Insert below, those the question offers. The
 * default button loses nothing: Insert below, else Keep mine.
 */
export const askOverwriteDialog: AskOverwrite = async question => {
  const offered = OVERWRITE_BUTTONS.filter(b => question.choices.includes(b.choice));
  const safe = offered.some(b => b.choice === 'insert') ? 'insert' : 'keep';
  const result = await showDialog({
    title: 'Replace your edited code?',
    body: body(question),
    buttons: offered.map(button =>
      Dialog.createButton({
        label: button.label,
        caption: button.caption,
        ariaLabel: button.caption,
        accept: button.choice !== 'keep',
        displayType: button.choice === 'replace' ? 'warn' : 'default',
        actions: [`codeflow-${button.choice}`]
      })
    ),
    defaultButton: offered.findIndex(b => b.choice === safe)
  });
  return choiceFromActions(result.button.actions);
};
