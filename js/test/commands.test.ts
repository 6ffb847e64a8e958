import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import type { ICluster } from '../src/api';
import { addCommands, CommandIDs, IUi } from '../src/commands';
import { ClustersModel } from '../src/model';
import { CastraySidebar } from '../src/sidebar';
import { cluster, FakeApi, FakeSockets, until } from './fakes';

function setup() {
  const api = new FakeApi();
  const model = new ClustersModel({ api, openSocket: new FakeSockets().factory, interval: () => 60 });
  const commands = new CommandRegistry();
  const seen: { opened: string[]; copied: string[]; focused: number; menu: string | null; typed: string } = {
    opened: [],
    copied: [],
    focused: 0,
    menu: null,
    typed: ''
  };
  const ui: IUi = {
    showSidebar: () => undefined,
    focusAddress: () => {
      seen.focused += 1;
    },
    typedAddress: () => seen.typed,
    clearAddress: () => {
      seen.typed = '';
    },
    openDashboard: (c: ICluster) => seen.opened.push(c.name),
    insertCode: () => 'open a notebook and select a cell first',
    copy: text => seen.copied.push(text),
    clusterUnderMenu: () => seen.menu
  };
  addCommands(commands, model, ui);
  return { api, model, commands, seen };
}

describe('commands', () => {
  it('detach runs the same from a button (its name) and from a card’s context menu (the card)', async () => {
    const { api, commands, seen } = setup();
    await commands.execute(CommandIDs.detach, { name: 'a' });
    seen.menu = 'b';
    await commands.execute(CommandIDs.detach, {});
    expect(api.calls.filter(c => c.startsWith('detach'))).toEqual(['detach a', 'detach b']);
    seen.menu = null;
    await expect(commands.execute(CommandIDs.detach, {})).rejects.toThrow('no cluster named');
  });

  it('connect takes an address, or what is typed, or asks for one', async () => {
    const { api, commands, seen, model } = setup();
    expect(await commands.execute(CommandIDs.connect, {})).toBe(false);
    expect(seen.focused).toBe(1);
    seen.typed = '127.0.0.1:6380';
    expect(await commands.execute(CommandIDs.connect, { fromButton: true })).toBe(true);
    expect(seen.typed).toBe('');
    await commands.execute(CommandIDs.connect, { address: 'http://127.0.0.1:8265', name: 'lab' });
    expect(api.calls.filter(c => c.startsWith('connect'))).toEqual([
      'connect 127.0.0.1:6380',
      'connect http://127.0.0.1:8265'
    ]);
    api.failing.add('connect');
    expect(await commands.execute(CommandIDs.connect, { address: 'nowhere:1' })).toBe(false);
    expect(model.connectError).toBe('connect failed: the server said no');
  });

  it('opens a dashboard only where there is one, also for a tab restored before any fetch', async () => {
    const { api, commands, seen, model } = setup();
    api.attached = [cluster('lab'), cluster('headless', { dashboard_link: null, dashboard_url: null })];
    await commands.execute(CommandIDs.openDashboard, { name: 'lab' }); // nothing fetched yet: it asks
    expect(seen.opened).toEqual(['lab']);
    expect(commands.isEnabled(CommandIDs.openDashboard, { name: 'headless' })).toBe(false);
    await commands.execute(CommandIDs.openDashboard, { name: 'headless' });
    expect(seen.opened).toEqual(['lab']);
    expect(model.clusterErrors.get('headless')).toBe('headless has no dashboard');
  });

  it('insert code and copy address act on the attached cluster named', async () => {
    const { api, commands, seen, model } = setup();
    api.attached = [cluster('lab')];
    await model.fetchCluster('lab');
    await commands.execute(CommandIDs.copyAddress, { name: 'lab' });
    expect(seen.copied).toEqual(['127.0.0.1:6382']);
    await commands.execute(CommandIDs.insertCode, { name: 'lab' });
    expect(model.clusterErrors.get('lab')).toBe('open a notebook and select a cell first');
  });
});

describe('the sidebar view', () => {
  it('takes its buttons’ state from the commands, also from commands added after it', () => {
    const api = new FakeApi();
    const model = new ClustersModel({ api, openSocket: new FakeSockets().factory, interval: () => 60 });
    const commands = new CommandRegistry();
    const view = new CastraySidebar(model, commands);
    const connect = () => view.node.querySelector(`[data-command="${CommandIDs.connect}"]`) as HTMLButtonElement;
    expect(connect().disabled).toBe(true); // no such command yet
    commands.addCommand(CommandIDs.connect, { execute: () => undefined, caption: 'Attach it' });
    expect(connect().disabled).toBe(false);
    expect(connect().title).toBe('Attach it');
    view.dispose();
    model.dispose();
  });

  it('renders the model, and its buttons run the commands', async () => {
    const { api, model, commands } = setup();
    api.attached = [cluster('lab'), cluster('headless', { dashboard_link: null, dashboard_url: null })];
    const view = new CastraySidebar(model, commands);
    Widget.attach(view, document.body);
    await until(() => view.node.querySelectorAll('.castray-card').length === 2);
    const button = (name: string, command: string) =>
      view.node.querySelector(`[data-cluster="${name}"] [data-command="${command}"]`) as HTMLButtonElement;
    expect(button('headless', CommandIDs.openDashboard).disabled).toBe(true);
    expect(button('lab', CommandIDs.openDashboard).disabled).toBe(false);
    expect(view.node.querySelector('[data-cluster="lab"]')?.textContent).toContain('refreshed 14:03:07 UTC');
    button('lab', CommandIDs.detach).click();
    await until(() => api.calls.includes('detach lab'));
    view.hide();
    expect(model.active).toBe(false);
    view.show();
    expect(model.active).toBe(true);
    Widget.detach(view);
    expect(model.active).toBe(false);
    Widget.attach(view, document.body);
    Widget.detach(view);
    view.dispose();
    model.dispose();
  });
});
