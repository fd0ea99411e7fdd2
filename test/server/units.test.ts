import { describe, expect, it } from 'vitest';
import { LruMap, RateLimit } from '../../server/limits.ts';
import { DEFAULTS, resolveOptions } from '../../server/options.ts';
import { ownOrigins, tokenMatches } from '../../net/origin.ts';
import { parseStaticPath } from '../../server/static-files.ts';

describe('server building blocks', () => {
  it('options: documented defaults, and each bad value named', () => {
    const config = resolveOptions({ token: 't' });
    expect(config).toMatchObject({ port: 0, host: '127.0.0.1', token: 't', maxPayload: 65536, maxClients: 1000, defaultRateHz: 10, maxRateHz: 30, commandsPerMinute: 100, badMessagesPerMinute: 20, headersTimeoutMs: 10_000, heartbeatMs: 15_000, maxBufferedBytes: 1 << 20, slowClientTimeoutMs: 10_000, maxFragments: 1024 });
    expect(DEFAULTS.maxPayload).toBe(64 * 1024);
    expect(() => resolveOptions({ port: 70000 })).toThrow(/port/);
    expect(() => resolveOptions({ maxPayload: 0 })).toThrow(/maxPayload/);
    expect(() => resolveOptions({ maxRateHz: Number.NaN })).toThrow(/maxRateHz/);
    expect(() => resolveOptions({ token: '' })).toThrow(/token/);
    expect(() => resolveOptions({ allowedOrigins: [''] })).toThrow(/allowedOrigins/);
  });

  it('RateLimit: a burst of perMinute, then refills with time', () => {
    let now = 0;
    const limit = new RateLimit(3, () => now);
    expect([limit.take(), limit.take(), limit.take(), limit.take()]).toEqual([true, true, true, false]);
    now += 20_000; // a third of a minute: one message back
    expect([limit.take(), limit.take()]).toEqual([true, false]);
    now += 10 * 60_000; // never more than the burst
    expect([limit.take(), limit.take(), limit.take(), limit.take()]).toEqual([true, true, true, false]);
  });

  it('LruMap: forgets the least recently used beyond its capacity', () => {
    const lru = new LruMap<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.get('a');
    lru.set('c', 3);
    expect([lru.get('a'), lru.get('b'), lru.get('c'), lru.size]).toEqual([1, undefined, 3, 2]);
  });

  it('LruMap: an entry used again and again stays the most recent; a deleted one is forgotten', () => {
    const lru = new LruMap<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.get('b');
    lru.get('b');
    lru.get('a');
    lru.get('a');
    lru.set('c', 3); // b is the least recently used
    expect([lru.get('a'), lru.get('b'), lru.get('c')]).toEqual([1, undefined, 3]);
    lru.delete('c');
    lru.set('d', 4);
    lru.get('a');
    lru.set('e', 5); // d is the least recently used
    expect([lru.get('a'), lru.get('c'), lru.get('d'), lru.get('e'), lru.size]).toEqual([1, undefined, undefined, 5, 2]);
  });

  it('tokens compare in constant time, whatever their lengths; no token matches nothing', () => {
    expect(tokenMatches('secret', 'secret')).toBe(true);
    expect(tokenMatches('secret', 'secreT')).toBe(false);
    expect(tokenMatches('secret', 'secret-and-more')).toBe(false);
    expect(tokenMatches(null, 'anything')).toBe(false);
    expect(ownOrigins('127.0.0.1', 8080)).toEqual(['http://127.0.0.1:8080', 'http://localhost:8080']);
    expect(ownOrigins('::1', 8080)).toContain('http://[::1]:8080');
  });

  it('static paths: decoded once; NUL/bad escapes 400, .. 403, dotfiles 404', () => {
    expect(parseStaticPath('/app.js?x=1')).toEqual({ ok: true, segments: ['app.js'] });
    expect(parseStaticPath('/a%20b/do..ts')).toEqual({ ok: true, segments: ['a b', 'do..ts'] });
    expect(parseStaticPath('/%00')).toEqual({ ok: false, status: 400 });
    expect(parseStaticPath('/%E0%A4%A')).toEqual({ ok: false, status: 400 });
    expect(parseStaticPath('/..%5c..%5cx')).toEqual({ ok: false, status: 403 });
    expect(parseStaticPath('/%252e%252e/x')).toEqual({ ok: true, segments: ['%2e%2e', 'x'] }); // once, not twice
    expect(parseStaticPath('/.git/config')).toEqual({ ok: false, status: 404 });
    expect(parseStaticPath('x')).toEqual({ ok: false, status: 400 });
  });
});
