/**
 * castray_nb in JupyterLab: a left-sidebar panel of every Ray cluster the Jupyter server
 * has attached or can discover, dashboards in main-area tabs (through the server's proxy),
 * and the code that attaches a cluster put into the active notebook.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette, IFrame, MainAreaWidget } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { ICluster } from './api';
import { addressOf, CastraySidebar } from './sidebar';

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

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Every Ray cluster at a glance: attached and discovered, live.',
  autoStart: true,
  requires: [ISettingRegistry],
  optional: [ICommandPalette, INotebookTracker],
  activate: async (
    app: JupyterFrontEnd,
    registry: ISettingRegistry,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null
  ) => {
    let interval = 2;
    let discoverOnOpen = true;
    let codeStyle = 'magic';
    const settings = await registry.load(PLUGIN_ID).catch(() => null);
    const read = () => {
      if (settings) {
        interval = settings.get('refreshInterval').composite as number;
        discoverOnOpen = settings.get('discoverOnOpen').composite as boolean;
        codeStyle = settings.get('codeStyle').composite as string;
      }
    };
    read();

    const openDashboard = (cluster: ICluster) => {
      if (!cluster.dashboard_link) {
        return;
      }
      const id = `castray-dashboard-${cluster.name}`;
      const existing = Array.from(app.shell.widgets('main')).find(w => w.id === id);
      if (existing) {
        app.shell.activateById(id);
        return;
      }
      const frame = new IFrame({
        sandbox: ['allow-scripts', 'allow-forms', 'allow-popups', 'allow-modals', 'allow-downloads']
      });
      frame.url = cluster.dashboard_link;
      frame.addClass('castray-dashboard-frame');
      const tab = new MainAreaWidget({ content: frame });
      tab.id = id;
      tab.title.label = `Ray: ${cluster.name}`;
      tab.title.icon = rayIcon;
      tab.title.closable = true;
      app.shell.add(tab, 'main');
      app.shell.activateById(id);
    };

    const insertCode = (cluster: ICluster): string | null => {
      const cell = notebooks?.activeCell;
      const editor = cell?.editor;
      if (!cell || !editor || notebooks?.currentWidget?.isHidden !== false) {
        return 'open a notebook and select a cell first';
      }
      editor.replaceSelection?.(attachCode(cluster, codeStyle));
      return null;
    };

    const sidebar = new CastraySidebar({
      interval: () => interval,
      openDashboard,
      insertCode,
      copy: text => Clipboard.copyToSystem(text)
    });
    sidebar.title.icon = rayIcon;
    app.shell.add(sidebar, 'left', { rank: 600 });

    let discoveredOnce = false;
    const discoverIfAsked = () => {
      if (discoverOnOpen && sidebar.isVisible && !discoveredOnce) {
        discoveredOnce = true;
        void sidebar.discover();
      }
    };
    sidebar.shown.connect(discoverIfAsked);
    void app.restored.then(discoverIfAsked);

    settings?.changed.connect(() => {
      const before = interval;
      read();
      if (interval !== before) {
        sidebar.intervalChanged();
      }
    });

    app.commands.addCommand('castray:open', {
      label: 'Ray Clusters: Open the Sidebar',
      icon: rayIcon,
      execute: () => app.shell.activateById(sidebar.id)
    });
    app.commands.addCommand('castray:discover', {
      label: 'Ray Clusters: Discover',
      execute: async () => {
        app.shell.activateById(sidebar.id);
        await sidebar.discover();
      }
    });
    app.commands.addCommand('castray:connect', {
      label: 'Ray Clusters: Connect to an Address',
      execute: async args => {
        app.shell.activateById(sidebar.id);
        const address = typeof args.address === 'string' ? args.address : '';
        if (address) {
          await sidebar.connect(address);
        } else {
          sidebar.addressBox.focus();
        }
      }
    });
    for (const command of ['castray:open', 'castray:discover', 'castray:connect']) {
      palette?.addItem({ command, category: 'Ray Clusters' });
    }
  }
};

export default plugin;
