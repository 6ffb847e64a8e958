/**
 * Every action of the sidebar is a command: its buttons, the command palette and the
 * cards' context menu all run these, with the same arguments. The front end's own
 * services (the shell, the clipboard, the notebook) come in as ``IUi``, so the commands
 * can be tested without JupyterLab.
 */
import { CommandRegistry } from '@lumino/commands';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import type { ICluster, IRecent } from './api';
import { addressOf } from './format';
import { ClustersModel } from './model';

export namespace CommandIDs {
  export const open = 'castray:open';
  export const discover = 'castray:discover';
  export const connect = 'castray:connect';
  export const attach = 'castray:attach';
  export const detach = 'castray:detach';
  export const openDashboard = 'castray:open-dashboard';
  export const insertCode = 'castray:insert-code';
  export const copyAddress = 'castray:copy-address';
  export const toggleNodes = 'castray:toggle-nodes';
  export const attachRecent = 'castray:attach-recent';
  export const forget = 'castray:forget';
}

/** What the commands need of the page around them. */
export interface IUi {
  /** Show the sidebar. */
  showSidebar(): void;
  /** Put the focus in the address box. */
  focusAddress(): void;
  /** The address box's text, and clearing it. */
  typedAddress(): string;
  clearAddress(): void;
  /** Open (or bring forward) a main-area tab with this cluster's dashboard. */
  openDashboard(cluster: ICluster): void;
  /** Put the code attaching ``cluster`` into the active notebook; an error line, or null. */
  insertCode(cluster: ICluster): string | null;
  copy(text: string): void;
  /** The cluster card a context menu was opened on, if any. */
  clusterUnderMenu(): string | null;
}

function nameOf(args: ReadonlyPartialJSONObject, ui: IUi): string {
  const name = typeof args.name === 'string' ? args.name : ui.clusterUnderMenu();
  if (!name) {
    throw new Error('no cluster named: give {name} or open the menu on a cluster card');
  }
  return name;
}

export function addCommands(commands: CommandRegistry, model: ClustersModel, ui: IUi): IDisposableLike[] {
  const attached = (args: ReadonlyPartialJSONObject): ICluster => {
    const name = nameOf(args, ui);
    const cluster = model.cluster(name);
    if (!cluster) {
      throw new Error(`no attached cluster is called ${name}`);
    }
    return cluster;
  };
  const remembered = (args: ReadonlyPartialJSONObject): IRecent => {
    const address = typeof args.address === 'string' ? args.address : '';
    const entry = model.recent.find(r => r.address === address);
    if (!entry) {
      throw new Error(`no recent cluster at ${address || '(no address given)'}`);
    }
    return entry;
  };
  const added: IDisposableLike[] = [
    commands.addCommand(CommandIDs.open, {
      label: 'Ray Clusters: Open the Sidebar',
      execute: () => ui.showSidebar()
    }),
    commands.addCommand(CommandIDs.discover, {
      label: 'Ray Clusters: Discover',
      caption: 'Find every Ray cluster on the Jupyter server’s machine',
      isEnabled: () => !model.busy,
      execute: async () => {
        ui.showSidebar();
        await model.discover();
      }
    }),
    commands.addCommand(CommandIDs.connect, {
      label: 'Ray Clusters: Connect to an Address',
      caption: 'Attach the cluster at this address',
      execute: async args => {
        ui.showSidebar();
        const given = typeof args.address === 'string' ? args.address : null;
        const address = given ?? ui.typedAddress();
        if (given === null && !address.trim() && args.fromButton !== true) {
          ui.focusAddress(); // from the palette with nothing typed: type it first
          return false;
        }
        const name = typeof args.name === 'string' ? args.name : undefined;
        const ok = await model.connect(address, name);
        if (ok && given === null) {
          ui.clearAddress();
        }
        return ok;
      }
    }),
    commands.addCommand(CommandIDs.attach, {
      label: args => `Attach ${typeof args.name === 'string' ? args.name : 'the Discovered Cluster'}`,
      caption: 'Attach this cluster in the Jupyter server',
      execute: async args => {
        const name = nameOf(args, ui);
        const found = (model.discovered || []).find(d => d.name === name);
        if (!found) {
          throw new Error(`no discovered cluster is called ${name}`);
        }
        await model.attach(found);
      }
    }),
    commands.addCommand(CommandIDs.detach, {
      label: 'Detach',
      caption: 'Detach from the Jupyter server (the cluster keeps running)',
      execute: args => model.detach(nameOf(args, ui))
    }),
    commands.addCommand(CommandIDs.openDashboard, {
      label: 'Open the Ray Dashboard',
      caption: 'Open the Ray dashboard in a tab (through Jupyter)',
      isEnabled: args => {
        const name = typeof args.name === 'string' ? args.name : ui.clusterUnderMenu();
        const cluster = name ? model.cluster(name) : undefined;
        return cluster === undefined || !!cluster.dashboard_link; // unknown yet: restoring after a reload
      },
      execute: async args => {
        const name = nameOf(args, ui);
        const cluster = await model.fetchCluster(name);
        if (!cluster) {
          throw new Error(`no attached cluster is called ${name}`);
        }
        if (!cluster.dashboard_link) {
          model.setError(name, `${name} has no dashboard`);
          return;
        }
        ui.openDashboard(cluster);
      }
    }),
    commands.addCommand(CommandIDs.insertCode, {
      label: 'Insert the Code That Attaches It',
      caption: 'Put the code that attaches this cluster into the active notebook',
      execute: args => {
        const cluster = attached(args);
        model.setError(cluster.name, ui.insertCode(cluster));
      }
    }),
    commands.addCommand(CommandIDs.copyAddress, {
      label: 'Copy the Address',
      execute: args => ui.copy(addressOf(attached(args)))
    }),
    commands.addCommand(CommandIDs.attachRecent, {
      label: args => `Attach ${typeof args.address === 'string' ? args.address : 'the Recent Cluster'} Again`,
      caption: 'Attach this cluster again, under the name it had',
      execute: async args => {
        await model.attachRecent(remembered(args));
      }
    }),
    commands.addCommand(CommandIDs.forget, {
      label: 'Forget',
      caption: 'Forget this cluster: it is no longer offered under Recent nor probed by discovery',
      execute: async args => {
        await model.forget(remembered(args));
      }
    }),
    commands.addCommand(CommandIDs.toggleNodes, {
      label: 'Show or Hide the Nodes',
      caption: 'Show or hide the node list',
      execute: args => model.toggleNodes(nameOf(args, ui))
    })
  ];
  const refresh = () => commands.notifyCommandChanged();
  model.changed.connect(refresh);
  added.push({ dispose: () => model.changed.disconnect(refresh) });
  return added;
}

export interface IDisposableLike {
  dispose(): void;
}
