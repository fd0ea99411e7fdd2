#!/usr/bin/env node
// Builds the optional native kernels (native/src, a Node-API addon in C) with node-gyp,
// against the headers of the Node that runs this script: `npm install` runs it (the
// package's `install` script, and `prepare`/`pretest` in a clone). Never downloads
// anything: node-gyp gets `--nodedir` pointing at this Node's own include/node, and
// without those headers, without node-gyp or without a compiler the build is skipped.
// Never fails the install either: a failed build leaves one line on stderr, and the
// `auto` backend then uses wasm (pipeline/kernels-native.ts says why).
//
//   node native/build.mjs [--force]      STREAMGRAD_NATIVE_BUILD=0 skips it
//
// Up to date (same sources, flags and Node ABI as the last build) → exits at once.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const addon = join(here, 'build', 'Release', 'streamgrad_native.node');
const stamp = join(here, 'build', 'source-hash');
const note = (why) => process.stderr.write(`streamgrad: native kernels not built (${why}); the auto backend will use wasm\n`);

if (process.env.STREAMGRAD_NATIVE_BUILD === '0') {
  note('STREAMGRAD_NATIVE_BUILD=0');
  process.exit(0);
}

const hash = createHash('sha256');
hash.update(`${process.versions.modules} ${process.platform} ${process.arch}\n`);
hash.update(readFileSync(fileURLToPath(import.meta.url)));
hash.update(readFileSync(join(here, 'binding.gyp')));
for (const f of readdirSync(join(here, 'src')).sort()) hash.update(`${f}\n`).update(readFileSync(join(here, 'src', f)));
const digest = hash.digest('hex').slice(0, 16);
if (!process.argv.includes('--force') && existsSync(addon) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === digest) {
  process.exit(0);
}

/** This Node's headers: $npm_config_nodedir, or the include/node beside the node binary. */
function nodeDir() {
  const candidates = [process.env.npm_config_nodedir, join(dirname(process.execPath), '..')].filter((d) => d);
  return candidates.find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')) && existsSync(join(d, 'include', 'node', 'common.gypi')));
}

/** node-gyp: the one npm runs scripts with ($npm_config_node_gyp), else the copy inside npm. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter((p) => p);
  return candidates.find((p) => existsSync(p));
}

const dir = nodeDir();
if (dir === undefined) { note(`no Node headers beside ${process.execPath} (set npm_config_nodedir)`); process.exit(0); }
const gyp = nodeGyp();
if (gyp === undefined) { note('node-gyp not found'); process.exit(0); }

const started = Date.now();
const result = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${dir}`, '--release', '--loglevel=warn'], {
  cwd: here, encoding: 'utf8', env: { ...process.env, npm_config_nodedir: dir },
});
if (result.status !== 0) {
  const lines = `${result.stderr ?? ''}${result.stdout ?? ''}${result.error ?? ''}`.split('\n').filter((l) => /error:|ERR!/.test(l));
  note(`node-gyp failed: ${(lines[0] ?? `exit ${result.status}`).trim().slice(0, 200)}`);
  process.exit(0);
}
writeFileSync(stamp, `${digest}\n`);
process.stderr.write(`native/build.mjs: built ${addon} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
