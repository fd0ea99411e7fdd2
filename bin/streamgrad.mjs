#!/usr/bin/env node
// The development launcher of `streamgrad` in this repository (the tests spawn it): runs the
// TypeScript sources with tsx (a dev dependency), so changes need no build. The published
// package's `bin` is the compiled dist/cli/main.js, which runs on plain node.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
