//! Elasticsearch date math, for range bounds and decay origins in queries and for the bounds
//! of date aggregations: `now-1d/d`, `2026-12-01||+1M/M`, or a plain date in the field's format,
//! read in the request's time zone (an IANA name or an offset) when it carries no offset. Range
//! bounds ask for their rounding: `gt` and `lte` round up to the last millisecond of the unit,
//! `gte` and `lt` down to its first.

use jiff::tz::TimeZone;

use crate::aggs::rounding::{
    CalendarUnit, Interval, MILLIS_PER_DAY, MILLIS_PER_HOUR, MILLIS_PER_MINUTE, MILLIS_PER_SECOND,
    Rounding, civil_from_days, days_from_civil,
};
use crate::date;

pub use crate::aggs::rounding::parse_time_zone;

/// Operations one date math expression may chain (`+1d-1h/d` is three); more answer 400.
pub const DATE_MATH_OPERATIONS_MAX: usize = 16;

/// Resolves `expression` to epoch milliseconds; `now_ms` is the request's `now`. Dates are read
/// with `format`; dates without an offset, and calendar rounding, are taken in `time_zone`.
/// With `round_up`, a rounding lands on the last millisecond of its unit. Errors are reasons
/// for a 400.
pub fn resolve(
    expression: &str,
    now_ms: i64,
    format: &str,
    time_zone: &TimeZone,
    round_up: bool,
) -> Result<i64, String> {
    let text = expression.trim();
    let (anchor, mut ops) = if let Some(rest) = text.strip_prefix("now") {
        (now_ms, rest)
    } else {
        let (date_text, rest) = match text.split_once("||") {
            Some((date_text, rest)) => (date_text, rest),
            None => (text, ""),
        };
        (parse_anchor(date_text, format, time_zone)?, rest)
    };
    let mut value = anchor;
    let bad = || format!("operator not supported for date math [{text}]");
    let mut operations = 0;
    while let Some(op) = ops.chars().next() {
        operations += 1;
        if operations > DATE_MATH_OPERATIONS_MAX {
            return Err(format!(
                "date math [{text}] has more than {DATE_MATH_OPERATIONS_MAX} operations"
            ));
        }
        ops = ops.get(1..).unwrap_or("");
        match op {
            '+' | '-' => {
                let digits_end = ops.find(|c: char| !c.is_ascii_digit()).unwrap_or(ops.len());
                let amount: i64 = if digits_end == 0 {
                    1
                } else {
                    ops.get(..digits_end)
                        .and_then(|d| d.parse().ok())
                        .ok_or_else(bad)?
                };
                ops = ops.get(digits_end..).unwrap_or("");
                let unit = ops
                    .chars()
                    .next()
                    .ok_or_else(|| format!("truncated date math [{text}]"))?;
                ops = ops.get(unit.len_utf8()..).unwrap_or("");
                let signed = if op == '-' { -amount } else { amount };
                value = add(value, signed, unit, time_zone).ok_or_else(bad)?;
            }
            '/' => {
                let unit = ops
                    .chars()
                    .next()
                    .ok_or_else(|| format!("truncated date math [{text}]"))?;
                ops = ops.get(unit.len_utf8()..).unwrap_or("");
                let calendar = calendar_unit(unit).ok_or_else(bad)?;
                let rounding = Rounding::new(Interval::Calendar(calendar), time_zone.clone(), 0);
                value = rounding.round(value);
                if round_up {
                    // The next unit's first millisecond, less one: weeks as seven local days.
                    let (amount, step) = if unit == 'w' { (7, 'd') } else { (1, unit) };
                    value = add(value, amount, step, time_zone)
                        .and_then(|next| next.checked_sub(1))
                        .ok_or_else(bad)?;
                }
            }
            _ => return Err(bad()),
        }
    }
    Ok(value)
}

fn calendar_unit(unit: char) -> Option<CalendarUnit> {
    Some(match unit {
        'y' => CalendarUnit::Year,
        'M' => CalendarUnit::Month,
        'w' => CalendarUnit::Week,
        'd' => CalendarUnit::Day,
        'h' | 'H' => CalendarUnit::Hour,
        'm' => CalendarUnit::Minute,
        's' => CalendarUnit::Second,
        _ => return None,
    })
}

fn add(value: i64, amount: i64, unit: char, time_zone: &TimeZone) -> Option<i64> {
    let fixed = match unit {
        'w' => Some(7 * MILLIS_PER_DAY),
        'h' | 'H' => Some(MILLIS_PER_HOUR),
        'm' => Some(MILLIS_PER_MINUTE),
        's' => Some(MILLIS_PER_SECOND),
        _ => None,
    };
    if let Some(size) = fixed {
        return value.checked_add(amount.checked_mul(size)?);
    }
    // Days, months and years move the local date, keeping the local time of day. Dates stay
    // within ±292 million years of 1970, which epoch milliseconds can hold.
    const DAYS_MAX: i64 = i64::MAX / MILLIS_PER_DAY - 1;
    let offset = offset_ms(value, time_zone);
    let local = value.checked_add(offset)?;
    let days = local.div_euclid(MILLIS_PER_DAY);
    let time = local.rem_euclid(MILLIS_PER_DAY);
    let new_days = match unit {
        'd' => days.checked_add(amount)?,
        'M' | 'y' => {
            let (year, month, day) = civil_from_days(days);
            let months = if unit == 'y' {
                amount.checked_mul(12)?
            } else {
                amount
            };
            let total = year
                .checked_mul(12)?
                .checked_add(i64::from(month) - 1)?
                .checked_add(months)?;
            let (new_year, new_month) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
            if new_year.unsigned_abs() > (DAYS_MAX / 366) as u64 {
                return None;
            }
            let last_day = days_in_month(new_year, new_month);
            days_from_civil(new_year, new_month, day.min(last_day))
        }
        _ => return None,
    };
    if new_days.unsigned_abs() > DAYS_MAX as u64 {
        return None;
    }
    let new_local = new_days * MILLIS_PER_DAY + time;
    new_local.checked_sub(offset_ms(new_local.saturating_sub(offset), time_zone))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let next = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    (next - days_from_civil(year, month, 1)) as u32
}

fn offset_ms(utc: i64, time_zone: &TimeZone) -> i64 {
    jiff::Timestamp::from_millisecond(utc)
        .map(|ts| i64::from(time_zone.to_offset(ts).seconds()) * MILLIS_PER_SECOND)
        .unwrap_or(0)
}

/// Whether a date string says its own offset (`Z`, `+01:00`, `-0500` after the time).
fn has_offset(text: &str) -> bool {
    match text.find('T') {
        Some(t) => text
            .get(t..)
            .is_some_and(|time| time.contains('Z') || time.contains('+') || time.contains('-')),
        None => false,
    }
}

fn parse_anchor(text: &str, format: &str, time_zone: &TimeZone) -> Result<i64, String> {
    let utc = date::parse_date_str(text, format)
        .or_else(|| date::parse_date_str(text, date::DEFAULT_DATE_FORMAT))
        .ok_or_else(|| format!("failed to parse date field [{text}] with format [{format}]"))?;
    let is_epoch = text.trim().parse::<f64>().is_ok();
    if is_epoch || has_offset(text) {
        return Ok(utc);
    }
    // A local date-time in the zone: the offset in force at that local time.
    let guess = utc - offset_ms(utc, time_zone);
    Ok(utc - offset_ms(guess, time_zone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_down(text: &str, now: i64, format: &str, zone: &TimeZone) -> Result<i64, String> {
        resolve(text, now, format, zone, false)
    }

    #[test]
    fn date_math() {
        let utc = TimeZone::UTC;
        let now = 1_782_391_530_000; // 2026-06-25T12:45:30Z
        let f = date::DEFAULT_DATE_FORMAT;
        assert_eq!(resolve_down("now", now, f, &utc), Ok(now));
        assert_eq!(resolve_down("now/d", now, f, &utc), Ok(1_782_345_600_000));
        assert_eq!(
            resolve_down("now-1d/d", now, f, &utc),
            Ok(1_782_259_200_000)
        );
        assert_eq!(
            resolve_down("2026-01-31||+1M", now, f, &utc),
            Ok(1_772_236_800_000)
        ); // 2026-02-28
        assert_eq!(
            resolve_down("2026-06-25", now, f, &parse_time_zone("+02:00").unwrap()),
            Ok(1_782_338_400_000)
        );
        assert_eq!(
            resolve_down(
                "2026-06-25T00:00:00Z",
                now,
                f,
                &parse_time_zone("+02:00").unwrap()
            ),
            Ok(1_782_345_600_000)
        );
        assert!(resolve_down("now+1x", now, f, &utc).is_err());
        assert!(resolve_down("now+999999999999999999y", now, f, &utc).is_err());
        assert!(resolve_down("now+9999999999999999d", now, f, &utc).is_err());
        assert!(resolve_down("now-9223372036854775807s", now, f, &utc).is_err());
        assert!(resolve_down("yesterday", now, f, &utc).is_err());
    }

    const FORMAT: &str = date::DEFAULT_DATE_FORMAT;

    fn at(text: &str) -> i64 {
        date::parse_date_str(text, FORMAT).unwrap()
    }

    #[test]
    fn anchors_arithmetic_and_rounding() {
        let now = at("2026-12-15T13:45:30.250Z");
        let resolve_utc = |e: &str, up| resolve(e, now, FORMAT, &TimeZone::UTC, up).unwrap();
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
        assert!(resolve("now+1x", now, FORMAT, &TimeZone::UTC, false).is_err());
        assert!(resolve("yesterday", now, FORMAT, &TimeZone::UTC, false).is_err());
    }

    #[test]
    fn time_zones_move_dates_without_offset_and_rounding() {
        let zone = parse_time_zone("+01:00").unwrap();
        let now = at("2026-12-15T00:30:00Z");
        assert_eq!(
            resolve("2026-12-15T10:00:00", now, FORMAT, &zone, false).unwrap(),
            at("2026-12-15T09:00:00Z")
        );
        assert_eq!(
            resolve("2026-12-15T10:00:00Z", now, FORMAT, &zone, false).unwrap(),
            at("2026-12-15T10:00:00Z")
        );
        assert_eq!(
            resolve("now/d", now, FORMAT, &zone, false).unwrap(),
            at("2026-12-14T23:00:00Z")
        );
        // A named zone follows its daylight saving time: London is +01:00 in June.
        let london = parse_time_zone("Europe/London").unwrap();
        assert_eq!(
            resolve("2026-06-25T10:00:00", now, FORMAT, &london, false).unwrap(),
            at("2026-06-25T09:00:00Z")
        );
        assert_eq!(
            resolve("2026-06-25||/d", now, FORMAT, &london, true).unwrap(),
            at("2026-06-25T22:59:59.999Z")
        );
        assert!(parse_time_zone("Mars/Olympus").is_none());
    }
}
