import { mkdirSync, writeFileSync } from 'node:fs';
import type { Spread } from './stats.ts';

export interface Row {
  figure: string;
  value: Spread;
  unit: string;
  /** The goal, in words, with the limit it is measured against. */
  goal?: string;
  /** figure / limit, and the ratio the goal asks for. */
  ratio?: number;
  wanted?: { atLeast?: number; atMost?: number };
  verdict: 'met' | 'MISSED' | 'info';
}

const fmt = (n: number) =>
  Number.isNaN(n)
    ? 'n/a'
    : n >= 100
      ? Math.round(n).toLocaleString('en-US')
      : n >= 10
        ? n.toFixed(1)
        : n.toFixed(2);

export function formatValue(row: Row): string {
  const { median, min, max } = row.value;
  return min === max ? `${fmt(median)} ${row.unit}` : `${fmt(median)} ${row.unit} (${fmt(min)}–${fmt(max)})`;
}

export function markdownTable(rows: Row[]): string {
  const lines = [
    '| figure | median (min–max) | goal | ratio | verdict |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.figure} | ${formatValue(r)} | ${r.goal ?? ''} | ${r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`} | ${r.verdict} |`,
    ),
  ];
  return lines.join('\n');
}

/** A horizontal bar per goal: its ratio against the goal's threshold (the dashed line). */
export function svgChart(rows: Row[]): string {
  const goals = rows.filter((r) => r.ratio !== undefined && r.wanted);
  const width = 900;
  const barArea = 420;
  const rowHeight = 26;
  const height = 40 + goals.length * rowHeight;
  const maxRatio = Math.max(2, ...goals.map((r) => r.ratio as number));
  const x = (ratio: number) => 440 + (ratio / maxRatio) * barArea;
  const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const bars = goals.map((r, i) => {
    const y = 30 + i * rowHeight;
    const threshold = (r.wanted?.atLeast ?? r.wanted?.atMost) as number;
    const colour = r.verdict === 'met' ? '#2e7d32' : '#c62828';
    return [
      `<text x="430" y="${y + 14}" text-anchor="end" font-size="12">${escapeXml(r.figure)}</text>`,
      `<rect x="440" y="${y}" width="${Math.max(1, x(r.ratio as number) - 440).toFixed(1)}" height="18" fill="${colour}"/>`,
      `<line x1="${x(threshold)}" y1="${y - 2}" x2="${x(threshold)}" y2="${y + 20}" stroke="#000" stroke-dasharray="3,2"/>`,
      `<text x="${x(r.ratio as number) + 4}" y="${y + 14}" font-size="11">${(r.ratio as number).toFixed(2)}×</text>`,
    ].join('');
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" role="img" aria-label="npm run bench: each figure as a ratio of its limit">
<title>npm run bench: each figure as a ratio of its limit (dashed: the goal)</title>
<text x="10" y="18" font-size="14">npm run bench: each figure as a ratio of its limit (dashed: the goal)</text>
${bars.join('\n')}
</svg>
`;
}

export function writeResults(dir: string, rows: Row[], meta: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/latest.json`, `${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
  writeFileSync(`${dir}/latest.svg`, svgChart(rows));
}
