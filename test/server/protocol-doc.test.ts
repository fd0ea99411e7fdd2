import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { StreamgradServer } from '../../server/server.ts';
import { WebSocketIngest } from '../../sources/websocket-ingest.ts';
import { handshakeStatus, startServer } from './helpers.ts';

/**
 * server/PROTOCOL.md says what each path answers; these tests hold the document to the
 * code (issue 17 #11: its path table called `/ingest` "404 today" while the section below
 * documented it in full and a plain GET answered 426).
 */
const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../../server/PROTOCOL.md'), 'utf8');
const row = (first: string) => doc.split('\n').find((l) => l.startsWith(`| ${first} |`)) ?? '';

const getStatus = (port: number, path: string) => new Promise<number>((resolve, reject) => {
  request({ host: '127.0.0.1', port, path }, (res) => {
    res.resume();
    resolve(res.statusCode ?? 0);
  }).on('error', reject).end();
});

/** The status of a WebSocket handshake to `path` with the token (101 when accepted). */
const upgradeStatus = (server: StreamgradServer, path: string, token: string) => handshakeStatus(server, { Authorization: `Bearer ${token}` }, path);

describe('server/PROTOCOL.md matches the server', () => {
  it('/ingest: the path table documents the endpoint (no "404 today"), a plain GET is 426, a handshake is 101 with an ingest endpoint and 404 without', async () => {
    const ingestRow = row('`/ingest`');
    expect(ingestRow).not.toBe('');
    expect(ingestRow).not.toMatch(/404 today|reserved|later version/);
    expect(ingestRow).toMatch(/plain GET is 426/);
    expect(ingestRow).toMatch(/\(#sample-ingestion-at-ingest\)/);
    expect(ingestRow).toMatch(/404 without/);
    expect(doc).toMatch(/^## Sample ingestion at `\/ingest`$/m);

    const plain = await startServer();
    expect(await getStatus(plain.port, '/ingest')).toBe(426);
    expect(await upgradeStatus(plain, '/ingest', 'x')).toBe(404);
    const token = 'ingest-doc-token-0123456789';
    const withIngest = await startServer({ ingest: new WebSocketIngest({ token }) });
    expect(await getStatus(withIngest.port, '/ingest')).toBe(426);
    expect(await upgradeStatus(withIngest, '/ingest', token)).toBe(101);
  });

  it('the handshake table names the paths that are 404, /ingest without an endpoint among them', async () => {
    const notFound = doc.split('\n').filter((l) => /^\| .* \| 404 \|$/.test(l) && l.includes('path'));
    expect(notFound).toHaveLength(1);
    expect(notFound[0]).toMatch(/neither `\/ws` nor `\/ingest`/);
    const server = await startServer();
    expect(await upgradeStatus(server, '/other', 'x')).toBe(404);
    expect(await getStatus(server.port, '/ws')).toBe(426);
  });
});
