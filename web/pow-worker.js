// Solves the gateway's proof-of-work challenge (gateway/challenge.py) off the page's thread:
// the first decimal n such that SHA-256("<challenge>:<n>") starts with `difficulty` zero
// bits. Digests are asked for in batches: one await per hash would cost more than the hash.
const BATCH = 256;

self.onmessage = async (event) => {
  const { challenge, difficulty } = event.data;
  const encoder = new TextEncoder();
  for (let start = 0; ; start += BATCH) {
    const digests = [];
    for (let n = start; n < start + BATCH; n += 1) {
      digests.push(crypto.subtle.digest('SHA-256', encoder.encode(`${challenge}:${n}`)));
    }
    const done = await Promise.all(digests);
    for (let i = 0; i < BATCH; i += 1) {
      if (leadingZeroBits(new Uint8Array(done[i])) >= difficulty) {
        self.postMessage({ solution: String(start + i) });
        return;
      }
    }
  }
};

function leadingZeroBits(bytes) {
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}
