/**
 * The sidebar: attached clusters as cards (live from the events socket), clusters
 * discovered but not attached, and an address box. Plain DOM in a Lumino widget.
 */
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { api, ApiError, EventSocket, ICluster, IDiscovered, IEvent, IJob, INode } from './api';

export interface ISidebarOptions {
  interval: () => number;
  /** Open a cluster's dashboard (a main-area tab). */
  openDashboard: (cluster: ICluster) => void;
  /** Put code attaching ``cluster`` into the active notebook; returns an error line or null. */
  insertCode: (cluster: ICluster) => string | null;
  copy: (text: string) => void;
}

type Counts = { alive: number; dead: number; unreachable: number; cpu: number; gpu: number };

export function addressOf(cluster: { gcs_address: string | null; dashboard_url: string | null }): string {
  return cluster.gcs_address || cluster.dashboard_url || '';
}

export function counts(nodes: INode[]): Counts {
  const c: Counts = { alive: 0, dead: 0, unreachable: 0, cpu: 0, gpu: 0 };
  for (const node of nodes) {
    if (node.state === 'ALIVE') {
      c.alive += 1;
      c.cpu += node.CPU || 0;
      c.gpu += node.GPU || 0;
    } else if (node.state === 'DEAD') {
      c.dead += 1;
    } else {
      c.unreachable += 1;
    }
  }
  return c;
}

function used(value: number | null, total: number, unit = ''): string {
  const fmt = (x: number) => (unit === 'B' ? bytes(x) : `${Math.round(x * 10) / 10}`);
  if (!total) {
    return '-';
  }
  return value === null ? `? / ${fmt(total)}` : `${fmt(value)} / ${fmt(total)}`;
}

function bytes(x: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i += 1;
  }
  return `${x.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function button(label: string, title: string, action: () => void, cls = ''): HTMLButtonElement {
  const b = el('button', { class: `jp-Button castray-button ${cls}`.trim(), title, type: 'button' }, label);
  b.addEventListener('click', action);
  return b;
}

export class CastraySidebar extends Widget {
  private clusters: ICluster[] = [];
  private nodes: INode[] = [];
  private jobs: IJob[] = [];
  private discovered: IDiscovered[] | null = null;
  private expanded = new Set<string>();
  private errors = new Map<string, string>();
  private connectError = '';
  private status = 'connecting…';
  private busy = false;
  private reloadTimer = 0;
  private tick = 0;
  private socket: EventSocket;
  private _shown = new Signal<this, void>(this);
  private readonly body: HTMLDivElement;
  readonly addressBox: HTMLInputElement;
  private readonly connectLine: HTMLDivElement;
  private readonly statusLine: HTMLDivElement;

  constructor(private options: ISidebarOptions) {
    super();
    this.id = 'castray-sidebar';
    this.addClass('castray-sidebar');
    this.title.caption = 'Ray clusters (castray_nb)';
    this.addressBox = el('input', {
      class: 'jp-mod-styled castray-address',
      placeholder: 'host:port, http://host:port or session name',
      'aria-label': 'cluster address'
    });
    this.addressBox.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        void this.connect();
      }
    });
    this.connectLine = el('div', { class: 'castray-error castray-connect-error', role: 'alert' });
    this.statusLine = el('div', { class: 'castray-status' });
    this.body = el('div', { class: 'castray-body' });
    const header = el(
      'div',
      { class: 'castray-header' },
      el('div', { class: 'castray-title' }, 'Ray clusters'),
      button('Discover', 'Find every Ray cluster on the Jupyter server’s machine', () => void this.discover())
    );
    const connect = el(
      'div',
      { class: 'castray-connect' },
      this.addressBox,
      button('Connect', 'Attach the cluster at this address', () => void this.connect())
    );
    this.node.append(header, connect, this.connectLine, this.statusLine, this.body);
    this.socket = new EventSocket(
      options.interval,
      event => this.onEvent(event),
      open => {
        this.status = open ? 'live' : 'reconnecting…';
        this.render();
        if (open) {
          this.scheduleReload(0);
        }
      }
    );
    this.socket.start();
    this.tick = window.setInterval(() => this.scheduleReload(0), Math.max(1, options.interval()) * 1000);
  }

  /** Emitted each time the sidebar is shown. */
  get shown(): ISignal<this, void> {
    return this._shown;
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._shown.emit();
  }

  dispose(): void {
    this.socket.stop();
    window.clearInterval(this.tick);
    super.dispose();
  }

  /** The refresh interval changed: the socket is opened again with it. */
  intervalChanged(): void {
    window.clearInterval(this.tick);
    this.tick = window.setInterval(() => this.scheduleReload(0), Math.max(1, this.options.interval()) * 1000);
    this.socket.restart();
  }

  async discover(): Promise<void> {
    this.busy = true;
    this.render();
    try {
      this.discovered = await api.discover();
      this.errors.delete('discover');
    } catch (error) {
      this.errors.set('discover', (error as Error).message);
    }
    this.busy = false;
    this.render();
  }

  async connect(address?: string): Promise<void> {
    const text = (address ?? this.addressBox.value).trim();
    if (!text) {
      this.connectError = 'type an address first';
      this.render();
      return;
    }
    this.busy = true;
    this.connectError = '';
    this.render();
    try {
      await api.connect(text);
      if (address === undefined) {
        this.addressBox.value = '';
      }
    } catch (error) {
      this.connectError = error instanceof ApiError ? error.message : String(error);
    }
    this.busy = false;
    await this.reload();
  }

  private async attach(found: IDiscovered): Promise<void> {
    try {
      await api.connect(addressOf(found) || found.name);
      this.errors.delete(found.name);
    } catch (error) {
      this.errors.set(found.name, (error as Error).message);
    }
    await this.reload();
  }

  private async detach(cluster: ICluster): Promise<void> {
    try {
      await api.detach(cluster.name);
    } catch (error) {
      this.errors.set(cluster.name, (error as Error).message);
    }
    await this.reload();
  }

  private onEvent(event: IEvent): void {
    if (event.type === 'hello' || event.kind) {
      this.scheduleReload(event.type === 'hello' ? 0 : 50);
    }
  }

  private scheduleReload(delay: number): void {
    window.clearTimeout(this.reloadTimer);
    this.reloadTimer = window.setTimeout(() => void this.reload(), delay);
  }

  async reload(): Promise<void> {
    try {
      const [clusters, nodes, jobs] = await Promise.all([api.clusters(), api.nodes(), api.jobs()]);
      this.clusters = clusters;
      this.nodes = nodes;
      this.jobs = jobs;
      this.errors.delete('reload');
    } catch (error) {
      this.errors.set('reload', (error as Error).message);
    }
    this.render();
  }

  render(): void {
    this.connectLine.textContent = this.connectError;
    this.statusLine.textContent = this.busy ? 'working…' : this.errors.get('reload') || this.status;
    this.statusLine.dataset.state = this.status === 'live' ? 'live' : 'down';
    const attachedSessions = new Set(this.clusters.map(c => c.session_name));
    const cards = this.clusters.map(c => this.card(c));
    const parts: Node[] = [
      el('div', { class: 'castray-section' }, `Attached (${this.clusters.length})`),
      ...(cards.length ? cards : [el('div', { class: 'castray-empty' }, 'No cluster attached. Discover, or type an address.')])
    ];
    if (this.discovered !== null || this.errors.has('discover')) {
      const others = (this.discovered || []).filter(d => !attachedSessions.has(d.name));
      parts.push(el('div', { class: 'castray-section' }, `Discovered, not attached (${others.length})`));
      if (this.errors.has('discover')) {
        parts.push(el('div', { class: 'castray-error' }, this.errors.get('discover') || ''));
      }
      for (const found of others) {
        parts.push(this.discoveredRow(found));
      }
    }
    this.body.replaceChildren(...parts);
  }

  private card(cluster: ICluster): HTMLElement {
    const mine = this.nodes.filter(n => n.cluster === cluster.name);
    const c = counts(mine);
    const state = cluster.reachable === null ? 'unknown' : cluster.reachable ? 'reachable' : 'unreachable';
    const when = cluster.last_refresh ? new Date(cluster.last_refresh).toLocaleTimeString() : 'not yet';
    const open = this.expanded.has(cluster.name);
    const actions = el(
      'div',
      { class: 'castray-actions' },
      button(open ? 'Nodes ▾' : 'Nodes ▸', 'Show or hide the node list', () => {
        open ? this.expanded.delete(cluster.name) : this.expanded.add(cluster.name);
        this.render();
      }),
      button('Dashboard', 'Open the Ray dashboard in a tab (through Jupyter)', () => this.options.openDashboard(cluster)),
      button('Insert code', 'Put the code that attaches this cluster into the active notebook', () => {
        const error = this.options.insertCode(cluster);
        error ? this.errors.set(cluster.name, error) : this.errors.delete(cluster.name);
        this.render();
      }),
      button('Copy address', addressOf(cluster), () => this.options.copy(addressOf(cluster))),
      button('Detach', 'Detach from the Jupyter server (the cluster keeps running)', () => void this.detach(cluster))
    );
    (actions.children[1] as HTMLButtonElement).disabled = !cluster.dashboard_link;
    const card = el(
      'div',
      { class: 'castray-card', 'data-cluster': cluster.name, 'data-reachable': state },
      el(
        'div',
        { class: 'castray-card-title' },
        el('span', { class: `castray-dot castray-${state}`, title: state }),
        el('b', {}, cluster.name),
        el('span', { class: 'castray-muted' }, ` Ray ${cluster.ray_version || '?'}`)
      ),
      el('div', { class: 'castray-line' }, `${state} · ${addressOf(cluster)}`),
      ownerLine(cluster),
      el(
        'div',
        { class: 'castray-line castray-counts' },
        el('span', { 'data-count': 'alive' }, `${c.alive} alive`),
        ' · ',
        el('span', { 'data-count': 'dead' }, `${c.dead} dead`),
        ' · ',
        el('span', { 'data-count': 'unreachable' }, `${c.unreachable} unreachable`)
      ),
      el('div', { class: 'castray-line' }, `CPU ${c.cpu} · GPU ${c.gpu} · refreshed ${when}`),
      this.jobLine(cluster),
      actions
    );
    const error = this.errors.get(cluster.name) || (cluster.reachable === false ? cluster.error || '' : '');
    if (error) {
      card.append(el('div', { class: 'castray-error' }, error));
    }
    if (open) {
      card.append(this.nodeTable(mine));
    }
    return card;
  }

  private jobLine(cluster: ICluster): HTMLElement {
    const mine = this.jobs.filter(j => j.cluster === cluster.name);
    const count = (...statuses: string[]) => mine.filter(j => statuses.includes(j.status)).length;
    const part = (key: string, n: number, label: string) => el('span', { 'data-jobs': key }, `${n} ${label}`);
    return el(
      'div',
      { class: 'castray-line castray-jobs' },
      'jobs: ',
      part('running', count('RUNNING', 'PENDING'), 'running'),
      ' · ',
      part('succeeded', count('SUCCEEDED'), 'succeeded'),
      ' · ',
      part('failed', count('FAILED', 'STOPPED'), 'failed or stopped')
    );
  }

  private nodeTable(nodes: INode[]): HTMLElement {
    const head = el('tr', {}, ...['state', 'IP', 'head', 'CPU', 'GPU', 'memory'].map(h => el('th', {}, h)));
    const rows = nodes.map(n =>
      el(
        'tr',
        { 'data-node-id': n.node_id, 'data-state': n.state, title: n.node_id },
        el('td', { class: `castray-state castray-${n.state.toLowerCase()}` }, n.state),
        el('td', {}, n.node_ip),
        el('td', {}, n.is_head ? 'head' : ''),
        // a node that is not alive uses nothing: its totals would only be noise
        el('td', {}, n.state === 'ALIVE' ? used(n.CPU_used, n.CPU) : '-'),
        el('td', {}, n.state === 'ALIVE' ? used(n.GPU_used, n.GPU) : '-'),
        el('td', {}, n.state === 'ALIVE' ? used(n.memory_used_bytes, n.memory_bytes, 'B') : '-')
      )
    );
    return el('table', { class: 'castray-nodes' }, el('thead', {}, head), el('tbody', {}, ...rows));
  }

  private discoveredRow(found: IDiscovered): HTMLElement {
    const row = el(
      'div',
      { class: 'castray-discovered', 'data-session': found.name },
      el('div', { class: 'castray-line' }, el('b', {}, addressOf(found) || found.name)),
      el(
        'div',
        { class: 'castray-line castray-muted' },
        `Ray ${found.ray_version || '?'} · ${found.num_nodes === null ? '?' : found.num_nodes} node(s)` +
          (found.auth_required ? ' · token required' : '')
      ),
      ownerLine(found),
      button('Attach', 'Attach this cluster in the Jupyter server', () => void this.attach(found))
    );
    const error = this.errors.get(found.name);
    if (error) {
      row.append(el('div', { class: 'castray-error' }, error));
    }
    return row;
  }
}

/** Another Unix user's cluster says so, with the user: it is never sent this user's token. */
function ownerLine(cluster: { owner?: string | null; other_user?: boolean }): HTMLElement | string {
  if (!cluster.other_user) {
    return '';
  }
  return el(
    'div',
    {
      class: 'castray-line castray-owner',
      'data-owner': cluster.owner || '',
      title: "Another user's cluster on this machine: your Ray token is never sent to it"
    },
    `owner: ${cluster.owner || '?'} (another user)`
  );
}
