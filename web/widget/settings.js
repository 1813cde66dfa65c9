// A site's public widget settings, from the gateway only (GET /api/widget/<site>), never
// from the embedding page: look (label, colours, logo, promise, font, corner radius),
// position, language, visitor details, whether the site is open, its hours and
// Request-a-Call. Described in docs/embedding.md.

export const DEFAULT_SETTINGS = {
  label: '',
  colour: '#0a7d32',
  text_colour: '#ffffff',
  dark_colour: '',
  dark_text_colour: '',
  logo: '',
  promise: '',
  font: '',
  radius: null,
  position: 'bottom-right',
  language: 'auto',
  visitor_details: 'off',
  open: true,
  next_opening: null,
  hours: null,
  fallback: [],
  callback: null,
  voicemail: null,
  chat: null,
  messages: false,
};

const HEX_COLOUR = /^#[0-9a-fA-F]{6}$/;
const FONT_FAMILIES = /^[\w ,'"-]{1,200}$/;

/** `{settings, refusal}` of a site from the gateway: settings null when it cannot be
 * reached, refusal `{code, message}` of a 404 (unknown site). Not cached: whether the site
 * is open changes with the time. */
export async function fetchSettings(base, siteId) {
  try {
    const url = new URL(`api/widget/${encodeURIComponent(siteId)}`, base);
    const response = await fetch(url, { credentials: 'omit', cache: 'no-store' });
    const reply = await response.json();
    if (response.ok) return { settings: { ...DEFAULT_SETTINGS, ...reply }, refusal: null };
    if (response.status === 404) return { settings: DEFAULT_SETTINGS, refusal: reply.error };
  } catch {
    // Offline, or not the gateway.
  }
  return { settings: null, refusal: null };
}

/**
 * The site's look on the element, as CSS custom properties set through the CSSOM (allowed
 * under a Content-Security-Policy without 'unsafe-inline'). The gateway checked the
 * colour pairs' contrast; values are checked again here since they reach a stylesheet.
 */
export function applyLook(element, settings) {
  const set = (name, value) => {
    if (value) element.style.setProperty(name, value);
    else element.style.removeProperty(name);
  };
  const colour = (value) => (typeof value === 'string' && HEX_COLOUR.test(value) ? value : '');
  set('--ctc-accent-light', colour(settings.colour));
  set('--ctc-accent-text-light', colour(settings.text_colour));
  set('--ctc-accent-dark', colour(settings.dark_colour));
  set('--ctc-accent-text-dark', colour(settings.dark_text_colour));
  set('--ctc-font', typeof settings.font === 'string' && FONT_FAMILIES.test(settings.font) ? settings.font : '');
  const radius = Number(settings.radius);
  set('--ctc-radius', settings.radius !== null && radius >= 0 && radius <= 32 ? `${radius}px` : '');
}

/** How many days ahead a callback may be asked for: the gateway's limit, or null if it
 * did not say (it checks anyway). */
export function callbackDaysAhead(settings) {
  const days = settings.callback && Number(settings.callback.max_days_ahead);
  return days > 0 ? days : null;
}
