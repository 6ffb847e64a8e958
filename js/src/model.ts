/**
 * The sidebar's model: what the server says about its clusters, fetched here and only
 * here; views render it and commands change it (dask-labextension's shape).
 *
 * It rests when nobody looks. While the sidebar is hidden (collapsed, or the browser tab
 * in the background) its poll stands by and its events socket is closed, so the server
 * reads no cluster on this page's behalf and the page sends nothing. While it is shown,
 * one poll refreshes the cluster list and the jobs every interval (both answered from the
 * server's memory; with backoff when the server does not answer) and keeps the events
 * socket open; each event refreshes only what it concerns: node events the nodes, job
 * events the jobs.
 */
import { IDisposable } from '@lumino/disposable';
import { Debouncer, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import type { ICluster, IDiscovered, IEnded, IEvent, IJob, INode, IRecent, ISparklines } from './api';

/** What the model needs of the server (``api`` in the page, a fake in the tests). */
export interface IApi {
  clusters(): Promise<ICluster[]>;
  nodes(): Promise<INode[]>;
  jobs(): Promise<IJob[]>;
  discover(): Promise<IDiscovered[]>;
  connect(address: string, name?: string): Promise<ICluster>;
  detach(name: string): Promise<unknown>;
  recent(): Promise<IRecent[]>;
  forget(nameOrAddress: string): Promise<unknown>;
  sparklines(): Promise<Record<string, ISparklines>>;
  ended(): Promise<IEnded[]>;
}

/** An open events socket, as the model sees it. */
export interface ISocket {
  close(): void;
}

/** Opens the events socket; ``onClose`` is called once when it closes, for any reason. */
export type SocketFactory = (
  interval: number,
  onMessage: (event: IEvent) => void,
  onOpen: () => void,
  onClose: () => void
) => ISocket;

export interface IModelOptions {
  api: IApi;
  openSocket: SocketFactory;
  /** Seconds between refreshes of the cluster list while shown. */
  interval: () => number;
  /** Longest wait between tries while the server does not answer (ms). */
  maxBackoff?: number;
}

/** Which parts of the model a fetch or an event concerns (``history``: the sparklines). */
export type Part = 'clusters' | 'nodes' | 'jobs' | 'recent' | 'history' | 'ended';

const ALL_PARTS: Part[] = ['clusters', 'nodes', 'jobs', 'recent', 'history', 'ended'];

/**
 * How often a round of the schedule also fetches the sparklines and the ended clusters
 * (ms): the history's points are a minute apart, and a cluster ends after it has been
 * unreachable (which is an event of its own).
 */
export const HISTORY_EVERY_MS = 30_000;

/** What an event concerns (``hello``: everything). */
export function concerns(event: IEvent): Part[] {
  if (event.type === 'hello') {
    return ALL_PARTS;
  }
  const kind = event.kind || '';
  if (kind.startsWith('node_')) {
    return ['clusters', 'nodes'];
  }
  if (kind.startsWith('job_')) {
    return ['jobs'];
  }
  if (kind === 'cluster_attached' || kind === 'cluster_detached') {
    return ALL_PARTS;
  }
  if (kind === 'cluster_unreachable' || kind === 'cluster_recovered') {
    return ['clusters', 'nodes', 'ended'];
  }
  return []; // cluster_discovered: nothing on show changes
}

export class ClustersModel implements IDisposable {
  clusters: ICluster[] = [];
  nodes: INode[] = [];
  jobs: IJob[] = [];
  /** Clusters attached before, from any front end (fetched on show, and when attachments change). */
  recent: IRecent[] = [];
  /** The last hour of each recorded cluster's usage, by cluster name (the history). */
  sparklines: Record<string, ISparklines> = {};
  /** Clusters that ended, with their last snapshot (the history). */
  ended: IEnded[] = [];
  /** null until the first discovery. */
  discovered: IDiscovered[] | null = null;
  /** Errors of one attached or discovered cluster, by its name. */
  readonly clusterErrors = new Map<string, string>();
  discoverError = '';
  connectError = '';
  reloadError = '';
  /** A problem outside any cluster (settings that could not be loaded). */
  notice = '';
  /** Clusters whose node list is open (the only time node usage is fetched each round). */
  readonly expanded = new Set<string>();
  socketOpen = false;
  /** The socket dropped (the server went away) and is not open again yet. */
  reconnecting = false;

  private _active = false;
  private _shown: (() => boolean) | null = null;
  private _pending = 0;
  private _stale = new Set<Part>(ALL_PARTS);
  private _historyAt = 0;
  private _socket: ISocket | null = null;
  private _socketInterval = 0;
  private _changed = new Signal<this, void>(this);
  private _disposed = false;
  private readonly _poll: Poll;
  private readonly _soon: Debouncer;

  constructor(private readonly options: IModelOptions) {
    // Started at once: standing by while no view shows the model, it only checks each
    // interval whether one does (no request).
    this._poll = new Poll({
      auto: true,
      factory: state => this.tick(state.phase === 'refreshed'),
      frequency: { interval: this.intervalMs(), backoff: true, max: options.maxBackoff ?? 30_000 },
      name: 'castray-nb:clusters',
      standby: () => {
        if (this._shown && this._shown() !== this._active) {
          setTimeout(() => this.sync(), 0); // a missed show or hide costs one round at most
        }
        return this._active ? 'when-hidden' : true;
      }
    });
    this._soon = new Debouncer(() => this._poll.refresh(), 50);
    if (typeof document !== 'undefined') {
      document.addEventListener('visibilitychange', this._onVisibility);
    }
  }

  /** The browser tab went to the background: close the socket too (the poll stands by by itself). */
  private _onVisibility = (): void => {
    if (document.visibilityState === 'hidden') {
      this.closeSocket();
    } else if (this._active) {
      void this._poll.refresh();
    }
  };

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Whether an action (discover, connect, attach, detach) is under way. */
  get busy(): boolean {
    return this._pending > 0;
  }

  /** Whether a view shows the model: only then does it fetch and listen. */
  get active(): boolean {
    return this._active;
  }

  set active(value: boolean) {
    if (value === this._active || this._disposed) {
      return;
    }
    this._active = value;
    if (value) {
      this._stale = new Set<Part>(ALL_PARTS);
      void this._poll.start().then(() => this._poll.refresh());
    } else {
      this.closeSocket();
    }
  }

  /** Follow a view: the model is active exactly while ``shown()`` says the view is shown. */
  follow(shown: () => boolean): void {
    this._shown = shown;
    this.sync();
  }

  /** Take up the followed view's visibility now (its show and hide messages call this). */
  sync(): void {
    if (this._shown) {
      this.active = this._shown();
    }
  }

  /** The interval setting changed: the poll and the socket take it up. */
  intervalChanged(): void {
    this._poll.frequency = { ...this._poll.frequency, interval: this.intervalMs() };
    this.closeSocket();
    if (this._active) {
      void this._poll.refresh();
    }
  }

  /** Fetch what the last events or actions made stale, now (debounced). */
  refreshSoon(...parts: Part[]): void {
    for (const part of parts) {
      this._stale.add(part);
    }
    void this._soon.invoke();
  }

  private intervalMs(): number {
    return Math.max(0.5, this.options.interval()) * 1000;
  }

  /**
   * One round: the socket open, and the cluster list (a round of the schedule) or only
   * what events and actions made stale (a round they asked for).
   */
  private async tick(asked: boolean): Promise<void> {
    if (!this._active || this._disposed) {
      return;
    }
    this.openSocket();
    const wanted = new Set<Part>(this._stale);
    if (!asked) {
      // Both answered from the server's memory. The clusters' state and "refreshed" time
      // change with no event, and so do the jobs the server reads first after the socket
      // opens: it raises job events for changes only, not for the jobs it found.
      wanted.add('clusters');
      wanted.add('jobs');
      if (this.expanded.size) {
        wanted.add('nodes'); // the open node lists show usage, which raises no event
      }
      if (Date.now() - this._historyAt >= HISTORY_EVERY_MS) {
        wanted.add('history');
        wanted.add('ended');
      }
    }
    this._stale.clear();
    const { api } = this.options;
    if (!wanted.size) {
      return;
    }
    try {
      if (wanted.has('history')) {
        this._historyAt = Date.now();
      }
      const [clusters, nodes, jobs, recent, sparklines, ended] = await Promise.all([
        wanted.has('clusters') ? api.clusters() : null,
        wanted.has('nodes') ? api.nodes() : null,
        wanted.has('jobs') ? api.jobs() : null,
        wanted.has('recent') ? api.recent() : null,
        // The history only adds pictures: where it fails the rest still shows (tried again later).
        wanted.has('history') ? api.sparklines().catch(() => null) : null,
        wanted.has('ended') ? api.ended().catch(() => null) : null
      ]);
      this.clusters = clusters ?? this.clusters;
      this.nodes = nodes ?? this.nodes;
      this.jobs = jobs ?? this.jobs;
      this.recent = recent ?? this.recent;
      this.sparklines = sparklines ?? this.sparklines;
      this.ended = ended ?? this.ended;
      this.reloadError = '';
    } catch (error) {
      for (const part of wanted) {
        this._stale.add(part); // fetched again on the next try
      }
      this.reloadError = (error as Error).message;
      this.emit();
      throw error; // the poll backs off
    }
    this.emit();
  }

  private openSocket(): void {
    const interval = this.options.interval();
    if (this._socket && this._socketInterval === interval) {
      return;
    }
    this.closeSocket();
    this._socketInterval = interval;
    const socket = this.options.openSocket(
      interval,
      event => this.onEvent(event),
      () => {
        this.socketOpen = true;
        this.reconnecting = false;
        this.emit();
      },
      () => {
        if (this._socket === socket) {
          this._socket = null;
          this.reconnecting = this.reconnecting || this.socketOpen;
          this.socketOpen = false;
          this.emit(); // the next round opens it again, with the poll's backoff
        }
      }
    );
    this._socket = socket;
  }

  private closeSocket(): void {
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      this.socketOpen = false;
      this.reconnecting = false;
      socket.close();
      this.emit();
    }
  }

  private onEvent(event: IEvent): void {
    const parts = concerns(event);
    if (parts.length) {
      this.refreshSoon(...parts);
    }
  }

  /** Run an action, counted in ``busy``; the parts it changes are fetched after. */
  async act<T>(action: () => Promise<T>, ...changes: Part[]): Promise<T> {
    this._pending += 1;
    this.emit();
    try {
      return await action();
    } finally {
      this._pending -= 1;
      if (changes.length) {
        this.refreshSoon(...changes);
      }
      this.emit();
    }
  }

  async discover(): Promise<void> {
    await this.act(async () => {
      try {
        this.discovered = await this.options.api.discover();
        this.discoverError = '';
      } catch (error) {
        this.discoverError = (error as Error).message;
      }
    });
  }

  /** Attach a typed address; false (and ``connectError``) when it could not be. */
  async connect(address: string, name?: string): Promise<boolean> {
    const text = address.trim();
    if (!text) {
      this.connectError = 'type an address first';
      this.emit();
      return false;
    }
    return this.act(
      async () => {
        try {
          await this.options.api.connect(text, name);
          this.connectError = '';
          return true;
        } catch (error) {
          this.connectError = (error as Error).message;
          return false;
        }
      },
      'clusters',
      'nodes',
      'jobs'
    );
  }

  /** Attach a discovered cluster; its error, if any, stays with it. */
  async attach(found: IDiscovered): Promise<void> {
    await this.act(
      async () => {
        try {
          await this.options.api.connect(found.gcs_address || found.dashboard_url || found.name);
          this.clusterErrors.delete(found.name);
        } catch (error) {
          this.clusterErrors.set(found.name, (error as Error).message);
        }
      },
      'clusters',
      'nodes',
      'jobs'
    );
  }

  /** Attach a remembered cluster again, under the name it had; its error stays with it. */
  async attachRecent(entry: IRecent): Promise<void> {
    await this.act(
      async () => {
        try {
          await this.options.api.connect(entry.address, entry.name);
          this.clusterErrors.delete(entry.address);
        } catch (error) {
          this.clusterErrors.set(entry.address, (error as Error).message);
        }
      },
      'clusters',
      'nodes',
      'jobs',
      'recent'
    );
  }

  /** Forget a remembered cluster (by its address: two may share a name). */
  async forget(entry: IRecent): Promise<void> {
    await this.act(
      async () => {
        try {
          await this.options.api.forget(entry.address);
          this.clusterErrors.delete(entry.address);
        } catch (error) {
          this.clusterErrors.set(entry.address, (error as Error).message);
        }
      },
      'recent'
    );
  }

  async detach(name: string): Promise<void> {
    await this.act(
      async () => {
        try {
          await this.options.api.detach(name);
          this.clusterErrors.delete(name);
          this.expanded.delete(name);
        } catch (error) {
          this.clusterErrors.set(name, (error as Error).message);
        }
      },
      'clusters',
      'nodes',
      'jobs',
      'recent'
    );
  }

  cluster(name: string): ICluster | undefined {
    return this.clusters.find(c => c.name === name);
  }

  /** The cluster list now, whether or not the sidebar is shown (restoring a dashboard tab). */
  async fetchCluster(name: string): Promise<ICluster | undefined> {
    const known = this.cluster(name);
    if (known) {
      return known;
    }
    this.clusters = await this.options.api.clusters();
    this.emit();
    return this.cluster(name);
  }

  toggleNodes(name: string): void {
    if (this.expanded.has(name)) {
      this.expanded.delete(name);
    } else {
      this.expanded.add(name);
      this.refreshSoon('nodes');
    }
    this.emit();
  }

  setError(name: string, error: string | null): void {
    if (error) {
      this.clusterErrors.set(name, error);
    } else {
      this.clusterErrors.delete(name);
    }
    this.emit();
  }

  emit(): void {
    if (!this._disposed) {
      this._changed.emit();
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this.closeSocket();
    this._disposed = true;
    if (typeof document !== 'undefined') {
      document.removeEventListener('visibilitychange', this._onVisibility);
    }
    this._poll.dispose();
    this._soon.dispose();
    Signal.clearData(this);
  }
}
