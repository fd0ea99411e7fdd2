import { describe, expect, it } from 'vitest';
import { StreamgradError } from '../core/errors.ts';
import { oneLine, printable } from '../runtime/errors.ts';
import { RejectionLog } from '../runtime/rejections.ts';

/**
 * What the command line writes to a terminal may quote bytes from outside (a binary file
 * given as a model, a record's text, an MQTT message id): the characters a terminal acts
 * on are escaped, the rest is left as it is.
 */
describe('printable', () => {
  it('escapes C0 controls but tab, DEL, C1 controls and the bidirectional overrides; leaves the rest', () => {
    expect(printable('\x7fELF\x02\x00\x1b[2J\r')).toBe('\\x7fELF\\x02\\x00\\x1b[2J\\x0d');
    expect(printable('a\u202eb\u2066c\u0085d')).toBe('a\\u202eb\\u2066c\\x85d');
    expect(printable('tab\there, é, µs, 中文, ✓')).toBe('tab\there, é, µs, 中文, ✓');
  });

  it('oneLine keeps the first line and escapes it', () => {
    expect(oneLine(new Error('bad \x1b[31m byte\nsecond line'))).toBe('bad \\x1b[31m byte');
  });

  it('a rejection shown on the terminal is escaped (the message id and the quoted record)', () => {
    const shown: string[] = [];
    const log = new RejectionLog((line) => shown.push(line));
    log.add('lab/\x1b]0;pwned\x07', new StreamgradError('SG_ERR_BAD_JSON', 'Unexpected token \'\x1b\', "\x1b[31mred" is not valid JSON'));
    expect(shown).toEqual(['rejected message lab/\\x1b]0;pwned\\x07 (SG_ERR_BAD_JSON): Unexpected token \'\\x1b\', "\\x1b[31mred" is not valid JSON']);
  });
});
