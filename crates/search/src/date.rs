//! Elasticsearch date formats: parsing the strings and numbers that a `date` field accepts into
//! epoch milliseconds, which is how the index stores and compares every date.
//!
//! A format is a `||`-separated list of alternatives, each a named format
//! (`strict_date_optional_time`, `epoch_millis`, …) or a pattern in the java.time letters that
//! Elasticsearch users write (`yyyy-MM-dd HH:mm:ss`, `yyyy/MM/dd Z`, …).

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// The format of a `date` field that declares none.
pub const DEFAULT_DATE_FORMAT: &str = "strict_date_optional_time||epoch_millis";

/// The formats that dynamic mapping tries on new string fields, in order (Elasticsearch's
/// `dynamic_date_formats` default), each with the `format` a field it detects is mapped with
/// (`None`: the default format, left out of the mapping).
pub const DYNAMIC_DATE_FORMATS: &[(&str, Option<&str>)] = &[
    ("strict_date_optional_time", None),
    (
        "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd",
        Some("yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis"),
    ),
];

/// Parses `value` with the first alternative of `format` that accepts it.
pub fn parse_date_str(value: &str, format: &str) -> Option<i64> {
    format
        .split("||")
        .map(str::trim)
        .find_map(|alternative| parse_with(value, alternative))
}

/// Parses a JSON number given to a date field: with an `epoch_millis` or `epoch_second`
/// alternative it is read as such; Elasticsearch reads bare numbers as epoch millis otherwise too.
pub fn parse_date_number(value: f64, format: &str) -> Option<i64> {
    if !value.is_finite() {
        return None;
    }
    let seconds = format
        .split("||")
        .map(str::trim)
        .any(|f| f == "epoch_second")
        && !format
            .split("||")
            .map(str::trim)
            .any(|f| f == "epoch_millis");
    let millis = if seconds { value * 1000.0 } else { value };
    if millis.abs() > 8.64e15 {
        return None;
    }
    Some(millis.trunc() as i64)
}

/// Whether a string looks like a date to dynamic mapping, and if so the `format` to map it
/// with (`Some(None)`: the default). Only full dates qualify, so that a bare year or a number in
/// a string stays text, as it does in Elasticsearch.
pub fn detect_date(value: &str) -> Option<Option<&'static str>> {
    let bytes = value.as_bytes();
    if bytes.len() < 10 || !bytes.get(4).is_some_and(|b| *b == b'-' || *b == b'/') {
        return None;
    }
    DYNAMIC_DATE_FORMATS
        .iter()
        .find(|(detect, _)| parse_date_str(value, detect).is_some())
        .map(|(_, mapped)| *mapped)
}

/// Renders epoch milliseconds as `strict_date_optional_time` in UTC.
pub fn format_millis(millis: i64) -> String {
    let Ok(datetime) =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
    else {
        return millis.to_string();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        datetime.year(),
        u8::from(datetime.month()),
        datetime.day(),
        datetime.hour(),
        datetime.minute(),
        datetime.second(),
        datetime.millisecond()
    )
}

fn parse_with(value: &str, format: &str) -> Option<i64> {
    match format {
        "strict_date_optional_time" | "date_optional_time" | "strict_date_optional_time_nanos" => {
            parse_iso(value)
        }
        "epoch_millis" => parse_epoch(value, 1),
        "epoch_second" => parse_epoch(value, 1000),
        "date" | "strict_date" => parse_pattern(value, "yyyy-MM-dd"),
        "basic_date" => parse_pattern(value, "yyyyMMdd"),
        "date_hour_minute_second" | "strict_date_hour_minute_second" => {
            parse_pattern(value, "yyyy-MM-dd'T'HH:mm:ss")
        }
        "date_time" | "strict_date_time" => parse_iso(value),
        "date_time_no_millis" | "strict_date_time_no_millis" => {
            parse_pattern(value, "yyyy-MM-dd'T'HH:mm:ssZ")
        }
        pattern => parse_pattern(value, pattern),
    }
}

fn parse_epoch(value: &str, unit_millis: i64) -> Option<i64> {
    let number: f64 = value.trim().parse().ok()?;
    if !value
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    let millis = number * unit_millis as f64;
    (millis.is_finite() && millis.abs() <= 8.64e15).then_some(millis.trunc() as i64)
}

/// A small cursor over ASCII bytes for the date parsers.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn eat(&mut self, expected: u8) -> bool {
        if self.peek() == Some(expected) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self, min: usize, max: usize) -> Option<(u32, usize)> {
        let mut value: u32 = 0;
        let mut count = 0;
        while count < max {
            match self.peek() {
                Some(b) if b.is_ascii_digit() => {
                    value = value * 10 + u32::from(b - b'0');
                    self.position += 1;
                    count += 1;
                }
                _ => break,
            }
        }
        (count >= min).then_some((value, count))
    }

    fn at_end(&self) -> bool {
        self.position >= self.bytes.len()
    }

    /// `Z`, `+HH:mm`, `+HHmm` or `+HH`.
    fn offset(&mut self) -> Option<i32> {
        if self.eat(b'Z') || self.eat(b'z') {
            return Some(0);
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return None;
        };
        let (hours, _) = self.digits(2, 2)?;
        self.eat(b':');
        let minutes = self.digits(2, 2).map_or(0, |(m, _)| m);
        if hours > 18 || minutes > 59 {
            return None;
        }
        Some(sign * (hours as i32 * 3600 + minutes as i32 * 60))
    }
}

struct Fields {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_seconds: i32,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            nanos: 0,
            offset_seconds: 0,
        }
    }
}

impl Fields {
    fn to_millis(&self) -> Option<i64> {
        let month = Month::try_from(u8::try_from(self.month).ok()?).ok()?;
        let date = Date::from_calendar_date(self.year, month, u8::try_from(self.day).ok()?).ok()?;
        let time = Time::from_hms_nano(
            u8::try_from(self.hour).ok()?,
            u8::try_from(self.minute).ok()?,
            u8::try_from(self.second).ok()?,
            self.nanos,
        )
        .ok()?;
        let offset = UtcOffset::from_whole_seconds(self.offset_seconds).ok()?;
        let datetime = PrimitiveDateTime::new(date, time).assume_offset(offset);
        i64::try_from(datetime.unix_timestamp_nanos() / 1_000_000).ok()
    }
}

fn parse_fraction(cursor: &mut Cursor<'_>) -> Option<u32> {
    let (value, count) = cursor.digits(1, 9)?;
    Some(value * 10u32.pow(9 - count as u32))
}

/// `yyyy[-MM[-dd]][THH[:mm[:ss[.S…]]]][offset]`, as `strict_date_optional_time`.
fn parse_iso(value: &str) -> Option<i64> {
    let mut cursor = Cursor {
        bytes: value.as_bytes(),
        position: 0,
    };
    let mut fields = Fields::default();
    let negative = cursor.eat(b'-');
    let (year, _) = cursor.digits(4, 4)?;
    fields.year = if negative {
        -(year as i32)
    } else {
        year as i32
    };
    if cursor.eat(b'-') {
        fields.month = cursor.digits(2, 2)?.0;
        if cursor.eat(b'-') {
            fields.day = cursor.digits(2, 2)?.0;
            if cursor.eat(b'T') || cursor.eat(b't') {
                fields.hour = cursor.digits(2, 2)?.0;
                if cursor.eat(b':') {
                    fields.minute = cursor.digits(2, 2)?.0;
                    if cursor.eat(b':') {
                        fields.second = cursor.digits(2, 2)?.0;
                        if cursor.eat(b'.') || cursor.eat(b',') {
                            fields.nanos = parse_fraction(&mut cursor)?;
                        }
                    }
                }
                if !cursor.at_end() {
                    fields.offset_seconds = cursor.offset()?;
                }
            }
        }
    }
    if !cursor.at_end() {
        return None;
    }
    fields.to_millis()
}

/// A java.time-style pattern: `yyyy uuuu MM dd HH mm ss S… Z X` and quoted or plain literals.
fn parse_pattern(value: &str, pattern: &str) -> Option<i64> {
    let mut cursor = Cursor {
        bytes: value.as_bytes(),
        position: 0,
    };
    let mut fields = Fields::default();
    let mut rest = pattern.as_bytes();
    while let Some(&letter) = rest.first() {
        let run = rest.iter().take_while(|b| **b == letter).count();
        if letter == b'\'' {
            let quoted = rest.get(1..)?;
            let literal_length = quoted.iter().position(|b| *b == b'\'')?;
            for expected in quoted.get(..literal_length)? {
                if !cursor.eat(*expected) {
                    return None;
                }
            }
            rest = quoted.get(literal_length + 1..)?;
            continue;
        }
        match letter {
            b'y' | b'u' => fields.year = cursor.digits(4, 4)?.0 as i32,
            b'M' => fields.month = cursor.digits(1, 2)?.0,
            b'd' => fields.day = cursor.digits(1, 2)?.0,
            b'H' => fields.hour = cursor.digits(1, 2)?.0,
            b'm' => fields.minute = cursor.digits(1, 2)?.0,
            b's' => fields.second = cursor.digits(1, 2)?.0,
            b'S' => fields.nanos = parse_fraction(&mut cursor)?,
            b'Z' | b'X' | b'x' => fields.offset_seconds = cursor.offset()?,
            b'a'..=b'z' | b'A'..=b'Z' => return None,
            literal => {
                for _ in 0..run {
                    if !cursor.eat(literal) {
                        return None;
                    }
                }
            }
        }
        rest = rest.get(run..)?;
    }
    if !cursor.at_end() {
        return None;
    }
    fields.to_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_forms() {
        assert_eq!(parse_date_str("1970-01-01", DEFAULT_DATE_FORMAT), Some(0));
        assert_eq!(
            parse_date_str("1970-01-01T00:00:01Z", DEFAULT_DATE_FORMAT),
            Some(1000)
        );
        assert_eq!(
            parse_date_str("1970-01-01T00:00:01.5Z", DEFAULT_DATE_FORMAT),
            Some(1500)
        );
        assert_eq!(
            parse_date_str("1970-01-01T01:00:00+01:00", DEFAULT_DATE_FORMAT),
            Some(0)
        );
        assert_eq!(
            parse_date_str("2016-02-25T13:00:00.123456789Z", DEFAULT_DATE_FORMAT),
            Some(1_456_405_200_123)
        );
        assert_eq!(
            parse_date_str("2016", DEFAULT_DATE_FORMAT),
            Some(1_451_606_400_000)
        );
        assert_eq!(
            parse_date_str("1456405200123", DEFAULT_DATE_FORMAT),
            Some(1_456_405_200_123)
        );
        assert_eq!(parse_date_str("2016-02-30", DEFAULT_DATE_FORMAT), None);
        assert_eq!(parse_date_str("hello", DEFAULT_DATE_FORMAT), None);
        assert_eq!(parse_date_str("2016-02-25T", DEFAULT_DATE_FORMAT), None);
    }

    #[test]
    fn patterns() {
        assert_eq!(
            parse_date_str("2015/01/01 12:10:30 +0000", "yyyy/MM/dd HH:mm:ss Z"),
            Some(1_420_114_230_000)
        );
        assert_eq!(
            parse_date_str("2015/01/01 Z", "yyyy/MM/dd Z"),
            Some(1_420_070_400_000)
        );
        assert_eq!(
            parse_date_str("2015-01-01 12:10:30", "yyyy-MM-dd HH:mm:ss"),
            Some(1_420_114_230_000)
        );
        assert_eq!(
            parse_date_str("20150101", "basic_date"),
            Some(1_420_070_400_000)
        );
        assert_eq!(
            parse_date_str("1420070400", "epoch_second"),
            Some(1_420_070_400_000)
        );
    }

    #[test]
    fn detection_needs_a_full_date() {
        assert_eq!(detect_date("2015-01-01"), Some(None));
        assert_eq!(detect_date("2015-01-01T12:10:30Z"), Some(None));
        let slashes = Some(Some("yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis"));
        assert_eq!(detect_date("2015/09/02"), slashes);
        assert_eq!(detect_date("2015/09/02 12:10:30"), slashes);
        assert_eq!(detect_date("2015"), None);
        assert_eq!(detect_date("12345678901"), None);
        assert_eq!(detect_date("hello world"), None);
    }

    #[test]
    fn formats_utc() {
        assert_eq!(format_millis(1_456_405_200_123), "2016-02-25T13:00:00.123Z");
    }
}
