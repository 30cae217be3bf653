/**
 * The codeflow JupyterLab plugin: wires the per-notebook tracker, the sidebar and the
 * settings together, and provides the tracker to other plugins (`ICodeflowTracker`).
 *
 * Each open notebook gets its own model and kernel link (tracker.ts); the sidebar shows the
 * model of the notebook in focus, and its buttons act on that notebook (actions.ts).
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { createPanelActions, panelSource } from './actions';
import { askOverwriteDialog } from './dialog';
import { CodeflowPanel } from './panel';
import { DEFAULT_SETTINGS, readSettings } from './settings';
import { ICodeflowSettings, ICodeflowTracker, PLUGIN_ID, VERSION } from './tokens';
import { CodeflowTracker } from './tracker';

const plugin: JupyterFrontEndPlugin<ICodeflowTracker> = {
  id: PLUGIN_ID,
  description: 'codeflow sidebar, kernel link and settings.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ISettingRegistry],
  provides: ICodeflowTracker,
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    restorer: ILayoutRestorer | null,
    registry: ISettingRegistry | null
  ): ICodeflowTracker => {
    let settings: ICodeflowSettings = { ...DEFAULT_SETTINGS };
    const codeflow = new CodeflowTracker({
      notebooks,
      settings: () => settings,
      version: VERSION,
      askOverwrite: askOverwriteDialog
    });

    const sidebar = new CodeflowPanel(
      createPanelActions({
        activateById: id => app.shell.activateById(id),
        codeflow,
        askOverwrite: askOverwriteDialog
      })
    );
    const showCurrent = (): void => {
      const state = codeflow.current;
      sidebar.setSource(state ? panelSource(state) : null);
    };
    codeflow.currentChanged.connect(showCurrent);
    codeflow.currentConnectionChanged.connect(() => sidebar.refresh());

    app.shell.add(sidebar, 'right', { rank: 650 });
    if (restorer) {
      restorer.add(sidebar, 'codeflow-sidebar');
    }
    showCurrent();

    if (registry) {
      void registry
        .load(PLUGIN_ID)
        .then(loaded => {
          const read = (): ICodeflowSettings => readSettings(key => loaded.get(key).composite);
          settings = read();
          loaded.changed.connect(() => {
            settings = read();
            codeflow.sendSettings();
          });
        })
        .catch(reason => {
          console.error('codeflow: could not load settings', reason);
        });
    }
    return codeflow;
  }
};

export default plugin;
