/**
 * The sidebar's view: attached clusters as cards, clusters discovered but not attached,
 * and an address box. It only renders the model (plain DOM in a Lumino widget) and runs
 * commands; it fetches nothing itself. Shown, it makes the model active; hidden, the
 * model rests.
 */
import { CommandRegistry } from '@lumino/commands';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import type { ICluster, IDiscovered, IEnded, IJob, INode, IRecent, Location } from './api';
import { CommandIDs } from './commands';
import { addressOf, clock, counts, stamp, used } from './format';
import { ClustersModel } from './model';
import { sparklines } from './spark';

/** Ended clusters listed, the most recently seen first (the rest are counted). */
const ENDED_SHOWN = 10;

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

export class CastraySidebar extends Widget {
  readonly addressBox: HTMLInputElement;
  private readonly connectLine: HTMLDivElement;
  private readonly statusLine: HTMLDivElement;
  private readonly body: HTMLDivElement;
  /** Buttons made once (not with each render): their state follows their commands'. */
  private readonly fixed: { button: HTMLButtonElement; command: string; args: ReadonlyPartialJSONObject }[] = [];
  private _shown = new Signal<this, void>(this);

  constructor(
    readonly model: ClustersModel,
    private readonly commands: CommandRegistry
  ) {
    super();
    this.id = 'castray-sidebar';
    this.addClass('castray-sidebar');
    this.title.caption = 'Ray clusters (castray_nb)';
    this.addressBox = el('input', {
      class: 'jp-mod-styled castray-address',
      placeholder: 'host:port or URL',
      title: 'A cluster to attach: host:port (its GCS), http://host:port (its dashboard) or a Ray session name',
      'aria-label': 'cluster address'
    });
    this.addressBox.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.run(CommandIDs.connect, { fromButton: true });
      }
    });
    this.connectLine = el('div', { class: 'castray-error castray-connect-error', role: 'alert' });
    this.statusLine = el('div', { class: 'castray-status' });
    this.body = el('div', { class: 'castray-body' });
    const header = el(
      'div',
      { class: 'castray-header' },
      el('div', { class: 'castray-title' }, 'Ray clusters'),
      this.fixedButton('Discover', CommandIDs.discover)
    );
    const connect = el(
      'div',
      { class: 'castray-connect' },
      this.addressBox,
      this.fixedButton('Connect', CommandIDs.connect, { fromButton: true })
    );
    this.node.append(header, connect, this.connectLine, this.statusLine, this.body);
    model.changed.connect(this.render, this);
    model.follow(() => this.isAttached && this.isVisible);
    commands.commandChanged.connect(this.refreshButtons, this);
    this.render();
  }

  private fixedButton(label: string, command: string, args: ReadonlyPartialJSONObject = {}): HTMLButtonElement {
    const button = this.button(label, command, args);
    this.fixed.push({ button, command, args });
    return button;
  }

  /** The buttons made once take their commands' state (enabled, caption) again. */
  private refreshButtons(): void {
    for (const { button, command, args } of this.fixed) {
      button.title = this.commands.caption(command, args);
      button.disabled = !this.commands.isEnabled(command, args);
    }
  }

  /** Emitted each time the sidebar is shown. */
  get shown(): ISignal<this, void> {
    return this._shown;
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.model.sync();
  }

  protected onAfterDetach(msg: Message): void {
    super.onAfterDetach(msg);
    this.model.sync();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.sync();
    this._shown.emit();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.sync();
  }

  dispose(): void {
    this.model.changed.disconnect(this.render, this);
    this.commands.commandChanged.disconnect(this.refreshButtons, this);
    super.dispose();
  }

  private run(command: string, args: ReadonlyPartialJSONObject = {}): void {
    void this.commands.execute(command, args).catch(error => {
      const name = typeof args.name === 'string' ? args.name : null;
      if (name) {
        this.model.setError(name, (error as Error).message);
      } else {
        this.model.notice = (error as Error).message;
        this.model.emit();
      }
    });
  }

  /** A button that runs ``command`` with ``args``: its label, and the command's caption as its title. */
  private button(label: string, command: string, args: ReadonlyPartialJSONObject = {}): HTMLButtonElement {
    const b = el('button', { class: 'jp-Button castray-button', type: 'button', 'data-command': command }, label);
    b.title = this.commands.caption(command, args);
    b.disabled = !this.commands.isEnabled(command, args);
    b.addEventListener('click', () => this.run(command, args));
    return b;
  }

  render(): void {
    this.refreshButtons();
    const m = this.model;
    this.connectLine.textContent = m.connectError;
    let status = m.socketOpen ? 'live' : m.active ? 'connecting…' : 'resting';
    if (m.busy) {
      status = 'working…';
    } else if (m.reconnecting) {
      status = 'reconnecting…'; // the server went away: its error would only say so less plainly
    } else if (m.reloadError || m.notice) {
      status = m.reloadError || m.notice;
    }
    this.statusLine.textContent = status;
    this.statusLine.dataset.state = m.socketOpen && !m.reloadError ? 'live' : 'down';
    const attachedSessions = new Set(m.clusters.map(c => c.session_name));
    const cards = m.clusters.map(c => this.card(c));
    const parts: Node[] = [
      el('div', { class: 'castray-section' }, `Attached (${m.clusters.length})`),
      ...(cards.length ? cards : [el('div', { class: 'castray-empty' }, 'No cluster attached. Discover, or type an address.')])
    ];
    // Each cluster once: a remembered one that discovery finds live is shown under Recent, with what it found.
    const recent = m.recent.filter(r => !r.attached);
    const live = new Map<string, IDiscovered>();
    for (const entry of recent) {
      const found = (m.discovered || []).find(
        d => d.gcs_address === entry.address || d.dashboard_url === entry.address
      );
      if (found) {
        live.set(entry.address, found);
      }
    }
    const shownAsRecent = new Set([...live.values()]);
    if (m.discovered !== null || m.discoverError) {
      const others = (m.discovered || []).filter(d => !attachedSessions.has(d.name) && !shownAsRecent.has(d));
      parts.push(el('div', { class: 'castray-section' }, `Discovered, not attached (${others.length})`));
      if (m.discoverError) {
        parts.push(el('div', { class: 'castray-error' }, m.discoverError));
      }
      for (const found of others) {
        parts.push(this.discoveredRow(found));
      }
    }
    if (recent.length) {
      parts.push(el('div', { class: 'castray-section' }, `Recent (${recent.length})`));
      for (const entry of recent) {
        parts.push(this.recentRow(entry, live.get(entry.address)));
      }
    }
    if (m.ended.length) {
      parts.push(el('div', { class: 'castray-section' }, `Ended (${m.ended.length})`));
      parts.push(...m.ended.slice(0, ENDED_SHOWN).map(endedRow));
      if (m.ended.length > ENDED_SHOWN) {
        parts.push(el('div', { class: 'castray-muted' }, `and ${m.ended.length - ENDED_SHOWN} more: castray-nb ended`));
      }
    }
    this.body.replaceChildren(...parts);
  }

  private card(cluster: ICluster): HTMLElement {
    const mine = this.model.nodes.filter(n => n.cluster === cluster.name);
    const c = counts(mine);
    const state = cluster.reachable === null ? 'unknown' : cluster.reachable ? 'reachable' : 'unreachable';
    const open = this.model.expanded.has(cluster.name);
    const args = { name: cluster.name };
    const actions = el(
      'div',
      { class: 'castray-actions' },
      this.button(open ? 'Nodes ▾' : 'Nodes ▸', CommandIDs.toggleNodes, args),
      this.button('Dashboard', CommandIDs.openDashboard, args),
      this.button('Insert code', CommandIDs.insertCode, args),
      this.button('Copy address', CommandIDs.copyAddress, args),
      this.button('Detach', CommandIDs.detach, args)
    );
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
      whereLine(cluster.location),
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
      el('div', { class: 'castray-line' }, `CPU ${c.cpu} · GPU ${c.gpu} · refreshed ${clock(cluster.last_refresh)}`),
      sparklines(this.model.sparklines[cluster.name]),
      jobLine(this.model.jobs.filter(j => j.cluster === cluster.name)),
      actions
    );
    const error =
      this.model.clusterErrors.get(cluster.name) || (cluster.reachable === false ? cluster.error || '' : '');
    if (error) {
      card.append(el('div', { class: 'castray-error' }, error));
    }
    if (open) {
      card.append(nodeTable(mine));
    }
    return card;
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
      whereLine(found.location),
      ownerLine(found),
      this.button('Attach', CommandIDs.attach, { name: found.name })
    );
    const error = this.model.clusterErrors.get(found.name);
    if (error) {
      row.append(el('div', { class: 'castray-error' }, error));
    }
    return row;
  }

  private recentRow(entry: IRecent, found: IDiscovered | undefined): HTMLElement {
    const args = { address: entry.address };
    const now = found
      ? `live: Ray ${found.ray_version || '?'} · ${found.num_nodes === null ? '?' : found.num_nodes} node(s) · `
      : '';
    const row = el(
      'div',
      {
        class: 'castray-recent',
        'data-address': entry.address,
        'data-name': entry.name,
        'data-live': found ? 'true' : 'false'
      },
      el('div', { class: 'castray-line' }, el('b', {}, entry.name), ` · ${entry.address}`),
      el('div', { class: 'castray-line castray-muted' }, `${now}last seen ${stamp(entry.last_seen)}`),
      found ? whereLine(found.location) : '',
      el(
        'div',
        { class: 'castray-actions' },
        this.button('Attach', CommandIDs.attachRecent, args),
        this.button('Forget', CommandIDs.forget, args)
      )
    );
    const error = this.model.clusterErrors.get(entry.address);
    if (error) {
      row.append(el('div', { class: 'castray-error' }, error));
    }
    return row;
  }
}

/** A cluster that ended: what it was, when and why it ended, and its last snapshot. */
function endedRow(gone: IEnded): HTMLElement {
  const snap = gone.snapshot || {};
  const nodes = snap.nodes || [];
  const jobs = snap.jobs || [];
  const count = (...statuses: string[]) => jobs.filter(j => statuses.includes(j.status)).length;
  const c = counts(nodes);
  return el(
    'div',
    { class: 'castray-ended', 'data-session': gone.session_name, 'data-name': gone.name },
    el('div', { class: 'castray-line' }, el('b', {}, gone.name), ` · Ray ${gone.ray_version || '?'}`),
    el(
      'div',
      { class: 'castray-line castray-muted', 'data-ended-at': gone.ended_at },
      `ended ${stamp(gone.ended_at)}` + (gone.ended_reason ? `: ${gone.ended_reason}` : '')
    ),
    el(
      'div',
      { class: 'castray-line castray-muted castray-last-snapshot', 'data-nodes': String(nodes.length) },
      `last seen ${stamp(gone.last_seen)}: ${nodes.length} node(s), ${c.alive} alive, CPU ${c.cpu}, GPU ${c.gpu}` +
        ` · jobs: ${count('SUCCEEDED')} succeeded, ${count('FAILED', 'STOPPED')} failed or stopped`
    )
  );
}

const PLACES: Record<Location, string> = {
  'this-machine': 'this machine',
  'listed-host': 'a listed host (hosts setting)',
  address: 'another machine, by address',
  'plug-in': 'another machine, from a discovery plug-in',
  recent: 'another machine, attached before'
};

/** Where the cluster is: this machine, a listed host, a plug-in's, a recent one. */
function whereLine(location: Location | undefined): HTMLElement | string {
  if (!location) {
    return '';
  }
  return el('div', { class: 'castray-line castray-muted castray-where', 'data-location': location }, `on ${PLACES[location]}`);
}

function jobLine(jobs: IJob[]): HTMLElement {
  const count = (...statuses: string[]) => jobs.filter(j => statuses.includes(j.status)).length;
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

function nodeTable(nodes: INode[]): HTMLElement {
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
  // In a narrow sidebar the table scrolls inside its card rather than running past its edge.
  return el(
    'div',
    { class: 'castray-nodes-wrap' },
    el('table', { class: 'castray-nodes' }, el('thead', {}, head), el('tbody', {}, ...rows))
  );
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
