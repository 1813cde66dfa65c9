// A call token from the gateway (POST /api/token, docs/signaling.md), solving the site's
// proof of work first when it asks for one.
import { solveProofOfWork } from './pow.js';

/** The gateway refused: final, retrying will not help. `code` is the gateway's. */
export class Refused extends Error {
  constructor(message, code = 'refused') {
    super(message);
    this.code = code;
  }
}

/**
 * Resolves to the token; rejects with Refused, or with another Error for trouble worth
 * retrying (network, 5xx, 429). `onChallenge()` is called when a challenge is being solved.
 */
export async function fetchCallToken(base, siteId, onChallenge) {
  let body = { site: siteId };
  for (let round = 0; round < 3; round += 1) {
    const response = await fetch(new URL('api/token', base), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
    const reply = await response.json().catch(() => null);
    if (response.ok && reply && reply.token) return reply.token;
    const error = (reply && reply.error) || {};
    // Server trouble, or too many tokens asked for from this address (429): worth a retry.
    if (response.status >= 500 || response.status === 429) {
      throw new Error(error.message || `HTTP ${response.status}`);
    }
    if (reply && reply.challenge) {
      onChallenge();
      body = { site: siteId, proof: await solve(reply.challenge) };
      continue;
    }
    throw new Refused(error.message || `the call service answered ${response.status}`, error.code);
  }
  throw new Refused('the challenge was not accepted', 'challenge_failed');
}

/**
 * POST `fields` (JSON) to `path` with a call token for `fields.site`, asked for first, as a
 * request of a page must (POST /api/callbacks, POST /api/messages). Resolves to the
 * gateway's 201 answer (with its `id`); rejects with `refusal(code, message)` when the
 * gateway (or its token service) says no, or with another Error for trouble worth
 * trying again (network, 5xx).
 */
export async function postWithCallToken(base, path, fields, onChallenge, refusal) {
  let token;
  try {
    token = await fetchCallToken(base, fields.site, onChallenge);
  } catch (err) {
    if (err instanceof Refused) throw refusal(err.code, err.message);
    throw err;
  }
  const response = await fetch(new URL(path, base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(fields),
    cache: 'no-store',
    credentials: 'omit',
  });
  const reply = await response.json().catch(() => null);
  if (response.status === 201 && reply && reply.id) return reply;
  const error = (reply && reply.error) || {};
  if (response.status >= 500 || !reply) throw new Error(error.message || `HTTP ${response.status}`);
  throw refusal(error.code || 'refused', error.message || `HTTP ${response.status}`);
}

async function solve(challenge) {
  if (challenge.kind !== 'pow') {
    throw new Refused(`this page cannot solve a ${challenge.kind} challenge`, 'challenge_unsupported');
  }
  const solution = await inWorker(challenge).catch(() =>
    // A page of another origin may not start our worker: solve here, in batches.
    solveProofOfWork(challenge.challenge, challenge.difficulty),
  );
  return { challenge: challenge.challenge, solution };
}

function inWorker(challenge) {
  return new Promise((resolve, reject) => {
    // Throws (SecurityError) on a page of another origin than the gateway's.
    const worker = new Worker(new URL('pow-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (event) => {
      worker.terminate();
      resolve(event.data.solution);
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(event.message));
    };
    worker.postMessage({ challenge: challenge.challenge, difficulty: challenge.difficulty });
  });
}
