import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Builds the dashboard before any test runs (about a third of a second), so the browser
 * tests never see a stale bundle, however vitest was started.
 */
export default function setup(): void {
  const script = fileURLToPath(new URL('../../clients/dashboard/build.mjs', import.meta.url));
  execFileSync(process.execPath, [script], { stdio: ['ignore', 'ignore', 'inherit'] });
}
