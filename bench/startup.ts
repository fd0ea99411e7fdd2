/**
 * Start-up benchmark (npm run bench:startup): how long the compiled `streamgrad` command
 * takes for `--version` and `--help`, hyperfine-style: a few warm-up runs, then N timed
 * runs of each command, reporting the median, min and max wall time and the median CPU
 * time (user + system, read by the child itself at exit). Bare `node -e 0` is measured
 * the same way beside them, because on a loaded machine node's own start-up dominates:
 * the CLI's cost is the difference. Targets (issue #16): `--version` ≤ 150 ms and
 * `--help` ≤ 300 ms wall.
 *
 * Runs the compiled dist/cli/main.js (`npm run build` first; the npm script does) or the
 * `--bin` given, e.g. an installed package's node_modules/streamgrad/dist/cli/main.js.
 *
 * Usage: npm run bench:startup [-- --runs N --warmup N --bin PATH --json]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    bin: { type: 'string', default: fileURLToPath(new URL('../dist/cli/main.js', import.meta.url)) },
    json: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const warmup = Number(values.warmup);
if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(warmup) || warmup < 0) throw new Error('--runs must be ≥ 1 and --warmup ≥ 0');
if (!existsSync(values.bin)) throw new Error(`${values.bin} not found: run npm run build first`);

// the child prints its own CPU time (user + system, µs) on stderr as it exits
const CPU_PROBE = `data:text/javascript,process.on('exit',()=>{const u=process.cpuUsage();process.stderr.write('\\n@cpu '+(u.user+u.system)+'\\n')})`;

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  readonly targetMs?: number;
}

const CASES: readonly Case[] = [
  { name: 'node -e 0 (baseline)', args: ['-e', '0'] },
  { name: 'streamgrad --version', args: [values.bin, '--version'], targetMs: 150 },
  { name: 'streamgrad --help', args: [values.bin, '--help'], targetMs: 300 },
];

interface Timing {
  readonly name: string;
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly medianCpuMs: number;
  readonly targetMs?: number;
}

function once(c: Case): { wallMs: number; cpuMs: number } {
  const started = performance.now();
  const child = spawnSync(process.execPath, ['--import', CPU_PROBE, ...c.args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const wallMs = performance.now() - started;
  if (child.status !== 0) throw new Error(`${c.name} exited with ${child.status}: ${child.stderr}`);
  const cpu = /@cpu (\d+)/.exec(child.stderr);
  if (cpu === null) throw new Error(`${c.name}: no CPU report`);
  return { wallMs, cpuMs: Number(cpu[1]) / 1000 };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const timings: Timing[] = [];
for (const c of CASES) {
  for (let i = 0; i < warmup; i++) once(c);
  const samples = Array.from({ length: runs }, () => once(c));
  const walls = samples.map((s) => s.wallMs);
  timings.push({
    name: c.name, medianMs: median(walls), minMs: Math.min(...walls), maxMs: Math.max(...walls),
    medianCpuMs: median(samples.map((s) => s.cpuMs)), ...(c.targetMs !== undefined && { targetMs: c.targetMs }),
  });
}

if (values.json) {
  process.stdout.write(`${JSON.stringify({ node: process.versions.node, runs, warmup, bin: values.bin, timings })}\n`);
} else {
  const baseline = timings[0];
  process.stdout.write(`node ${process.versions.node}, ${runs} runs after ${warmup} warm-up, ${values.bin}\n\n`);
  process.stdout.write('case                      wall median   min      max      cpu median  over node   target\n');
  for (const t of timings) {
    const delta = t.medianMs - baseline.medianMs;
    const over = t === baseline ? '' : `${delta < 0 ? '−' : '+'}${Math.abs(delta).toFixed(0)} ms`;
    const target = t.targetMs === undefined ? '' : `${t.medianMs <= t.targetMs ? 'ok' : 'OVER'} (≤ ${t.targetMs} ms)`;
    process.stdout.write(`${t.name.padEnd(26)}${`${t.medianMs.toFixed(0)} ms`.padEnd(14)}${`${t.minMs.toFixed(0)} ms`.padEnd(9)}${`${t.maxMs.toFixed(0)} ms`.padEnd(9)}${`${t.medianCpuMs.toFixed(0)} ms`.padEnd(12)}${over.padEnd(12)}${target}\n`);
  }
}
