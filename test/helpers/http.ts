import { request } from 'node:http';

/** A whole HTTP answer: status, headers, the body as text, and as JSON when it is JSON (null otherwise). */
export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the JSON answer, checked field by field by the tests
  readonly json: any;
}

/**
 * One HTTP request to a loopback server on a fresh connection (`Connection: close`, no
 * agent: no test's keep-alive socket can carry another's request), with a body of any size
 * and content type; resolves with the whole answer.
 *
 * @example
 * const a = await http(server, '/predict', JSON.stringify({ input: [1, 2] }));
 * expect(a.status).toBe(200);
 */
export function http(server: { readonly port: number }, path: string, body?: string | Buffer, headers: Record<string, string> = { 'Content-Type': 'application/json' }, method = 'POST'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method, headers: { ...headers, Connection: 'close' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try { json = JSON.parse(text); } catch { /* NDJSON or text */ }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
