/**
 * An independent proleptic-Gregorian calendar for the unit tests: Howard Hinnant's
 * days-from-civil / civil-from-days algorithms on plain integers, no `Date` involved, so the
 * domain modules (which use `Date.UTC`) are checked against arithmetic they do not share.
 */

export const DAY_MS = 86_400_000;

export interface Civil {
  readonly y: number;
  readonly m: number;
  readonly d: number;
}

function div(a: number, b: number): number {
  return Math.floor(a / b);
}

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

/** Days since 1970-01-01 of a civil date (any year, month 1-12, day 1-31). */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = div(yy, 400);
  const yoe = yy - era * 400;
  const doy = div(153 * (m + (m > 2 ? -3 : 9)) + 2, 5) + d - 1;
  const doe = yoe * 365 + div(yoe, 4) - div(yoe, 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** Civil date of a day number (days since 1970-01-01). */
export function civilFromDays(z: number): Civil {
  const zz = z + 719_468;
  const era = div(zz, 146_097);
  const doe = zz - era * 146_097;
  const yoe = div(doe - div(doe, 1460) + div(doe, 36_524) - div(doe, 146_096), 365);
  const doy = doe - (365 * yoe + div(yoe, 4) - div(yoe, 100));
  const mp = div(5 * doy + 2, 153);
  const d = doy - div(153 * mp + 2, 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return { y: yoe + era * 400 + (m <= 2 ? 1 : 0), m, d };
}

/** Monday = 0 … Sunday = 6 (1970-01-01 was a Thursday). */
export function weekdayOfDayNumber(z: number): number {
  return mod(z + 3, 7);
}

export function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

export function monthLength(y: number, m: number): number {
  if (m === 2) return isLeapYear(y) ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

export function p2(n: number): string {
  return String(n).padStart(2, "0");
}

export function p4(n: number): string {
  return String(n).padStart(4, "0");
}

export function dayLabel(z: number): string {
  const { y, m, d } = civilFromDays(z);
  return `${p4(y)}-${p2(m)}-${p2(d)}`;
}

/** Day number of a `YYYY-MM-DD` label (assumed well formed). */
export function dayNumber(label: string): number {
  return daysFromCivil(
    Number(label.slice(0, 4)),
    Number(label.slice(5, 7)),
    Number(label.slice(8, 10)),
  );
}

/** Day number of the Monday of ISO week 1 of ISO year `y`: the Monday on or before 4 January. */
export function isoWeekOneMonday(y: number): number {
  const jan4 = daysFromCivil(y, 1, 4);
  return jan4 - weekdayOfDayNumber(jan4);
}

/**
 * ISO week of a day number, computed from week-1 Mondays (not from the Thursday rule the
 * module uses): the week-year is the latest year whose week 1 starts on or before the day.
 */
export function isoWeekOfDayNumber(z: number): { year: number; week: number } {
  const { y } = civilFromDays(z);
  for (const year of [y + 1, y, y - 1]) {
    const monday = isoWeekOneMonday(year);
    if (monday <= z) return { year, week: div(z - monday, 7) + 1 };
  }
  throw new Error("unreachable: a day always falls in week-year y-1, y or y+1");
}

export function isoWeekLabel(z: number): string {
  const { year, week } = isoWeekOfDayNumber(z);
  return `${p4(year)}-W${p2(week)}`;
}

/** An ISO year has 53 weeks when it starts on a Thursday, or is a leap year starting on a Wednesday. */
export function hasWeek53(y: number): boolean {
  const jan1 = weekdayOfDayNumber(daysFromCivil(y, 1, 1));
  return jan1 === 3 || (jan1 === 2 && isLeapYear(y));
}
