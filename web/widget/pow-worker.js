// Solves a proof of work off the page's thread (a module worker; see pow.js).
import { solveProofOfWork } from './pow.js';

self.onmessage = async (event) => {
  const { challenge, difficulty } = event.data;
  self.postMessage({ solution: await solveProofOfWork(challenge, difficulty) });
};
