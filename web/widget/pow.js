// The gateway's proof of work (gateway/access/challenge.py): the first decimal n such that
// SHA-256("<challenge>:<n>") starts with `difficulty` zero bits. Digests are asked for in
// batches: one await per hash would cost more than the hash, and each batch yields to the
// page, so it stays responsive when this runs outside a worker.
const BATCH = 256;

export async function solveProofOfWork(challenge, difficulty) {
  const encoder = new TextEncoder();
  for (let start = 0; ; start += BATCH) {
    const digests = [];
    for (let n = start; n < start + BATCH; n += 1) {
      digests.push(crypto.subtle.digest('SHA-256', encoder.encode(`${challenge}:${n}`)));
    }
    const done = await Promise.all(digests);
    for (let i = 0; i < BATCH; i += 1) {
      if (leadingZeroBits(new Uint8Array(done[i])) >= difficulty) return String(start + i);
    }
  }
}

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
