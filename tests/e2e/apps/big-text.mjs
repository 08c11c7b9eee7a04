// Deterministic text of exactly n ASCII bytes, shared by the MCP server app and the tests.
// 64-byte lines "<offset as 8 hex digits>:" + filler + "\n", so a dropped, duplicated or
// reordered chunk is visible at its offset.
const FILLER = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+';

export function bigText(n) {
  const parts = [];
  let off = 0;
  while (off < n) {
    const head = off.toString(16).padStart(8, '0') + ':';
    const line = head + FILLER.slice(0, 63 - head.length) + '\n';
    parts.push(off + line.length <= n ? line : line.slice(0, n - off));
    off += line.length;
  }
  return parts.join('');
}

/** Offset of the first byte where `got` differs from bigText(n), or -1 when equal. */
export function firstDiff(got, n) {
  const want = bigText(n);
  if (got === want) return -1;
  const len = Math.min(got.length, want.length);
  for (let i = 0; i < len; i++) if (got[i] !== want[i]) return i;
  return len;
}
