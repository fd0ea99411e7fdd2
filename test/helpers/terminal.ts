/**
 * What a terminal shows after `text`: the lines of the screen, colours dropped. It knows
 * what the progress display writes: CR, LF, cursor up (`ESC[nA`), clear to the end of the
 * screen (`ESC[J`) and colours (`ESC[…m`). Any other escape throws, unless `lenient` (a
 * real pseudo-terminal's output, e.g. through `script`, may carry others): then it is skipped.
 */
export function screen(text: string, { lenient = false } = {}): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (ch: string) => {
    const line = lines[row].padEnd(col);
    lines[row] = line.slice(0, col) + ch + line.slice(col + 1);
    col++;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      col = 0;
      if (row === lines.length) lines.push('');
    } else if (ch === '\x1b') {
      const m = /^\x1b\[(\d*)([A-Za-z])/.exec(text.slice(i));
      if (m === null) {
        if (lenient) continue;
        throw new Error(`unknown escape at ${i}: ${JSON.stringify(text.slice(i, i + 8))}`);
      }
      i += m[0].length - 1;
      const n = m[1] === '' ? 1 : Number(m[1]);
      if (m[2] === 'A') row = Math.max(0, row - n);
      else if (m[2] === 'J') {
        lines[row] = lines[row].slice(0, col);
        lines.length = row + 1;
      } else if (m[2] !== 'm' && !lenient) throw new Error(`unexpected escape ${m[0]}`);
    } else put(ch);
  }
  return lines;
}
