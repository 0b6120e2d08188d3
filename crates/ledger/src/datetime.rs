//! PartiQL's date functions over Ion timestamps: `EXTRACT`, `DATE_ADD`, `DATE_DIFF`, with the
//! date parts QLDB accepts (year, month, day, hour, minute, second; timezone_hour and
//! timezone_minute for `EXTRACT`).

use ion_rs::{Element, IonType};
use time::OffsetDateTime;

use crate::error::LedgerError;
use crate::model;

fn bad(message: impl Into<String>) -> LedgerError {
    LedgerError::BadRequest(message.into())
}

fn instant(value: &Option<Element>) -> Result<Option<OffsetDateTime>, LedgerError> {
    match value {
        None => Ok(None),
        Some(element) if element.is_null() => Ok(None),
        Some(element) => {
            let timestamp = element
                .as_timestamp()
                .ok_or_else(|| bad("date functions take timestamps"))?;
            model::datetime_from_timestamp(&timestamp).map(Some)
        }
    }
}

/// Adds whole months, clamping the day to the target month's length.
fn add_months(instant: OffsetDateTime, months: i64) -> Result<OffsetDateTime, LedgerError> {
    let total = (i64::from(instant.year()) * 12 + i64::from(u8::from(instant.month())) - 1)
        .checked_add(months)
        .ok_or_else(|| bad("date out of range"))?;
    let year = i32::try_from(total.div_euclid(12)).map_err(|_| bad("date out of range"))?;
    let month_number =
        u8::try_from(total.rem_euclid(12) + 1).map_err(|_| bad("date out of range"))?;
    let month = time::Month::try_from(month_number).map_err(|_| bad("date out of range"))?;
    let day = instant.day().min(month.length(year));
    let date =
        time::Date::from_calendar_date(year, month, day).map_err(|_| bad("date out of range"))?;
    Ok(instant.replace_date(date))
}

/// Adds `amount` units of `unit_seconds`, refusing results outside the representable range.
fn add_seconds(
    instant: OffsetDateTime,
    amount: i64,
    unit_seconds: i64,
) -> Result<OffsetDateTime, LedgerError> {
    amount
        .checked_mul(unit_seconds)
        .map(time::Duration::seconds)
        .and_then(|duration| instant.checked_add(duration))
        .ok_or_else(|| bad("date out of range"))
}

/// Evaluates `extract`, `date_add` or `date_diff` with its date part and its other arguments.
pub fn call(
    name: &str,
    part: &str,
    values: &[Option<Element>],
) -> Result<Option<Element>, LedgerError> {
    let missing = values.iter().any(Option::is_none);
    if missing {
        return Ok(None);
    }
    let null = Some(Element::null(IonType::Null));
    match name {
        "extract" => {
            let Some(value) = values.first().cloned().flatten() else {
                return Ok(None);
            };
            if value.is_null() {
                return Ok(null);
            }
            let timestamp = value
                .as_timestamp()
                .ok_or_else(|| bad("EXTRACT takes a timestamp"))?;
            let offset_minutes = i64::from(timestamp.offset().unwrap_or(0));
            let number: i64 = match part {
                "year" => i64::from(timestamp.year()),
                "month" => i64::from(timestamp.month()),
                "day" => i64::from(timestamp.day()),
                "hour" => i64::from(timestamp.hour()),
                "minute" => i64::from(timestamp.minute()),
                "second" => i64::from(timestamp.second()),
                "timezone_hour" => offset_minutes / 60,
                "timezone_minute" => offset_minutes % 60,
                other => return Err(bad(format!("unknown date part {other}"))),
            };
            Ok(Some(Element::int(number)))
        }
        "date_add" => {
            let amount = values
                .first()
                .cloned()
                .flatten()
                .and_then(|amount| amount.as_i64())
                .ok_or_else(|| bad("DATE_ADD takes an integer amount"))?;
            let Some(start) = instant(&values.get(1).cloned().flatten())? else {
                return Ok(null);
            };
            let result = match part {
                "year" => add_months(start, amount.saturating_mul(12))?,
                "month" => add_months(start, amount)?,
                "day" => add_seconds(start, amount, 86_400)?,
                "hour" => add_seconds(start, amount, 3_600)?,
                "minute" => add_seconds(start, amount, 60)?,
                "second" => add_seconds(start, amount, 1)?,
                other => return Err(bad(format!("unknown date part {other}"))),
            };
            Ok(Some(Element::timestamp(model::timestamp_from_datetime(
                result,
            )?)))
        }
        "date_diff" => {
            let (Some(first), Some(second)) = (
                instant(&values.first().cloned().flatten())?,
                instant(&values.get(1).cloned().flatten())?,
            ) else {
                return Ok(null);
            };
            let difference = second - first;
            let months = || {
                (i64::from(second.year()) - i64::from(first.year())) * 12
                    + i64::from(u8::from(second.month()))
                    - i64::from(u8::from(first.month()))
            };
            let number = match part {
                "year" => months() / 12,
                "month" => months(),
                "day" => difference.whole_days(),
                "hour" => difference.whole_hours(),
                "minute" => difference.whole_minutes(),
                "second" => difference.whole_seconds(),
                other => return Err(bad(format!("unknown date part {other}"))),
            };
            Ok(Some(Element::int(number)))
        }
        other => Err(bad(format!("unknown function {other}"))),
    }
}
