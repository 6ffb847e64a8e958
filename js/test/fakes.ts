/** A fake server for the model and the commands: it counts what is asked of it. */
import type { ICluster, IDiscovered, IEnded, IEvent, IJob, INode, IRecent, ISparklines } from '../src/api';
import { IApi, ISocket, SocketFactory } from '../src/model';

export function cluster(name: string, more: Partial<ICluster> = {}): ICluster {
  return {
    name,
    gcs_address: `127.0.0.1:${6379 + name.length}`,
    dashboard_url: 'http://127.0.0.1:8265',
    dashboard_link: `/castray/dashboard/${name}/cap-x/`,
    ray_version: '2.60.0',
    reachable: true,
    session_name: `session_${name}`,
    via: 'dashboard',
    last_refresh: '2026-12-01T14:03:07.123456+00:00',
    error: null,
    num_nodes: 1,
    alive_nodes: 1,
    ...more
  };
}

export class FakeApi implements IApi {
  calls: string[] = [];
  attached: ICluster[] = [];
  found: IDiscovered[] = [];
  remembered: IRecent[] = [];
  lines: Record<string, ISparklines> = {};
  gone: IEnded[] = [];
  failing = new Set<string>();
  /** Resolves the next connect/detach only when released (to overlap actions). */
  hold: Promise<void> | null = null;

  count(kind: string): number {
    return this.calls.filter(c => c.split(' ')[0] === kind).length;
  }

  private async answer<T>(call: string, value: () => T): Promise<T> {
    this.calls.push(call);
    if (this.hold && (call.startsWith('connect') || call.startsWith('detach'))) {
      await this.hold;
    }
    const kind = call.split(' ')[0];
    if (this.failing.has(kind)) {
      throw new Error(`${kind} failed: the server said no`);
    }
    return value();
  }

  clusters(): Promise<ICluster[]> {
    return this.answer('clusters', () => this.attached);
  }
  nodes(): Promise<INode[]> {
    return this.answer('nodes', () => []);
  }
  jobs(): Promise<IJob[]> {
    return this.answer('jobs', () => []);
  }
  discover(): Promise<IDiscovered[]> {
    return this.answer('discover', () => this.found);
  }
  recent(): Promise<IRecent[]> {
    return this.answer('recent', () => this.remembered);
  }
  sparklines(): Promise<Record<string, ISparklines>> {
    return this.answer('sparklines', () => this.lines);
  }
  ended(): Promise<IEnded[]> {
    return this.answer('ended', () => this.gone);
  }
  forget(address: string): Promise<unknown> {
    return this.answer(`forget ${address}`, () => {
      this.remembered = this.remembered.filter(r => r.address !== address);
      return { forgotten: [] };
    });
  }
  connect(address: string): Promise<ICluster> {
    return this.answer(`connect ${address}`, () => cluster(address));
  }
  detach(name: string): Promise<unknown> {
    return this.answer(`detach ${name}`, () => ({ detached: [name] }));
  }
}

/** The events sockets the model opened, to speak through and to see closed. */
export class FakeSockets {
  opened: { interval: number; closed: boolean; send: (event: IEvent) => void; drop: () => void }[] = [];

  get factory(): SocketFactory {
    return (interval, onMessage, onOpen, onClose): ISocket => {
      const socket = {
        interval,
        closed: false,
        send: onMessage,
        drop: () => {
          socket.closed = true; // the server went away
          onClose();
        }
      };
      this.opened.push(socket);
      setTimeout(onOpen, 0);
      return {
        close: () => {
          socket.closed = true;
        }
      };
    };
  }

  get open(): number {
    return this.opened.filter(s => !s.closed).length;
  }

  get last(): FakeSockets['opened'][number] {
    return this.opened[this.opened.length - 1];
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

export async function until(what: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) {
      throw new Error('timed out waiting');
    }
    await sleep(10);
  }
}
