import type { TelemetryClaim } from './telemetry.ts';

/** What a gateway knows of a partition's owner when a control command comes (`PartitionOwners.reading`). */
export interface OwnerReading {
  /** The commit record's owner and epoch (null before anybody owned the partition). */
  readonly commit: TelemetryClaim | null;
  /** The worker holding the lease (null: no lease on the server). */
  readonly holder: string | null;
  /** Since when (ms since the epoch, server time) no worker holds the lease, when known. */
  readonly freeSince: number | null;
  /** Whether both were read from the server for this command (not only as the watch last brought them). */
  readonly fresh: boolean;
}

/**
 * Whom a control command of a partition goes to, and whose reply to it is the truth:
 * - `owner`: the commit record's owner holds the lease. Its reply with exactly `claim`
 *   says whether the command was applied, also when it lost the partition meanwhile (a
 *   newer epoch since: "the partition changed owner", not applied), so it is believed.
 * - `current`: a worker holds the lease but has not fenced yet (it is taking over right
 *   now), or the server did not answer the read: nothing certain, so the gateway waits
 *   for whoever `PartitionOwners` believes when the reply comes.
 * - `nobody`: the server says no worker holds the lease (handed back, or expired: the
 *   server removes it one TTL after its last renewal, whoever's clock is wrong). Nobody
 *   will apply the command, so it is not sent and the client is told at once; a worker
 *   taking the partition a moment later never sees it.
 */
export type Addressee =
  | { readonly to: 'owner'; readonly claim: TelemetryClaim }
  | { readonly to: 'current' }
  | { readonly to: 'nobody'; readonly last: TelemetryClaim | null; readonly since: number | null };

/**
 * Whom a command goes to, from what is known of the partition's owner when it comes.
 *
 * @example addressee({ commit: { owner: 'w-a', epoch: 3 }, holder: null, freeSince: null, fresh: true }) // { to: 'nobody', last: { owner: 'w-a', epoch: 3 }, since: null }
 */
export function addressee(known: OwnerReading): Addressee {
  const { commit, holder, freeSince, fresh } = known;
  // a lease only the watch lacks may have been written a moment ago: "nobody" needs the server's word
  if (!fresh) return { to: 'current' };
  if (holder === null) return { to: 'nobody', last: commit, since: freeSince };
  return commit !== null && commit.owner === holder ? { to: 'owner', claim: commit } : { to: 'current' };
}

/**
 * Whether a reply claiming `claim` is from the owner the command was sent to (`addressee`),
 * whatever happened to the partition since. Anybody else's reply is judged on what is
 * known when it comes (`PartitionOwners.believes`).
 *
 * @example sentTo({ to: 'owner', claim: { owner: 'w-a', epoch: 3 } }, { owner: 'w-a', epoch: 3 }) // true
 */
export function sentTo(to: Addressee, claim: TelemetryClaim): boolean {
  return to.to === 'owner' && to.claim.owner === claim.owner && to.claim.epoch === claim.epoch;
}

/**
 * What a client is told of a command of a partition nobody owns: which partition, since
 * when its lease is free and whose it was, when known; never a word from a peer.
 *
 * @example noOwnerMessage(2, { to: 'nobody', last: { owner: 'w-a', epoch: 3 }, since: 0 }) // 'partition 2 has no owner now: no worker holds its lease (free since 1970-01-01T00:00:00.000Z; its last owner was w-a, epoch 3); the command was not sent, nothing changed'
 */
export function noOwnerMessage(partition: number, nobody: Extract<Addressee, { to: 'nobody' }>): string {
  const known = [
    ...(nobody.since !== null ? [`free since ${new Date(nobody.since).toISOString()}`] : []),
    ...(nobody.last !== null ? [`its last owner was ${nobody.last.owner}, epoch ${nobody.last.epoch}`] : []),
  ];
  return `partition ${partition} has no owner now: no worker holds its lease${known.length === 0 ? '' : ` (${known.join('; ')})`}; the command was not sent, nothing changed`;
}
