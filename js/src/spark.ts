/**
 * Sparklines: a card's last hour of CPU, GPU and memory as small SVG lines, in the
 * theme's colours (CSS variables, so a theme change recolours them with no redraw).
 */
import type { ISparklines } from './api';

export type SparkKind = 'cpu' | 'gpu' | 'memory';

export const SPARK_KINDS: SparkKind[] = ['cpu', 'gpu', 'memory'];
const LABELS: Record<SparkKind, string> = { cpu: 'CPU', gpu: 'GPU', memory: 'memory' };
const WIDTH = 60;
const HEIGHT = 16;
const SVG = 'http://www.w3.org/2000/svg';

/**
 * The polylines of ``values`` (percentages; null where nothing was read) in a box of
 * ``width`` by ``height``: one ``points`` string per unbroken run, 100 % at the top.
 */
export function sparkRuns(values: (number | null)[], width = WIDTH, height = HEIGHT): string[] {
  const runs: string[][] = [];
  let run: string[] | null = null;
  const dx = values.length > 1 ? width / (values.length - 1) : 0;
  values.forEach((value, i) => {
    if (value === null || !Number.isFinite(value)) {
      run = null;
      return;
    }
    const y = height - (Math.max(0, Math.min(100, value)) / 100) * (height - 1) - 0.5;
    if (!run) {
      run = [];
      runs.push(run);
    }
    run.push(`${(i * dx).toFixed(1)},${y.toFixed(1)}`);
  });
  // A lone reading is a dot: the same point twice, which a round line cap draws.
  return runs.map(r => (r.length === 1 ? `${r[0]} ${r[0]}` : r.join(' ')));
}

/** The newest value of a line, or null. */
export function latest(values: (number | null)[]): number | null {
  for (let i = values.length - 1; i >= 0; i--) {
    const value = values[i];
    if (value !== null && Number.isFinite(value)) {
      return value;
    }
  }
  return null;
}

/** One sparkline: ``<span data-sparkline=KIND>`` holding its SVG and its newest value. */
export function sparkline(kind: SparkKind, lines: ISparklines | undefined): HTMLElement {
  const values = lines ? lines[kind] : [];
  const now = latest(values);
  const box = document.createElement('span');
  box.className = 'castray-spark';
  box.dataset.sparkline = kind;
  box.dataset.points = String(values.filter(v => v !== null).length);
  const label = `${LABELS[kind]} ${now === null ? '–' : `${Math.round(now)}%`}`;
  box.title = `${LABELS[kind]} over the last hour` + (now === null ? ': no reading' : `, now ${now.toFixed(1)}%`);
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', `castray-spark-svg castray-spark-${kind}`);
  svg.setAttribute('width', String(WIDTH));
  svg.setAttribute('height', String(HEIGHT));
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute('aria-hidden', 'true');
  const base = document.createElementNS(SVG, 'line');
  base.setAttribute('class', 'castray-spark-base');
  base.setAttribute('x1', '0');
  base.setAttribute('x2', String(WIDTH));
  base.setAttribute('y1', String(HEIGHT - 0.5));
  base.setAttribute('y2', String(HEIGHT - 0.5));
  svg.append(base);
  for (const points of sparkRuns(values)) {
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('class', 'castray-spark-line');
    line.setAttribute('points', points);
    svg.append(line);
  }
  const text = document.createElement('span');
  text.className = 'castray-spark-label';
  text.textContent = label;
  box.append(svg, text);
  return box;
}

/** A card's three sparklines. */
export function sparklines(lines: ISparklines | undefined): HTMLElement {
  const row = document.createElement('div');
  row.className = 'castray-line castray-sparks';
  row.append(...SPARK_KINDS.map(kind => sparkline(kind, lines)));
  return row;
}
