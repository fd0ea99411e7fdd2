/**
 * The server's own CPU per WebSocket handshake (issue 17 item 6), without training: `serve()`
 * with W2 added (not started) in this process, a child (bench/server.ts's burst client:
 * raw handshakes on plain TCP) opening N connections at once, R times; printed per burst:
 * the server thread's CPU over the burst per connection (and the process's, which adds V8's
 * compiler and GC threads). CPU time holds on a loaded machine
 * where latencies do not, so this is the A/B measure for changes to the upgrade path.
 *
 * With W > 0 the server warms up first (`warmUpHandshakes: W`, as the CLI's server does with
 * 1000) and the bursts start once it has; its CPU is printed.
 *
 * Usage: node --import tsx/esm bench/burst-cpu.ts [N=500] [R=8] [W=0]
 */
import { readFileSync } from 'node:fs';
import { serve } from '../server/server.ts';
import { forkSelf, sleep, w2Run } from './harness.ts';

type FromBurst = { readonly type: 'ready' } | { readonly type: 'burst'; readonly start: number; readonly end: number; readonly opened: number; readonly failed: number; readonly cpuMs: number } | { readonly type: 'dropped' };

/** CPU ms of the calling thread so far (Linux /proc schedstat: time on a CPU, in ns). */
function threadCpuMs(): number {
  return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ', 1)[0]) / 1e6;
}

const n = Number(process.argv[2] ?? 500), rounds = Number(process.argv[3] ?? 8), warmUp = Number(process.argv[4] ?? 0);
const warmCpu = threadCpuMs();
const server = await serve({ port: 0, maxClients: n + 100, warmUpHandshakes: warmUp });
while (server.stats.warmUpHandshakes < warmUp) await sleep(5);
if (warmUp > 0) process.stderr.write(`warm-up: ${warmUp} handshakes, server thread CPU ${(threadCpuMs() - warmCpu).toFixed(0)} ms (its client side included)\n`);
const { run } = w2Run();
server.addRun(run);
const burster = forkSelf<FromBurst>(new URL('./server.ts', import.meta.url).href, ['--burst', server.wsUrl, server.url]);
await burster.next('ready');
const perConnection: number[] = [];
for (let r = 0; r < rounds; r++) {
  await sleep(300);
  const cpu = process.cpuUsage(), thread = threadCpuMs();
  burster.kid.send({ type: 'burst', n });
  const burst = await burster.next('burst');
  const used = process.cpuUsage(cpu);
  const us = (threadCpuMs() - thread) * 1000 / burst.opened;
  perConnection.push(us);
  process.stderr.write(`burst ${r + 1}: ${burst.opened} opened in ${Math.round(burst.end - burst.start)} ms, server thread CPU ${us.toFixed(0)} µs a connection (the process's, with V8's compiler and GC threads: ${((used.user + used.system) / burst.opened).toFixed(0)} µs), client CPU ${burst.cpuMs.toFixed(0)} ms\n`);
  burster.kid.send({ type: 'drop' });
  await burster.next('dropped');
  while (server.stats.clients > 0) await sleep(20);
}
const rest = perConnection.slice(1).sort((a, b) => a - b);
process.stderr.write(`µs a connection: first ${perConnection[0].toFixed(0)}, median of the rest ${rest[Math.floor(rest.length / 2)].toFixed(0)}, last ${perConnection[perConnection.length - 1].toFixed(0)}\n`);
burster.kid.send({ type: 'exit' });
run.dispose();
await server.close();
