// findBinary's requiredInCi: a system program missing in CI fails the file, where a
// developer's machine without it skips (what each MQTT test file used to spell out).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { findBinary } from './local-server.ts';

const MISSING = 'sg-no-such-program';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('findBinary', () => {
  it('finds a program in the first place that exists, else on the PATH', () => {
    expect(findBinary('sh', ['/no/such/sh', '/bin/sh'])).toBe('/bin/sh');
    expect(findBinary('sh', [])).toMatch(/\/sh$/);
  });

  it('without CI, a missing program is null (its tests skip), with requiredInCi or not', () => {
    vi.stubEnv('CI', '');
    expect(findBinary(MISSING, [`/no/such/${MISSING}`], { requiredInCi: true })).toBeNull();
    expect(findBinary(MISSING, [])).toBeNull();
  });

  it('in CI, a missing required program throws naming it; one not required is still null', () => {
    vi.stubEnv('CI', 'true');
    expect(() => findBinary(MISSING, [], { requiredInCi: true })).toThrow(`${MISSING} is not installed (.ci/run installs the Debian package)`);
    expect(findBinary(MISSING, [])).toBeNull();
    expect(findBinary('sh', ['/bin/sh'], { requiredInCi: true })).toBe('/bin/sh');
  });
});
