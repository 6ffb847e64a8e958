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

  it('draws each card\'s sparklines from the history, and lists the ended clusters apart', async () => {
    const { api, model, commands } = setup();
    api.attached = [cluster('lab'), cluster('quiet')];
    api.lines = { lab: { start: 0, step: 60, cpu: [10, 50, null, 90], gpu: [null, null, null, null], memory: [40, 41, 42, 43] } };
    api.gone = [
      {
        session_name: 'session_old',
        name: 'old',
        address: '127.0.0.1:6400',
        ray_version: '2.60.0',
        first_seen: '2026-12-01T10:00:00+00:00',
        last_seen: '2026-12-01T11:00:00+00:00',
        ended_at: '2026-12-01T11:00:05+00:00',
        ended_reason: 'refused',
        snapshot: {
          nodes: [
            { cluster: 'old', node_id: 'n1', node_ip: '10.0.0.1', is_head: true, state: 'ALIVE', CPU: 4, GPU: 0,
              memory_bytes: 1, CPU_used: 0, GPU_used: 0, memory_used_bytes: 0 },
            { cluster: 'old', node_id: 'n2', node_ip: '10.0.0.2', is_head: false, state: 'DEAD', CPU: 2, GPU: 0,
              memory_bytes: 1, CPU_used: null, GPU_used: null, memory_used_bytes: null }
          ],
          jobs: [{ cluster: 'old', job_id: '01', submission_id: 'raysubmit_1', type: 'SUBMISSION', status: 'FAILED' }]
        }
      }
    ];
    const view = new CastraySidebar(model, commands);
    Widget.attach(view, document.body);
    await until(() => view.node.querySelectorAll('.castray-card').length === 2 && view.node.querySelector('.castray-ended') !== null);
    const spark = (name: string, kind: string) =>
      view.node.querySelector(`[data-cluster="${name}"] [data-sparkline="${kind}"]`) as HTMLElement;
    expect(spark('lab', 'cpu').querySelectorAll('polyline')).toHaveLength(2); // the gap breaks the line
    expect(spark('lab', 'cpu').textContent).toBe('CPU 90%');
    expect(spark('lab', 'gpu').querySelectorAll('polyline')).toHaveLength(0);
    expect(spark('lab', 'gpu').textContent).toBe('GPU –');
    expect(spark('lab', 'memory').dataset.points).toBe('4');
    expect(spark('quiet', 'cpu').textContent).toBe('CPU –'); // nothing recorded yet: still one element
    const ended = view.node.querySelector('[data-session="session_old"]') as HTMLElement;
    expect(view.node.textContent).toContain('Ended (1)');
    expect(ended.textContent).toContain('ended 12-01 11:00:05 UTC: refused');
    expect(ended.textContent).toContain('2 node(s), 1 alive, CPU 4');
    expect(ended.textContent).toContain('0 succeeded, 1 failed or stopped');
    Widget.detach(view);
    view.dispose();
    model.dispose();
  });
});
