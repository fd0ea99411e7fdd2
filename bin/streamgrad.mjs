#!/usr/bin/env node
// The `streamgrad` command: compiles the TypeScript sources on the fly with tsx (a runtime
// dependency), so it works straight after `npm install`, without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
