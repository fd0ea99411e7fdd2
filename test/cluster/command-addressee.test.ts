// Whom a gateway sends a partition's control command to, and whose reply it believes: a
// pure judgement on what it read of the partition's commit record and lease.
import { describe, expect, it } from 'vitest';
import { addressee, noOwnerMessage, sentTo } from '../../cluster/command-addressee.ts';

const a3 = { owner: 'w-a', epoch: 3 };

describe('addressee', () => {
  it('the commit record\'s owner holding the lease is the one asked, and its reply with that claim is believed', () => {
    const to = addressee({ commit: a3, holder: 'w-a', freeSince: null, fresh: true });
    expect(to).toEqual({ to: 'owner', claim: a3 });
    expect(sentTo(to, { owner: 'w-a', epoch: 3 })).toBe(true);
    expect(sentTo(to, { owner: 'w-a', epoch: 2 })).toBe(false); // its older self
    expect(sentTo(to, { owner: 'w-b', epoch: 3 })).toBe(false);
  });

  it('no lease on the server is nobody: the last owner and since when, when known', () => {
    expect(addressee({ commit: a3, holder: null, freeSince: 5, fresh: true })).toEqual({ to: 'nobody', last: a3, since: 5 });
    expect(addressee({ commit: null, holder: null, freeSince: null, fresh: true })).toEqual({ to: 'nobody', last: null, since: null });
  });

  it('a lease whose holder has not fenced yet, or a read the server did not answer, is waited for: whoever owns the partition when the reply comes', () => {
    for (const known of [
      { commit: a3, holder: 'w-b', freeSince: null, fresh: true }, // taking over right now
      { commit: null, holder: 'w-b', freeSince: null, fresh: true }, // the first owner, before its fence
      { commit: a3, holder: null, freeSince: 5, fresh: false }, // only the watch's word: a lease may have been written since
    ]) {
      const to = addressee(known);
      expect(to).toEqual({ to: 'current' });
      expect(sentTo(to, a3)).toBe(false);
    }
  });

  it('says which partition has no owner, since when and whose it was, and that nothing was sent', () => {
    expect(noOwnerMessage(2, { to: 'nobody', last: a3, since: Date.UTC(2026, 0, 2, 3, 4, 5, 6) })).toBe('partition 2 has no owner now: no worker holds its lease (free since 2026-01-02T03:04:05.006Z; its last owner was w-a, epoch 3); the command was not sent, nothing changed');
    expect(noOwnerMessage(0, { to: 'nobody', last: null, since: null })).toBe('partition 0 has no owner now: no worker holds its lease; the command was not sent, nothing changed');
  });
});
