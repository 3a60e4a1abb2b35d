/**
 * The README's plot: dump wall time against the number of keys on the device, ours and
 * OpenSC's (without and with its warm file cache), on the latency model. A plain SVG written by
 * bench/model.bench.ts; no dependency.
 */
import { writeFileSync } from 'node:fs';

export interface DumpPoint {
  keys: number;
  /** What the device holds, e.g. "38 RSA-2048 keys". */
  label: string;
  /** Wall times in ms. */
  ours: number;
  theirs: number;
  cached: number;
}

const W = 640;
const H = 360;
const PAD = { left: 64, right: 170, top: 30, bottom: 48 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A "nice" axis maximum: 1, 2 or 5 times a power of ten at or above `v`. */
function niceMax(v: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(v, 1e-9)));
  return ([1, 2, 5, 10].map((m) => m * p).find((m) => m >= v) ?? 10 * p) as number;
}

/** Writes the SVG of `points` (sorted by key count) to `path`. */
export function writeDumpPlot(path: string, points: DumpPoint[]): void {
  const pts = [...points].sort((a, b) => a.keys - b.keys);
  const maxX = niceMax(Math.max(...pts.map((p) => p.keys)));
  const maxY = niceMax(Math.max(...pts.flatMap((p) => [p.ours, p.theirs, p.cached])) / 1000);
  const x = (k: number) => PAD.left + (k / maxX) * (W - PAD.left - PAD.right);
  const y = (ms: number) => H - PAD.bottom - (ms / 1000 / maxY) * (H - PAD.top - PAD.bottom);
  const series = [
    { key: 'ours', name: 'sc-hsm-ts dump', color: '#1f77b4' },
    { key: 'theirs', name: 'pkcs15-tool --dump', color: '#d62728' },
    { key: 'cached', name: 'pkcs15-tool, warm cache', color: '#ff7f0e' },
  ] as const;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - 60}" y="18" text-anchor="middle" font-size="14">dump wall time vs keys on the device (latency model: nitrokey-hsm2)</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (maxY * i) / 5;
    const yy = y(v * 1000);
    out.push(
      `<line x1="${PAD.left}" y1="${yy}" x2="${W - PAD.right}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${PAD.left - 6}" y="${yy + 4}" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)} s</text>`,
    );
    const k = (maxX * i) / 5;
    out.push(`<text x="${x(k)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${k.toFixed(0)}</text>`);
  }
  out.push(
    `<line x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}" stroke="black"/>`,
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}" stroke="black"/>`,
    `<text x="${(PAD.left + W - PAD.right) / 2}" y="${H - 12}" text-anchor="middle">keys on the device (each with a certificate)</text>`,
  );
  for (const [i, s] of series.entries()) {
    const line = pts.map((p) => `${x(p.keys).toFixed(1)},${y(p[s.key]).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${line}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of pts)
      out.push(
        `<circle cx="${x(p.keys).toFixed(1)}" cy="${y(p[s.key]).toFixed(1)}" r="3.5" fill="${s.color}"><title>${esc(
          `${s.name}, ${p.label}: ${(p[s.key] / 1000).toFixed(2)} s`,
        )}</title></circle>`,
      );
    const ly = PAD.top + 10 + i * 20;
    out.push(
      `<line x1="${W - PAD.right + 12}" y1="${ly}" x2="${W - PAD.right + 32}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${W - PAD.right + 38}" y="${ly + 4}">${esc(s.name)}</text>`,
    );
  }
  out.push('</svg>');
  writeFileSync(path, `${out.join('\n')}\n`);
}
