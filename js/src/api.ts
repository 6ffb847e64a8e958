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
  location?: Location;
}

/** Where a cluster is: this machine, or how one elsewhere was named. */
export type Location = 'this-machine' | 'listed-host' | 'address' | 'plug-in' | 'recent';

/** A cluster attached before (the user's store). */
export interface IRecent {
  name: string;
  address: string;
  session_name: string | null;
  sources: string[];
  last_seen: string;
  attached: boolean;
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
  location?: Location;
  sources?: string[];
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

/** One cluster's sparklines: percentages ``step`` seconds apart from ``start`` (null: no reading). */
export interface ISparklines {
  start: number;
  step: number;
  cpu: (number | null)[];
  gpu: (number | null)[];
  memory: (number | null)[];
}

/** A cluster that ended, with what the history kept of it. */
export interface IEnded {
  session_name: string;
  name: string;
  address: string | null;
  ray_version: string | null;
  first_seen: string;
  last_seen: string;
  ended_at: string;
  ended_reason: string | null;
  snapshot: { nodes?: INode[]; alive_nodes?: number; jobs?: IJob[]; taken_at?: string };
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
    }),
  recent: () => request<{ clusters: IRecent[] }>('recent').then(r => r.clusters),
  /** The last hour of each recorded cluster's CPU, GPU and memory, from the history. */
  sparklines: () =>
    request<{ clusters: Record<string, ISparklines> }>('sparklines?since=1h').then(r => r.clusters),
  ended: () => request<{ clusters: IEnded[] }>('ended').then(r => r.clusters),
  forget: (nameOrAddress: string) =>
    request<{ forgotten: unknown[] }>(`recent?name=${encodeURIComponent(nameOrAddress)}`, { method: 'DELETE' })
};

/**
 * Open the events socket (the server watches the clusters while it is open). No retry
 * here: the model opens it again on its next round, with its poll's backoff.
 */
export function openEventSocket(
  interval: number,
  onMessage: (event: IEvent) => void,
  onOpen: () => void,
  onClose: () => void
): { close(): void } {
  const settings = ServerConnection.makeSettings();
  let url = URLExt.join(settings.wsUrl, 'castray/api/events') + `?interval=${interval}&jobs=true`;
  if (settings.appendToken && settings.token) {
    url += `&token=${encodeURIComponent(settings.token)}`;
  }
  const socket = new WebSocket(url);
  let closed = false;
  const done = () => {
    if (!closed) {
      closed = true;
      onClose();
    }
  };
  socket.onopen = () => onOpen();
  socket.onmessage = message => {
    try {
      onMessage(JSON.parse(message.data));
    } catch {
      // not ours to understand
    }
  };
  socket.onclose = done;
  socket.onerror = done;
  return {
    close: () => {
      closed = true; // closed on purpose: no onClose
      socket.close();
    }
  };
}
