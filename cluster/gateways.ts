import { listKeys } from './kv-keys.ts';
import type { Cluster } from './open.ts';

/** A live gateway as it announces itself in the cluster run's gateways bucket. */
export interface GatewayInfo {
  readonly id: string;
  /** `http://host:port`: its dashboard, /healthz and /metrics. */
  readonly url: string;
  /** `ws://host:port/ws`: its protocol v1 WebSocket. */
  readonly wsUrl: string;
  /** Wall-clock time it started (ms since the epoch). */
  readonly since: number;
  /** What it refused since it started, by kind (`Gateway.unreadable`), as of its last announcement. */
  readonly unreadable?: Readonly<Record<string, number>>;
}

/**
 * The cluster run's live gateways (each renews its entry every lease TTL; an entry not
 * renewed for three is gone), sorted by id: where a dashboard or a load balancer can
 * connect.
 *
 * @example for (const g of await listGateways(cluster)) console.log(g.url);
 */
export async function listGateways(cluster: Cluster): Promise<GatewayInfo[]> {
  const keys = await listKeys(cluster.gateways, 'gateways');
  const found = await Promise.all([...keys].map(async (key) => {
    const entry = await cluster.gateways.get(key);
    if (entry === null || entry.operation !== 'PUT') return null;
    try {
      return entry.json<GatewayInfo>();
    } catch {
      return null;
    }
  }));
  return found.filter((g): g is GatewayInfo => g !== null).sort((a, b) => a.id.localeCompare(b.id));
}
