/**
 * castray_nb in JupyterLab: a left-sidebar panel of every Ray cluster the Jupyter server
 * has attached or can discover, dashboards in main-area tabs (through the server's proxy)
 * that come back after a reload, and the code that attaches a cluster put into the active
 * notebook. This file only wires the pieces: the model (``model.ts``), the view
 * (``sidebar.ts``) and the commands (``commands.ts``).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette, IFrame, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { api, ICluster, openEventSocket } from './api';
import { addCommands, CommandIDs } from './commands';
import { addressOf } from './format';
import { ClustersModel } from './model';
import { CastraySidebar } from './sidebar';

const PLUGIN_ID = 'castray-nb:sidebar';

export const rayIcon = new LabIcon({
  name: 'castray-nb:ray',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<circle cx="12" cy="12" r="3"/><circle cx="12" cy="3" r="2"/><circle cx="12" cy="21" r="2"/>' +
    '<circle cx="4" cy="7.5" r="2"/><circle cx="20" cy="7.5" r="2"/><circle cx="4" cy="16.5" r="2"/>' +
    '<circle cx="20" cy="16.5" r="2"/>' +
    '<path d="M12 5v4M12 15v4M5.7 8.5l3.6 2M14.7 13.5l3.6 2M5.7 15.5l3.6-2M14.7 10.5l3.6-2" ' +
    'stroke="#616161" stroke-width="1.4" fill="none" class="jp-icon3"/></g></svg>'
});

/** The code that attaches ``cluster`` in a kernel, in the chosen style. */
export function attachCode(cluster: ICluster, style: string): string {
  const address = addressOf(cluster);
  if (style === 'python') {
    return `import castray_nb\ncastray_nb.connect(${JSON.stringify(address)}, name=${JSON.stringify(cluster.name)})\n`;
  }
  return `%load_ext castray_nb\n%castray connect ${address} --name ${cluster.name}\n`;
}

/** A dashboard tab: the cluster it shows is its ``name``, which the layout restorer keeps. */
class DashboardTab extends MainAreaWidget<IFrame> {
  constructor(readonly cluster: string, url: string) {
    const frame = new IFrame({
      sandbox: ['allow-scripts', 'allow-forms', 'allow-popups', 'allow-modals', 'allow-downloads']
    });
    frame.url = url;
    frame.addClass('castray-dashboard-frame');
    super({ content: frame });
    this.id = `castray-dashboard-${cluster}`;
    this.title.label = `Ray: ${cluster}`;
    this.title.icon = rayIcon;
    this.title.closable = true;
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Every Ray cluster at a glance: attached and discovered, live.',
  autoStart: true,
  requires: [ISettingRegistry],
  optional: [ICommandPalette, INotebookTracker, ILayoutRestorer],
  activate: async (
    app: JupyterFrontEnd,
    registry: ISettingRegistry,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null,
    restorer: ILayoutRestorer | null
  ) => {
    let interval = 2;
    let discoverOnOpen = true;
    let codeStyle = 'magic';
    let settingsProblem = '';
    const settings = await registry.load(PLUGIN_ID).catch(error => {
      settingsProblem = `the sidebar's settings could not be loaded (${(error as Error).message}); using the defaults`;
      console.error(`castray-nb: ${settingsProblem}`);
      return null;
    });
    const read = () => {
      if (settings) {
        interval = settings.get('refreshInterval').composite as number;
        discoverOnOpen = settings.get('discoverOnOpen').composite as boolean;
        codeStyle = settings.get('codeStyle').composite as string;
      }
    };
    read();

    const model = new ClustersModel({ api, openSocket: openEventSocket, interval: () => interval });
    model.notice = settingsProblem;
    // The commands first: the view's buttons take their state from them as it is built.
    let sidebar: CastraySidebar | null = null;
    const tracker = new WidgetTracker<DashboardTab>({ namespace: 'castray-dashboard' });
    addCommands(app.commands, model, {
      showSidebar: () => app.shell.activateById('castray-sidebar'),
      focusAddress: () => sidebar?.addressBox.focus(),
      typedAddress: () => sidebar?.addressBox.value ?? '',
      clearAddress: () => {
        if (sidebar) {
          sidebar.addressBox.value = '';
        }
      },
      openDashboard: cluster => {
        const open = tracker.find(tab => tab.cluster === cluster.name);
        if (open) {
          app.shell.activateById(open.id);
          return;
        }
        const tab = new DashboardTab(cluster.name, cluster.dashboard_link || '');
        void tracker.add(tab);
        app.shell.add(tab, 'main');
        app.shell.activateById(tab.id);
      },
      insertCode: cluster => {
        const cell = notebooks?.activeCell;
        const editor = cell?.editor;
        if (!cell || !editor || notebooks?.currentWidget?.isHidden !== false) {
          return 'open a notebook and select a cell first';
        }
        editor.replaceSelection?.(attachCode(cluster, codeStyle));
        return null;
      },
      copy: text => Clipboard.copyToSystem(text),
      clusterUnderMenu: () => {
        const card = app.contextMenuHitTest(node => !!node.dataset.cluster);
        return card?.dataset.cluster || null;
      }
    });

    sidebar = new CastraySidebar(model, app.commands);
    sidebar.title.icon = rayIcon;
    app.shell.add(sidebar, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(sidebar, 'castray-sidebar');
      void restorer.restore(tracker, {
        command: CommandIDs.openDashboard,
        args: tab => ({ name: tab.cluster }),
        name: tab => tab.cluster
      });
    }

    let discoveredOnce = false;
    const panel = sidebar;
    const discoverIfAsked = () => {
      if (discoverOnOpen && panel.isVisible && !discoveredOnce) {
        discoveredOnce = true;
        void app.commands.execute(CommandIDs.discover);
      }
    };
    panel.shown.connect(discoverIfAsked);
    void app.restored.then(discoverIfAsked);

    settings?.changed.connect(() => {
      const before = interval;
      read();
      if (interval !== before) {
        model.intervalChanged();
      }
    });

    for (const command of [CommandIDs.open, CommandIDs.discover, CommandIDs.connect]) {
      palette?.addItem({ command, category: 'Ray Clusters' });
    }
    const onCard = '.castray-sidebar .castray-card';
    [CommandIDs.openDashboard, CommandIDs.insertCode, CommandIDs.copyAddress, CommandIDs.toggleNodes, CommandIDs.detach]
      .forEach((command, rank) => app.contextMenu.addItem({ command, selector: onCard, rank }));
  }
};

export default plugin;
