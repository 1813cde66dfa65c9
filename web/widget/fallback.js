// When the widget offers the site's fallbacks (`fallback`: voicemail, a written message,
// a callback): nobody can answer now. Each fallback's part asks `nobodyAnswered` and the
// site's settings; the element shows the offers in the site's order.

// Ends of a call after which nobody answered (`unreachable`: no destination could be
// reached, as when every one is down but the health checks have not told yet; the phone
// system refused the call, no codec was common, or a redirect led nowhere: nobody took
// it either). Ends after an answer (`session_expired`, `transfer_failed`...) are not.
const UNANSWERED_CAUSES = new Set([
  'busy', 'no_answer', 'declined', 'unreachable', 'phone_system_refused', 'no_common_codec',
  'redirect_failed',
]);
// Refusals of a call that mean nobody can answer now.
const UNANSWERED_REFUSALS = new Set(['closed', 'busy', 'site_busy', 'nobody_available']);

/** Whether the widget's state (`detail`) is one where nobody can answer: the site is
 * closed, or the last call ended before anyone answered it (UNANSWERED_CAUSES) or was
 * refused as closed, busy or with every line down. */
export function nobodyAnswered(detail) {
  if (detail.phase === 'closed') return true;
  if (detail.phase !== 'ended') return false;
  return UNANSWERED_CAUSES.has(detail.cause) || (detail.cause === 'refused' && UNANSWERED_REFUSALS.has(detail.code));
}

/** The site's fallbacks, in its order, as the widget knows them. */
export function fallbacks(settings) {
  return Array.isArray(settings.fallback) ? settings.fallback : [];
}
