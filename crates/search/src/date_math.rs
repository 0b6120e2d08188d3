//! Elasticsearch date math in range bounds and decay origins: `now-1d/d`,
//! `2026-12-01||+1M/M`, with the rounding each bound asks for (`gt` and `lte` round up to the
//! last millisecond of the unit, `gte` and `lt` down to its first).

use time::{Date, Duration, Month, OffsetDateTime, Time, UtcOffset};

use crate::date;

/// Operations one date math expression may chain (`+1d-1h/d` is three).
pub const DATE_MATH_OPERATIONS_MAX: usize = 16;

/// Resolves `expression` to epoch milliseconds. Dates are read with `format`; dates without an
/// offset and rounding are taken in `zone`.
pub fn resolve(
    expression: &str,
    now_ms: i64,
    format: &str,
    zone: UtcOffset,
    round_up: bool,
) -> Result<i64, String> {
    let failed = || format!("failed to parse date field [{expression}] with format [{format}]");
    let (anchor, math) = if let Some(rest) = expression.strip_prefix("now") {
        (now_ms, rest)
    } else {
        let (date_text, math) = match expression.split_once("||") {
            Some((date_text, math)) => (date_text, math),
            None => (expression, ""),
        };
        let parsed = date::parse_date_str(date_text, format).ok_or_else(failed)?;
        (shift_to_zone(date_text, parsed, zone), math)
    };
    let mut moment = from_millis(anchor).ok_or_else(failed)?.to_offset(zone);
    let mut rest = math;
    let mut operations = 0;
    while !rest.is_empty() {
        operations += 1;
        if operations > DATE_MATH_OPERATIONS_MAX {
            return Err(format!(
                "date math [{expression}] has more than {DATE_MATH_OPERATIONS_MAX} operations"
            ));
        }
        let mut chars = rest.chars();
        let operator = chars.next().unwrap_or(' ');
        rest = chars.as_str();
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let amount: i64 = if digits == 0 {
            1
        } else {
            rest.get(..digits)
                .and_then(|d| d.parse().ok())
                .ok_or_else(failed)?
        };
        rest = rest.get(digits..).unwrap_or_default();
        let mut unit_chars = rest.chars();
        let unit = unit_chars
            .next()
            .ok_or_else(|| format!("truncated date math [{expression}]"))?;
        rest = unit_chars.as_str();
        moment = match operator {
            '+' => add(moment, unit, amount),
            '-' => add(moment, unit, -amount),
            '/' if digits == 0 => round(moment, unit, round_up),
            _ => None,
        }
        .ok_or_else(|| format!("operator not supported for date math [{expression}]"))?;
    }
    Ok((moment.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Parses a `time_zone`: `Z`, `UTC`, `+01:00`, `-0530`.
pub fn parse_zone(text: &str) -> Option<UtcOffset> {
    if matches!(text, "Z" | "UTC" | "utc" | "GMT" | "Etc/UTC") {
        return Some(UtcOffset::UTC);
    }
    let sign = match text.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let digits: String = text.chars().skip(1).filter(|c| *c != ':').collect();
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i8>().ok()?, 0),
        4 => (
            digits.get(..2)?.parse::<i8>().ok()?,
            digits.get(2..)?.parse::<i8>().ok()?,
        ),
        _ => return None,
    };
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

/// A date written without an offset is in `zone`: move its UTC reading by the offset.
fn shift_to_zone(text: &str, millis: i64, zone: UtcOffset) -> i64 {
    if zone == UtcOffset::UTC || has_offset(text) || !text.contains(['-', '/', ':']) {
        return millis;
    }
    millis - i64::from(zone.whole_seconds()) * 1000
}

fn has_offset(text: &str) -> bool {
    if text.ends_with('Z') || text.ends_with('z') {
        return true;
    }
    // `…T10:00:00+01:00` or `…+0100`: a sign after the time part.
    match text.find('T').or_else(|| text.find(' ')) {
        Some(time_start) => text
            .get(time_start..)
            .is_some_and(|time| time.contains(['+', '-'])),
        None => false,
    }
}

fn from_millis(millis: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
}

fn add(moment: OffsetDateTime, unit: char, amount: i64) -> Option<OffsetDateTime> {
    match unit {
        'y' => add_months(moment, amount.checked_mul(12)?),
        'M' => add_months(moment, amount),
        'w' => moment.checked_add(Duration::weeks(amount)),
        'd' => moment.checked_add(Duration::days(amount)),
        'h' | 'H' => moment.checked_add(Duration::hours(amount)),
        'm' => moment.checked_add(Duration::minutes(amount)),
        's' => moment.checked_add(Duration::seconds(amount)),
        _ => None,
    }
}

/// Adds calendar months, clamping the day to the month's last (as java.time does).
fn add_months(moment: OffsetDateTime, months: i64) -> Option<OffsetDateTime> {
    let index = i64::from(moment.year()) * 12 + i64::from(moment.month() as u8) - 1 + months;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from((index.rem_euclid(12) + 1) as u8).ok()?;
    let day = moment.day().min(month.length(year));
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(moment.replace_date(date))
}

/// The first millisecond of `moment`'s unit, or with `up` its last.
fn round(moment: OffsetDateTime, unit: char, up: bool) -> Option<OffsetDateTime> {
    let start =
        match unit {
            'y' => moment
                .replace_date(Date::from_calendar_date(moment.year(), Month::January, 1).ok()?),
            'M' => moment
                .replace_date(Date::from_calendar_date(moment.year(), moment.month(), 1).ok()?),
            'w' => {
                let back = i64::from(moment.weekday().number_days_from_monday());
                moment.checked_sub(Duration::days(back))?
            }
            'd' | 'h' | 'H' | 'm' | 's' => moment,
            _ => return None,
        };
    let start = match unit {
        'y' | 'M' | 'w' | 'd' => start.replace_time(Time::MIDNIGHT),
        'h' | 'H' => start.replace_time(Time::from_hms(start.hour(), 0, 0).ok()?),
        'm' => start.replace_time(Time::from_hms(start.hour(), start.minute(), 0).ok()?),
        _ => start.replace_time(Time::from_hms(start.hour(), start.minute(), start.second()).ok()?),
    };
    if !up {
        return Some(start);
    }
    let next = match unit {
        'y' => add_months(start, 12)?,
        'M' => add_months(start, 1)?,
        'w' => start.checked_add(Duration::weeks(1))?,
        'd' => start.checked_add(Duration::days(1))?,
        'h' | 'H' => start.checked_add(Duration::hours(1))?,
        'm' => start.checked_add(Duration::minutes(1))?,
        _ => start.checked_add(Duration::seconds(1))?,
    };
    next.checked_sub(Duration::milliseconds(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: &str = date::DEFAULT_DATE_FORMAT;

    fn at(text: &str) -> i64 {
        date::parse_date_str(text, FORMAT).unwrap()
    }

    #[test]
    fn anchors_arithmetic_and_rounding() {
        let now = at("2026-12-15T13:45:30.250Z");
        let resolve_utc = |e: &str, up| resolve(e, now, FORMAT, UtcOffset::UTC, up).unwrap();
        assert_eq!(resolve_utc("now", false), now);
        assert_eq!(resolve_utc("now-1d/d", false), at("2026-12-14T00:00:00Z"));
        assert_eq!(
            resolve_utc("now-1d/d", true),
            at("2026-12-14T23:59:59.999Z")
        );
        assert_eq!(
            resolve_utc("2026-12-01||+1M", false),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            resolve_utc("2026-01-31||+1M", false),
            at("2026-02-28T00:00:00Z")
        );
        assert_eq!(
            resolve_utc("2026-11-18||/M", true),
            at("2026-11-30T23:59:59.999Z")
        );
        assert_eq!(resolve_utc("now/w", false), at("2026-12-14T00:00:00Z"));
        assert_eq!(resolve_utc("now+2h/h", false), at("2026-12-15T15:00:00Z"));
        assert!(resolve("now+1x", now, FORMAT, UtcOffset::UTC, false).is_err());
        assert!(resolve("yesterday", now, FORMAT, UtcOffset::UTC, false).is_err());
    }

    #[test]
    fn time_zones_move_dates_without_offset_and_rounding() {
        let zone = parse_zone("+01:00").unwrap();
        let now = at("2026-12-15T00:30:00Z");
        assert_eq!(
            resolve("2026-12-15T10:00:00", now, FORMAT, zone, false).unwrap(),
            at("2026-12-15T09:00:00Z")
        );
        assert_eq!(
            resolve("2026-12-15T10:00:00Z", now, FORMAT, zone, false).unwrap(),
            at("2026-12-15T10:00:00Z")
        );
        assert_eq!(
            resolve("now/d", now, FORMAT, zone, false).unwrap(),
            at("2026-12-14T23:00:00Z")
        );
        assert_eq!(parse_zone("-0530"), UtcOffset::from_hms(-5, -30, 0).ok());
        assert_eq!(parse_zone("Europe/Paris"), None);
    }
}
