/**
 * How the sidebar writes things: addresses, counts, sizes and times. Times are written
 * as the kernel and the CLI write them, in UTC and saying so.
 */
import type { INode } from './api';

export type Counts = { alive: number; dead: number; unreachable: number; cpu: number; gpu: number };

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

export function used(value: number | null, total: number, unit = ''): string {
  const fmt = (x: number) => (unit === 'B' ? bytes(x) : `${Math.round(x * 10) / 10}`);
  if (!total) {
    return '-';
  }
  return value === null ? `? / ${fmt(total)}` : `${fmt(value)} / ${fmt(total)}`;
}

export function bytes(x: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i += 1;
  }
  return `${x.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** ``14:03:07 UTC`` from an ISO 8601 time; ``not yet`` for none. */
export function clock(iso: string | null): string {
  if (!iso) {
    return 'not yet';
  }
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? '?' : `${when.toISOString().slice(11, 19)} UTC`;
}

/** ``12-01 14:03:07 UTC`` (a time with its day, for lists that span days); ``-`` for none. */
export function stamp(iso: string | null): string {
  if (!iso) {
    return '-';
  }
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? '?' : `${when.toISOString().slice(5, 10)} ${when.toISOString().slice(11, 19)} UTC`;
}
