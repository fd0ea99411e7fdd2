#!/usr/bin/env node
// The development launcher of `streamgrad` in this repository (the tests spawn it): runs the
// TypeScript sources with tsx (a dev dependency), so changes need no build. The published
// package's `bin` is the compiled dist/cli/main.js, which runs on plain node.
import { readFileSync } from 'node:fs';
import { register } from 'tsx/esm/api';

const [command, ...rest] = process.argv.slice(2);
if (command === '--version' || command === '-v') {
  // answered before tsx compiles anything (cli/main.ts answers it the same way, compiled)
  process.stdout.write(`streamgrad ${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
  process.exit(0);
}
register();
// A command that will serve starts its server thread now, so that the thread loads the
// server while this one loads the command line (server/server-thread-start.ts); a wrong
// guess costs a little CPU, nothing else.
const asks = (name) => rest.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
if (command === 'serve' || (command === 'start' && (asks('serve') || asks('port') || (process.env.PORT ?? '') !== '')) || (command === 'train' && (asks('serve') || asks('port'))) || (command === 'run' && (asks('port') || asks('serve')))) {
  (await import('../server/server-thread-start.ts')).prestartServerThread();
}
await import('../cli/main.ts');
