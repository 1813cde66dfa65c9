// Everything the widget says comes from one file per language in lang/ (en.js is the
// reference; every other file has the same keys). The site's `language` setting picks one,
// or "auto": the first of the browser's languages that is here, else English. Only the
// language in use is loaded. `{name}` in a text is replaced by `fill()`.
import en from './lang/en.js';

/** The languages the widget speaks (as the gateway's `[sites.widget] language` allows). */
export const LANGUAGE_CODES = ['en', 'fr', 'de', 'es', 'it', 'nl', 'pt', 'pl'];
export const ENGLISH = en;

/** The language code to use: the site's choice, else the browser's first one we have. */
export function pickLanguage(setting, browserLanguages = navigator.languages || []) {
  if (setting && setting !== 'auto' && LANGUAGE_CODES.includes(setting)) return setting;
  for (const tag of browserLanguages) {
    const primary = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGE_CODES.includes(primary)) return primary;
  }
  return 'en';
}

/** The words of `language` (a code of LANGUAGE_CODES); English if they cannot be loaded. */
export async function loadWords(language) {
  if (language === 'en' || !LANGUAGE_CODES.includes(language)) return en;
  try {
    return (await import(`./lang/${language}.js`)).default;
  } catch {
    return en; // offline in between: better English than nothing
  }
}

/** `text` with each `{key}` replaced by `values[key]`. */
export function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}
