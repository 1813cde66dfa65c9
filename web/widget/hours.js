// Times as the visitor reads them, and the site's opening hours.
//
// One time zone per sentence: what belongs to the site (its next opening, its weekly
// hours) is said in the site's time zone and names it ("Monday 2 March at 09:00 London
// time"), followed by the visitor's own time in brackets when that differs ("(10:00 your
// time)"); what belongs to the visitor (a callback's time) is said in their own zone.
import { h } from './dom.js';
import { fill } from './words.js';

const WEEK = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']; // as in the settings' `hours`

export class TimeWords {
  /** `locale`: a BCP 47 tag for the visitor's formats; `words`: the language's texts. */
  constructor(locale, words) {
    this.locale = locale;
    this.words = words;
  }

  /** "today at 14:05", else the day and time ("Monday 2 March at 09:00"), in `timeZone`
   * (the visitor's when undefined). Hours have two digits, as in the table of hours. */
  when(value, timeZone = undefined) {
    const date = value instanceof Date ? value : new Date(value);
    const time = this.format(date, { hour: '2-digit', minute: '2-digit', timeZone });
    if (this.dayOf(date, timeZone) === this.dayOf(new Date(), timeZone)) return fill(this.words.today, { time });
    return this.format(date, {
      weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit', timeZone,
    });
  }

  /** When the site opens (`next`: ISO 8601), in the site's zone (`hours.timezone`) and
   * naming it, with the visitor's time in brackets if it reads differently. Without a
   * zone: in the visitor's own. */
  opening(next, hours) {
    const date = new Date(next);
    const zone = hours && typeof hours.timezone === 'string' ? hours.timezone : '';
    if (!zone || !this.validZone(zone)) return this.when(date);
    const there = fill(this.words.inZone, { when: this.when(date, zone), zone: zoneName(zone) });
    const timeOnly = { hour: '2-digit', minute: '2-digit' };
    const sameDay = this.dayOf(date, zone) === this.dayOf(date, undefined);
    const siteTime = this.format(date, { ...timeOnly, timeZone: zone });
    const localTime = this.format(date, timeOnly);
    if (sameDay && siteTime === localTime) return there;
    const local = sameDay ? localTime : this.format(date, { weekday: 'long', ...timeOnly });
    return `${there} ${fill(this.words.yourTime, { time: local })}`;
  }

  /** "We open again …." for a closed site, or '' when it never opens again. */
  opensAgain(settings) {
    return settings.next_opening
      ? fill(this.words.opensAgain, { when: this.opening(settings.next_opening, settings.hours) })
      : '';
  }

  format(date, options) {
    try {
      return new Intl.DateTimeFormat(this.locale, options).format(date);
    } catch {
      return date.toLocaleString();
    }
  }

  /** The calendar date of `date` in `timeZone`, as a comparable string. */
  dayOf(date, timeZone) {
    return this.format(date, { year: 'numeric', month: 'numeric', day: 'numeric', timeZone });
  }

  validZone(zone) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: zone }); // eslint-disable-line no-new
      return true;
    } catch {
      return false;
    }
  }
}

/** How a sentence names an IANA zone: its city ("Europe/London": London), or the id. */
export function zoneName(zone) {
  return zone.split('/').pop().replace(/_/g, ' ');
}

/**
 * The site's weekly opening hours (settings `hours`, in the site's time zone) as the rows
 * of `table`: a caption naming the zone, one row per day from Monday, "Closed" for a day
 * without shifts. Returns whether there was anything to show.
 */
export function renderHours(table, hours, time) {
  table.replaceChildren();
  if (!hours || !hours.week || typeof hours.timezone !== 'string') return false;
  const words = time.words;
  let dayName;
  try {
    const format = new Intl.DateTimeFormat(time.locale, { weekday: 'long', timeZone: 'UTC' });
    dayName = (index) => format.format(Date.UTC(2024, 0, 1 + index)); // 1 January 2024: a Monday
  } catch {
    dayName = (index) => WEEK[index];
  }
  const rows = WEEK.map((day, index) => {
    const shifts = Array.isArray(hours.week[day]) ? hours.week[day] : [];
    const times = [];
    for (const [start, end] of shifts) {
      if (times.length) times.push(', ');
      times.push(h('span', { class: 'shift' }, `${start}–${end}`)); // a shift never wraps
    }
    if (!times.length) times.push(words.closedDay);
    return h('tr', {}, h('th', { scope: 'row' }, dayName(index)), h('td', {}, ...times));
  });
  table.append(
    h('caption', {}, fill(words.openingHours, { zone: zoneName(hours.timezone) })),
    h('tbody', {}, ...rows),
  );
  return true;
}
