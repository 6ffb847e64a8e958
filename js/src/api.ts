/**
 * The server extension's REST API and events socket, under Jupyter's base URL and auth
 * (ServerConnection adds the token or the XSRF header, as for Jupyter's own API).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface ICluster {
  name: string;
  gcs_address: string | null;
  dashboard_url: string | null;
  dashboard_link: string | null;
  ray_version: string | null;
  reachable: boolean | null;
  session_name: string | null;
  via: string | null;
  last_refresh: string | null;
  error: string | null;
  num_nodes: number;
  alive_nodes: number;
  owner?: string | null; // the Unix user running it on this machine (null elsewhere)
  other_user?: boolean; // another user's: never sent the user's Ray token
}

export interface IDiscovered {
  name: string; // the session name
  gcs_address: string | null;
  dashboard_url: string | null;
  ray_version: string | null;
  num_nodes: number | null;
  auth_required: boolean;
  owner?: string | null;
  other_user?: boolean;
}

export interface INode {
  cluster: string;
  node_id: string;
  node_ip: string;
  is_head: boolean;
  state: string;
  CPU: number;
  GPU: number;
  memory_bytes: number;
  CPU_used: number | null;
  GPU_used: number | null;
  memory_used_bytes: number | null;
}

export interface IJob {
  cluster: string;
  job_id: string | null;
  submission_id: string | null;
  type: string;
  status: string;
}

export interface IEvent {
  type: 'hello' | 'event';
  kind?: string;
  cluster?: string;
  node_id?: string | null;
  detail?: string;
}

/** An error the API answered: its one-line message, never its JSON. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string
  ) {
    super(message);
  }
}

export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'castray/api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError('the Jupyter server does not answer', 'network');
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data && typeof data.message === 'string' ? data.message : `HTTP ${response.status}`;
    throw new ApiError(message.split('\n')[0], (data && data.error) || 'error');
  }
  return data as T;
}

export const api = {
  clusters: () => request<{ clusters: ICluster[] }>('cluster/external-info').then(r => r.clusters),
  nodes: () => request<{ nodes: INode[] }>('nodes/external?refresh=false').then(r => r.nodes),
  /** The jobs the server's watch last read (the socket asks it to read them). */
  jobs: () =>
    request<{ jobs: IJob[]; skipped: Record<string, string> }>('jobs?refresh=false').then(r => r.jobs),
  discover: () =>
    request<{ clusters: IDiscovered[] }>('cluster/discover-external', { method: 'POST', body: '{}' }).then(
      r => r.clusters
    ),
  connect: (address: string, name?: string) =>
    request<{ cluster: ICluster }>('cluster/connect-external', {
      method: 'POST',
      body: JSON.stringify(name ? { cluster_address: address, name } : { cluster_address: address })
    }).then(r => r.cluster),
  detach: (name: string) =>
    request<{ detached: string[] }>(`cluster/disconnect-external?name=${encodeURIComponent(name)}`, {
      method: 'DELETE'
    })
};

/**
 * The events socket, opened again whenever it drops (1 s, then up to 10 s apart).
 * ``onMessage`` gets the hello and each event; ``onState`` says whether it is open.
 */
export class EventSocket {
  private socket: WebSocket | null = null;
  private retry = 1000;
  private timer = 0;
  private stopped = false;

  constructor(
    private interval: () => number,
    private onMessage: (event: IEvent) => void,
    private onState: (open: boolean) => void
  ) {}

  start(): void {
    this.stopped = false;
    this.open();
  }

  /** Open again now (a new interval, or the server came back). */
  restart(): void {
    this.socket?.close();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.socket?.close();
    this.socket = null;
  }

  private open(): void {
    const settings = ServerConnection.makeSettings();
    let url = URLExt.join(settings.wsUrl, 'castray/api/events') + `?interval=${this.interval()}&jobs=true`;
    if (settings.appendToken && settings.token) {
      url += `&token=${encodeURIComponent(settings.token)}`;
    }
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      this.retry = 1000;
      this.onState(true);
    };
    socket.onmessage = message => {
      try {
        this.onMessage(JSON.parse(message.data));
      } catch {
        // not ours to understand
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket) {
        return;
      }
      this.socket = null;
      this.onState(false);
      if (!this.stopped) {
        this.timer = window.setTimeout(() => this.open(), this.retry);
        this.retry = Math.min(this.retry * 2, 10000);
      }
    };
  }
}
