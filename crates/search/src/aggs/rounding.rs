//! Date rounding for `date_histogram`, composite's `date_histogram` source and date math:
//! calendar and fixed intervals in a time zone, with Elasticsearch's rules across daylight-saving
//! transitions.
//!
//! The rules are those of Elasticsearch's `java.time` roundings, which its faster roundings
//! reproduce:
//! - Units of a day or more round the local date-time down to the unit's start (weeks start on
//!   Monday, quarters in January, April, July and October) and take the *first* instant of that
//!   local midnight, or the transition's instant when midnight fell in a gap. So a `day` in
//!   `Europe/London` on 2026-03-29 is 23 hours long.
//! - Hours, minutes and seconds round the local time down, and take the latest instant with that
//!   local time that is not after the value, unless a transition lies in between, in which case
//!   the value just before the transition is rounded instead. So the hour repeated when clocks
//!   fall back gives two buckets with distinct keys.
//! - Fixed intervals round the local time down to a multiple of the interval counted from the
//!   local epoch, with the same care across transitions, and a boundary that falls in a gap
//!   becomes the transition's instant.
//!
//! `Rounding::prepare` precomputes the bucket starts over a value range, so that rounding a value
//! is a binary search, as Elasticsearch's `ArrayRounding`.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

pub const MILLIS_PER_SECOND: i64 = 1000;
pub const MILLIS_PER_MINUTE: i64 = 60 * MILLIS_PER_SECOND;
pub const MILLIS_PER_HOUR: i64 = 60 * MILLIS_PER_MINUTE;
pub const MILLIS_PER_DAY: i64 = 24 * MILLIS_PER_HOUR;
/// Rounds retried backwards across transitions before giving up on the rules above and
/// answering the plain local rounding (Elasticsearch gives up after 5000).
const TRANSITION_RETRIES_MAX: usize = 5000;
/// Bucket starts `prepare` precomputes at most; beyond it each value is rounded directly.
pub const PREPARED_POINTS_MAX: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CalendarUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl CalendarUnit {
    /// Elasticsearch's names: `1d`, `day`, `1M`, `month`, `1q`, `quarter`, …
    pub fn parse(name: &str) -> Option<CalendarUnit> {
        Some(match name {
            "1s" | "second" => CalendarUnit::Second,
            "1m" | "minute" => CalendarUnit::Minute,
            "1h" | "hour" => CalendarUnit::Hour,
            "1d" | "day" => CalendarUnit::Day,
            "1w" | "week" => CalendarUnit::Week,
            "1M" | "month" => CalendarUnit::Month,
            "1q" | "quarter" => CalendarUnit::Quarter,
            "1y" | "year" => CalendarUnit::Year,
            _ => return None,
        })
    }

    fn rounds_to_midnight(self) -> bool {
        self >= CalendarUnit::Day
    }

    /// The unit's length when it is fixed (up to a week), as Elasticsearch's `DateTimeUnit`.
    pub fn fixed_millis(self) -> Option<i64> {
        match self {
            CalendarUnit::Second => Some(MILLIS_PER_SECOND),
            CalendarUnit::Minute => Some(MILLIS_PER_MINUTE),
            CalendarUnit::Hour => Some(MILLIS_PER_HOUR),
            CalendarUnit::Day => Some(MILLIS_PER_DAY),
            CalendarUnit::Week => Some(7 * MILLIS_PER_DAY),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Calendar(CalendarUnit),
    /// A fixed number of milliseconds, at least 1.
    Fixed(i64),
}

/// Parses a time value with Elasticsearch's units (`30s`, `5m`, `12h`, `7d`, `100ms`, `2.5h`
/// is refused as Elasticsearch does) into milliseconds.
pub fn parse_fixed_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '-')?;
    let (digits, unit) = text.split_at(split);
    let amount: i64 = digits.parse().ok()?;
    let unit_millis = match unit {
        "ms" => 1,
        "s" => MILLIS_PER_SECOND,
        "m" => MILLIS_PER_MINUTE,
        "h" => MILLIS_PER_HOUR,
        "d" => MILLIS_PER_DAY,
        _ => return None,
    };
    amount.checked_mul(unit_millis)
}

/// Parses `time_zone`: an IANA name (`Europe/London`), `UTC`/`Z`, or an offset (`-08:00`,
/// `+0530`, `+05`).
pub fn parse_time_zone(text: &str) -> Option<TimeZone> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("utc") || trimmed == "Z" || trimmed.eq_ignore_ascii_case("gmt")
    {
        return Some(TimeZone::UTC);
    }
    if let Some(rest) = trimmed.strip_prefix(['+', '-']) {
        let negative = trimmed.starts_with('-');
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<i32> {
            digits.get(range).map_or(Some(0), |s| {
                if s.is_empty() {
                    Some(0)
                } else {
                    s.parse().ok()
                }
            })
        };
        let (hours, minutes, seconds) = match digits.len() {
            1 | 2 => (number(0..digits.len())?, 0, 0),
            4 => (number(0..2)?, number(2..4)?, 0),
            6 => (number(0..2)?, number(2..4)?, number(4..6)?),
            _ => return None,
        };
        if hours > 18 || minutes > 59 || seconds > 59 {
            return None;
        }
        let total = hours * 3600 + minutes * 60 + seconds;
        let offset = Offset::from_seconds(if negative { -total } else { total }).ok()?;
        return Some(TimeZone::fixed(offset));
    }
    TimeZone::get(trimmed).ok()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Rounds local milliseconds (a local date-time written as if it were UTC) down to the unit.
pub fn truncate_local(local: i64, unit: CalendarUnit) -> i64 {
    let floor = |size: i64| local.div_euclid(size).saturating_mul(size);
    match unit {
        CalendarUnit::Second => floor(MILLIS_PER_SECOND),
        CalendarUnit::Minute => floor(MILLIS_PER_MINUTE),
        CalendarUnit::Hour => floor(MILLIS_PER_HOUR),
        CalendarUnit::Day => floor(MILLIS_PER_DAY),
        CalendarUnit::Week => {
            let days = local.div_euclid(MILLIS_PER_DAY);
            // 1970-01-01 was a Thursday: Monday is 3 days before.
            let since_monday = (days + 3).rem_euclid(7);
            (days - since_monday).saturating_mul(MILLIS_PER_DAY)
        }
        CalendarUnit::Month | CalendarUnit::Quarter | CalendarUnit::Year => {
            let (year, month, _) = civil_from_days(local.div_euclid(MILLIS_PER_DAY));
            let month = match unit {
                CalendarUnit::Month => month,
                CalendarUnit::Quarter => (month - 1) / 3 * 3 + 1,
                _ => 1,
            };
            days_from_civil(year, month, 1).saturating_mul(MILLIS_PER_DAY)
        }
    }
}

/// How a local date-time maps to instants in a zone.
enum LocalInstants {
    One(i64),
    /// A fold: the earlier instant (offset before the transition) then the later.
    Two(i64, i64),
    /// A gap: the instant of the transition that skipped this local time.
    Gap(i64),
}

#[derive(Debug, Clone)]
pub struct Rounding {
    pub interval: Interval,
    pub time_zone: TimeZone,
    /// `offset`: bucket boundaries moved by this many milliseconds.
    pub offset_ms: i64,
    /// The zone's offset when it never changes: rounding is then plain arithmetic.
    fixed_offset_ms: Option<i64>,
}

impl Rounding {
    pub fn new(interval: Interval, time_zone: TimeZone, offset_ms: i64) -> Rounding {
        let fixed_offset_ms = time_zone
            .to_fixed_offset()
            .ok()
            .map(|o| i64::from(o.seconds()) * MILLIS_PER_SECOND);
        Rounding {
            interval,
            time_zone,
            offset_ms,
            fixed_offset_ms,
        }
    }

    fn offset_at(&self, utc: i64) -> i64 {
        if let Some(fixed) = self.fixed_offset_ms {
            return fixed;
        }
        match Timestamp::from_millisecond(utc) {
            Ok(ts) => i64::from(self.time_zone.to_offset(ts).seconds()) * MILLIS_PER_SECOND,
            Err(_) => 0,
        }
    }

    /// The last transition strictly before `utc`, if any.
    fn previous_transition(&self, utc: i64) -> Option<i64> {
        if self.fixed_offset_ms.is_some() {
            return None;
        }
        let ts = Timestamp::from_millisecond(utc).ok()?;
        self.time_zone
            .preceding(ts)
            .next()
            .map(|t| t.timestamp().as_millisecond())
    }

    fn local_instants(&self, local: i64) -> LocalInstants {
        if let Some(fixed) = self.fixed_offset_ms {
            return LocalInstants::One(local.saturating_sub(fixed));
        }
        let Some(civil) = Timestamp::from_millisecond(local)
            .ok()
            .map(|ts| TimeZone::UTC.to_datetime(ts))
        else {
            return LocalInstants::One(local);
        };
        let seconds = |o: Offset| i64::from(o.seconds()) * MILLIS_PER_SECOND;
        match self.time_zone.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => LocalInstants::One(local - seconds(offset)),
            AmbiguousOffset::Fold { before, after } => {
                LocalInstants::Two(local - seconds(before), local - seconds(after))
            }
            AmbiguousOffset::Gap { before, .. } => {
                // The transition is the last one at or before the local time read in the
                // offset that was in force before it.
                let candidate = local - seconds(before);
                LocalInstants::Gap(self.previous_transition(candidate + 1).unwrap_or(candidate))
            }
        }
    }

    /// The key of the bucket holding `utc`.
    pub fn round(&self, utc: i64) -> i64 {
        self.round_without_offset(utc.saturating_sub(self.offset_ms))
            .saturating_add(self.offset_ms)
    }

    fn round_without_offset(&self, utc: i64) -> i64 {
        if let Some(fixed) = self.fixed_offset_ms {
            let local = utc.saturating_add(fixed);
            let rounded = match self.interval {
                Interval::Calendar(unit) => truncate_local(local, unit),
                Interval::Fixed(size) => local.div_euclid(size).saturating_mul(size),
            };
            return rounded.saturating_sub(fixed);
        }
        match self.interval {
            Interval::Calendar(unit) if unit.rounds_to_midnight() => {
                let local = utc.saturating_add(self.offset_at(utc));
                match self.local_instants(truncate_local(local, unit)) {
                    LocalInstants::One(instant) | LocalInstants::Two(instant, _) => instant,
                    LocalInstants::Gap(transition) => transition,
                }
            }
            Interval::Calendar(unit) => self.round_not_to_midnight(utc, unit),
            Interval::Fixed(size) => self.round_fixed(utc, size),
        }
    }

    fn round_not_to_midnight(&self, utc: i64, unit: CalendarUnit) -> i64 {
        let mut instant = utc;
        for _ in 0..TRANSITION_RETRIES_MAX {
            let truncated = truncate_local(instant.saturating_add(self.offset_at(instant)), unit);
            let rounded = match self.local_instants(truncated) {
                LocalInstants::One(one) => (one <= instant).then_some(one),
                LocalInstants::Two(earlier, later) => {
                    if later <= instant {
                        Some(later)
                    } else {
                        (earlier <= instant).then_some(earlier)
                    }
                }
                LocalInstants::Gap(_) => None,
            };
            match (self.previous_transition(instant), rounded) {
                (None, Some(rounded)) => return rounded,
                (Some(transition), Some(rounded)) if transition <= rounded => return rounded,
                (Some(transition), _) => instant = transition - 1,
                (None, None) => break,
            }
        }
        let offset = self.offset_at(utc);
        truncate_local(utc.saturating_add(offset), unit).saturating_sub(offset)
    }

    fn round_fixed(&self, utc: i64, size: i64) -> i64 {
        let mut instant = utc;
        'attempt: for _ in 0..TRANSITION_RETRIES_MAX {
            let local = instant.saturating_add(self.offset_at(instant));
            let rounded_local = local.div_euclid(size).saturating_mul(size);
            let candidates = match self.local_instants(rounded_local) {
                LocalInstants::Gap(transition) => return transition,
                LocalInstants::One(one) => [Some(one), None],
                LocalInstants::Two(earlier, later) => [Some(later), Some(earlier)],
            };
            let previous = self.previous_transition(instant.saturating_add(1));
            for candidate in candidates.into_iter().flatten() {
                if previous.is_some_and(|transition| candidate < transition) {
                    if let Some(transition) = previous {
                        instant = transition - 1;
                    }
                    continue 'attempt;
                }
                if candidate <= instant {
                    return candidate;
                }
            }
            return candidates
                .into_iter()
                .flatten()
                .last()
                .unwrap_or(rounded_local);
        }
        let offset = self.offset_at(utc);
        utc.saturating_add(offset)
            .div_euclid(size)
            .saturating_mul(size)
            .saturating_sub(offset)
    }

    /// The start of the bucket after the one that starts at `key`: the smallest instant whose
    /// rounding is greater than `key`.
    pub fn next(&self, key: i64) -> i64 {
        // The longest a bucket usually is: one step past it lands in the next bucket.
        let step = match self.interval {
            Interval::Fixed(size) => size,
            Interval::Calendar(unit) => match unit {
                CalendarUnit::Second => MILLIS_PER_SECOND,
                CalendarUnit::Minute => MILLIS_PER_MINUTE,
                CalendarUnit::Hour => MILLIS_PER_HOUR,
                CalendarUnit::Day => MILLIS_PER_DAY + MILLIS_PER_HOUR,
                CalendarUnit::Week => 7 * MILLIS_PER_DAY + MILLIS_PER_HOUR,
                CalendarUnit::Month => 31 * MILLIS_PER_DAY + MILLIS_PER_HOUR,
                CalendarUnit::Quarter => 92 * MILLIS_PER_DAY + MILLIS_PER_HOUR,
                CalendarUnit::Year => 366 * MILLIS_PER_DAY + MILLIS_PER_HOUR,
            },
        };
        if self.fixed_offset_ms.is_some()
            && let Interval::Fixed(size) = self.interval
        {
            return key.saturating_add(size);
        }
        let guess = self.round(key.saturating_add(step));
        if guess > key && self.round(guess - 1) == key {
            return guess;
        }
        // Find an instant past the next boundary, then search back to the boundary itself.
        let mut low = key;
        let mut high = key.saturating_add(step);
        let mut grow = step;
        while self.round(high) <= key {
            if high == i64::MAX {
                return i64::MAX;
            }
            low = high;
            grow = grow.saturating_mul(2);
            high = high.saturating_add(grow);
        }
        // Invariant: round(low) <= key < round(high).
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if self.round(middle) <= key {
                low = middle;
            } else {
                high = middle;
            }
        }
        high
    }

    /// Precomputes the bucket starts covering `[min, max]`, when there are at most
    /// `points_max` of them (worth it only when there are more values than buckets).
    pub fn prepare(&self, min: i64, max: i64, points_max: usize) -> PreparedRounding<'_> {
        let mut points = Vec::new();
        let points_max = points_max.min(PREPARED_POINTS_MAX);
        let smallest = match self.interval {
            Interval::Fixed(size) => size,
            Interval::Calendar(unit) => unit.fixed_millis().unwrap_or(28 * MILLIS_PER_DAY) / 2,
        };
        let estimate = (max.saturating_sub(min) / smallest.max(1)) as usize;
        if min <= max && self.fixed_offset_ms.is_none() && estimate < points_max {
            let mut key = self.round(min);
            points.push(key);
            while key <= max {
                let next = self.next(key);
                if next <= key || points.len() >= points_max {
                    points.clear();
                    break;
                }
                points.push(next);
                key = next;
            }
        }
        PreparedRounding {
            rounding: self,
            points,
        }
    }
}

/// A rounding with its bucket starts precomputed over a range of values.
pub struct PreparedRounding<'a> {
    rounding: &'a Rounding,
    /// Sorted bucket starts; the last one is past the range's maximum. Empty: round directly.
    points: Vec<i64>,
}

impl PreparedRounding<'_> {
    pub fn round(&self, utc: i64) -> i64 {
        let (Some(&first), Some(&last)) = (self.points.first(), self.points.last()) else {
            return self.rounding.round(utc);
        };
        if utc < first || utc >= last {
            return self.rounding.round(utc);
        }
        let index = self.points.partition_point(|&p| p <= utc);
        self.points
            .get(index.saturating_sub(1))
            .copied()
            .unwrap_or_else(|| self.rounding.round(utc))
    }
}

/// Renders local civil fields of an instant in a zone: `(date-time, offset seconds)`.
pub fn local_fields(utc: i64, time_zone: &TimeZone) -> Option<(DateTime, i32)> {
    let ts = Timestamp::from_millisecond(utc).ok()?;
    let offset = time_zone.to_offset(ts);
    Some((offset.to_datetime(ts), offset.seconds()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn rounding(interval: Interval, zone: &str) -> Rounding {
        Rounding::new(interval, parse_time_zone(zone).unwrap(), 0)
    }

    #[test]
    fn a_london_day_in_spring_is_23_hours() {
        let day = rounding(Interval::Calendar(CalendarUnit::Day), "Europe/London");
        let key = day.round(ms("2026-03-29T12:00:00Z"));
        assert_eq!(key, ms("2026-03-29T00:00:00Z"));
        assert_eq!(day.next(key) - key, 23 * MILLIS_PER_HOUR);
        assert_eq!(day.next(key), ms("2026-03-29T23:00:00Z"));
    }

    #[test]
    fn the_repeated_hour_in_autumn_is_two_buckets() {
        let hour = rounding(Interval::Calendar(CalendarUnit::Hour), "Europe/London");
        // 01:30 BST and 01:30 GMT on 2026-10-25.
        let first = hour.round(ms("2026-10-25T00:30:00Z"));
        let second = hour.round(ms("2026-10-25T01:30:00Z"));
        assert_eq!(first, ms("2026-10-25T00:00:00Z"));
        assert_eq!(second, ms("2026-10-25T01:00:00Z"));
        assert_eq!(hour.next(first), second);
    }

    #[test]
    fn weeks_start_on_monday_and_quarters_in_january() {
        let week = rounding(Interval::Calendar(CalendarUnit::Week), "UTC");
        // 2026-01-01 is a Thursday.
        assert_eq!(
            week.round(ms("2026-01-01T10:00:00Z")),
            ms("2025-12-29T00:00:00Z")
        );
        let quarter = rounding(
            Interval::Calendar(CalendarUnit::Quarter),
            "America/New_York",
        );
        assert_eq!(
            quarter.round(ms("2026-06-30T12:00:00Z")),
            ms("2026-04-01T04:00:00Z")
        );
        assert_eq!(
            quarter.next(ms("2026-04-01T04:00:00Z")),
            ms("2026-07-01T04:00:00Z")
        );
    }

    #[test]
    fn lord_howe_half_hour_shift() {
        // 2026-10-04 02:00 +10:30 becomes 02:30 +11:00.
        let hour = rounding(
            Interval::Calendar(CalendarUnit::Hour),
            "Australia/Lord_Howe",
        );
        let at = ms("2026-10-03T15:45:00Z"); // 02:45 +11:00
        assert_eq!(hour.round(at), ms("2026-10-03T14:30:00Z")); // 01:00 +10:30
        let fixed = rounding(Interval::Fixed(MILLIS_PER_HOUR), "Australia/Lord_Howe");
        assert_eq!(fixed.round(at), ms("2026-10-03T15:30:00Z")); // the transition
    }

    #[test]
    fn offsets_and_fixed_zones() {
        let day = rounding(Interval::Calendar(CalendarUnit::Day), "-08:00");
        assert_eq!(
            day.round(ms("2026-01-02T03:00:00Z")),
            ms("2026-01-01T08:00:00Z")
        );
        let kolkata = rounding(Interval::Calendar(CalendarUnit::Hour), "Asia/Kolkata");
        assert_eq!(
            kolkata.round(ms("2026-01-02T03:10:00Z")),
            ms("2026-01-02T02:30:00Z")
        );
        let shifted = Rounding::new(
            Interval::Calendar(CalendarUnit::Day),
            TimeZone::UTC,
            6 * MILLIS_PER_HOUR,
        );
        assert_eq!(
            shifted.round(ms("2026-01-02T03:00:00Z")),
            ms("2026-01-01T06:00:00Z")
        );
        assert_eq!(parse_fixed_millis("90m"), Some(90 * MILLIS_PER_MINUTE));
        assert_eq!(parse_fixed_millis("1M"), None);
        assert!(parse_time_zone("Mars/Olympus").is_none());
        assert!(parse_time_zone("+05:30").is_some());
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        for zone in ["UTC", "Europe/London", "+05:30"] {
            for interval in [
                Interval::Calendar(CalendarUnit::Hour),
                Interval::Calendar(CalendarUnit::Year),
                Interval::Fixed(7 * MILLIS_PER_DAY),
            ] {
                let r = rounding(interval, zone);
                for value in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
                    let key = r.round(value);
                    let _ = r.next(key);
                }
            }
        }
    }

    #[test]
    fn prepared_rounding_agrees_with_direct_rounding() {
        let hour = rounding(Interval::Calendar(CalendarUnit::Hour), "Europe/London");
        let (min, max) = (ms("2026-10-24T00:00:00Z"), ms("2026-10-27T00:00:00Z"));
        let prepared = hour.prepare(min, max, PREPARED_POINTS_MAX);
        let mut t = min;
        while t <= max {
            assert_eq!(prepared.round(t), hour.round(t), "at {t}");
            t += 7 * MILLIS_PER_MINUTE + 13;
        }
    }
}
