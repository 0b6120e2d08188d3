//! How aggregation keys and values print as strings (`key_as_string`, `value_as_string`):
//! Elasticsearch's date formats in a time zone, booleans, and simple decimal patterns.
//!
//! Printing needs only the first alternative of a `||` format, as Elasticsearch prints with it.

use jiff::tz::TimeZone;

use super::rounding::local_fields;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(String),
    /// A pattern letter and how many times it repeats.
    Field(char, usize),
    EpochMillis,
    EpochSecond,
}

/// A date format that can print instants.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFormat {
    tokens: Vec<Token>,
}

/// The java.time pattern of each named format Elasticsearch prints with.
fn named_pattern(name: &str) -> Option<&'static str> {
    let name = name.strip_prefix("strict_").unwrap_or(name);
    Some(match name {
        "date_optional_time" | "date_optional_time_nanos" | "date_time" => {
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
        }
        "date_time_no_millis" => "yyyy-MM-dd'T'HH:mm:ssXXX",
        "date" => "yyyy-MM-dd",
        "date_hour" => "yyyy-MM-dd'T'HH",
        "date_hour_minute" => "yyyy-MM-dd'T'HH:mm",
        "date_hour_minute_second" => "yyyy-MM-dd'T'HH:mm:ss",
        "date_hour_minute_second_millis" | "date_hour_minute_second_fraction" => {
            "yyyy-MM-dd'T'HH:mm:ss.SSS"
        }
        "year_month_day" => "yyyy-MM-dd",
        "year_month" => "yyyy-MM",
        "year" => "yyyy",
        "hour" => "HH",
        "hour_minute" => "HH:mm",
        "hour_minute_second" => "HH:mm:ss",
        "hour_minute_second_millis" | "hour_minute_second_fraction" => "HH:mm:ss.SSS",
        "time" => "HH:mm:ss.SSSXXX",
        "time_no_millis" => "HH:mm:ssXXX",
        "t_time" => "'T'HH:mm:ss.SSSXXX",
        "basic_date" => "yyyyMMdd",
        "basic_date_time" => "yyyyMMdd'T'HHmmss.SSSZ",
        "basic_date_time_no_millis" => "yyyyMMdd'T'HHmmssZ",
        "basic_time" => "HHmmss.SSSZ",
        "ordinal_date" => "yyyy-DDD",
        _ => return None,
    })
}

impl DateFormat {
    /// Parses an Elasticsearch date format; only the first `||` alternative prints.
    pub fn parse(format: &str) -> Result<DateFormat, String> {
        let first = format.split("||").next().unwrap_or(format).trim();
        match first {
            "epoch_millis" => {
                return Ok(DateFormat {
                    tokens: vec![Token::EpochMillis],
                });
            }
            "epoch_second" => {
                return Ok(DateFormat {
                    tokens: vec![Token::EpochSecond],
                });
            }
            _ => {}
        }
        let pattern = named_pattern(first).unwrap_or(first);
        let tokens = tokenize(pattern)?;
        if tokens.is_empty() {
            return Err(format!("Invalid format: [{format}]: the pattern is empty"));
        }
        Ok(DateFormat { tokens })
    }

    /// `utc` printed in UTC with `format` (the first of its `||` alternatives).
    pub fn format_utc(format: &str, utc: i64) -> Result<String, String> {
        Ok(DateFormat::parse(format)?.format(utc, &TimeZone::UTC))
    }

    pub fn format(&self, utc: i64, time_zone: &TimeZone) -> String {
        let Some((local, offset_seconds)) = local_fields(utc, time_zone) else {
            return utc.to_string();
        };
        let mut out = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(text) => out.push_str(text),
                Token::EpochMillis => out.push_str(&utc.to_string()),
                Token::EpochSecond => out.push_str(&utc.div_euclid(1000).to_string()),
                Token::Field(letter, count) => {
                    print_field(&mut out, *letter, *count, &local, offset_seconds)
                }
            }
        }
        out
    }
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut literal = String::new();
    while let Some(&c) = chars.get(i) {
        if c == '\'' {
            // Quoted literal; '' is a quote.
            i += 1;
            if chars.get(i) == Some(&'\'') {
                literal.push('\'');
                i += 1;
                continue;
            }
            while let Some(&q) = chars.get(i) {
                if q == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        literal.push('\'');
                        i += 2;
                        continue;
                    }
                    break;
                }
                literal.push(q);
                i += 1;
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() {
            if !"yuMLdHhkKmsSaEeZXxzDVOG".contains(c) {
                return Err(format!("Unknown pattern letter: {c}"));
            }
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            let mut count = 0;
            while chars.get(i) == Some(&c) {
                count += 1;
                i += 1;
            }
            tokens.push(Token::Field(c, count));
            continue;
        }
        if c == '[' || c == ']' {
            // Optional sections print in full.
            i += 1;
            continue;
        }
        literal.push(c);
        i += 1;
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(tokens)
}

fn pad(out: &mut String, value: i64, width: usize) {
    if value < 0 {
        out.push('-');
    }
    let digits = value.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

fn print_offset(out: &mut String, seconds: i32, colon: bool, z_for_zero: bool, hours_only: bool) {
    if seconds == 0 && z_for_zero {
        out.push('Z');
        return;
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let total = seconds.unsigned_abs();
    let (hours, minutes) = (total / 3600, total % 3600 / 60);
    out.push(sign);
    out.push_str(&format!("{hours:02}"));
    if hours_only && minutes == 0 {
        return;
    }
    if colon {
        out.push(':');
    }
    out.push_str(&format!("{minutes:02}"));
}

fn print_field(
    out: &mut String,
    letter: char,
    count: usize,
    local: &jiff::civil::DateTime,
    offset_seconds: i32,
) {
    let year = i64::from(local.year());
    let month = i64::from(local.month());
    let hour = i64::from(local.hour());
    match letter {
        'y' | 'u' => {
            if count == 2 {
                pad(out, year.rem_euclid(100), 2)
            } else {
                pad(out, year, count)
            }
        }
        'M' | 'L' => match count {
            1 | 2 => pad(out, month, count),
            3 => out.push_str(
                MONTHS
                    .get((month - 1) as usize)
                    .map_or("", |m| m.get(..3).unwrap_or(m)),
            ),
            _ => out.push_str(MONTHS.get((month - 1) as usize).copied().unwrap_or("")),
        },
        'd' => pad(out, i64::from(local.day()), count),
        'D' => pad(out, i64::from(local.day_of_year()), count),
        'H' => pad(out, hour, count),
        'k' => pad(out, if hour == 0 { 24 } else { hour }, count),
        'h' => pad(out, if hour % 12 == 0 { 12 } else { hour % 12 }, count),
        'K' => pad(out, hour % 12, count),
        'm' => pad(out, i64::from(local.minute()), count),
        's' => pad(out, i64::from(local.second()), count),
        'S' => {
            let nanos = format!("{:09}", local.subsec_nanosecond());
            let digits = nanos.get(..count.min(9)).unwrap_or(&nanos);
            out.push_str(digits);
            for _ in 9..count {
                out.push('0');
            }
        }
        'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
        'E' | 'e' => {
            let index = local.weekday().to_monday_zero_offset() as usize;
            let name = WEEKDAYS.get(index).copied().unwrap_or("");
            if count >= 4 {
                out.push_str(name)
            } else {
                out.push_str(name.get(..3).unwrap_or(name))
            }
        }
        'G' => out.push_str(if year > 0 { "AD" } else { "BC" }),
        'Z' => match count {
            1..=3 => print_offset(out, offset_seconds, false, false, false),
            4 => {
                out.push_str("GMT");
                if offset_seconds != 0 {
                    print_offset(out, offset_seconds, true, false, false);
                }
            }
            _ => print_offset(out, offset_seconds, true, true, false),
        },
        'X' => print_offset(out, offset_seconds, count >= 3, true, count == 1),
        'x' => print_offset(out, offset_seconds, count >= 3, false, count == 1),
        // Zone ids and names print as the offset: the instant is what matters to clients.
        'z' | 'V' | 'O' => print_offset(out, offset_seconds, true, true, false),
        _ => {}
    }
}

/// A `java.text.DecimalFormat`-like pattern for `value_as_string` of numbers: `0.00`,
/// `#,##0.0#`, `0`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecimalFormat {
    min_fraction: usize,
    max_fraction: usize,
    min_integer: usize,
    grouping: bool,
    prefix: String,
    suffix: String,
}

impl DecimalFormat {
    pub fn parse(pattern: &str) -> Result<DecimalFormat, String> {
        let pattern = pattern.split(';').next().unwrap_or(pattern);
        let start = pattern
            .find(['0', '#', ',', '.'])
            .ok_or_else(|| format!("invalid decimal format [{pattern}]"))?;
        let end = pattern
            .rfind(['0', '#', ',', '.'])
            .map_or(pattern.len(), |i| i + 1);
        let (prefix, body, suffix) = (
            pattern.get(..start).unwrap_or(""),
            pattern.get(start..end).unwrap_or(""),
            pattern.get(end..).unwrap_or(""),
        );
        let (integer, fraction) = body.split_once('.').unwrap_or((body, ""));
        Ok(DecimalFormat {
            min_fraction: fraction.chars().filter(|c| *c == '0').count(),
            max_fraction: fraction.chars().filter(|c| *c == '0' || *c == '#').count(),
            min_integer: integer.chars().filter(|c| *c == '0').count(),
            grouping: integer.contains(','),
            prefix: prefix.replace('\'', ""),
            suffix: suffix.replace('\'', ""),
        })
    }

    pub fn format(&self, value: f64) -> String {
        if !value.is_finite() {
            return value.to_string();
        }
        let fixed = format!("{:.*}", self.max_fraction, value.abs());
        let (integer, fraction) = fixed.split_once('.').unwrap_or((&fixed, ""));
        let mut fraction = fraction.to_string();
        while fraction.len() > self.min_fraction && fraction.ends_with('0') {
            fraction.pop();
        }
        let mut integer = integer.trim_start_matches('0').to_string();
        while integer.len() < self.min_integer {
            integer.insert(0, '0');
        }
        if self.grouping {
            let digits: Vec<char> = integer.chars().collect();
            let mut grouped = String::new();
            for (i, c) in digits.iter().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    grouped.push(',');
                }
                grouped.push(*c);
            }
            integer = grouped;
        }
        let negative =
            value < 0.0 && (integer.chars().any(|c| c != '0' && c != ',') || !fraction.is_empty());
        let mut out = String::new();
        if negative {
            out.push('-');
        }
        out.push_str(&self.prefix);
        out.push_str(&integer);
        if !fraction.is_empty() {
            out.push('.');
            out.push_str(&fraction);
        }
        out.push_str(&self.suffix);
        out
    }
}

/// How a key or value prints as a string.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueFormat {
    /// Numbers and strings print no `*_as_string` (Elasticsearch's `RAW`).
    Raw,
    Date(DateFormat, TimeZone),
    Boolean,
    Decimal(DecimalFormat),
    /// String keys are encoded `ip` addresses (`ip.rs`), printed as addresses; they order by
    /// their encoded form, which is address order.
    Ip,
    /// Integer keys are encoded map tiles (`geo::geotile_encode`), printed `zoom/x/y`.
    Geotile,
}

impl ValueFormat {
    /// The string form, or `None` when Elasticsearch prints none.
    pub fn print(&self, value: f64) -> Option<String> {
        match self {
            ValueFormat::Raw => None,
            ValueFormat::Date(format, zone) => Some(format.format(value as i64, zone)),
            ValueFormat::Boolean => Some(if value != 0.0 { "true" } else { "false" }.into()),
            ValueFormat::Decimal(format) => Some(format.format(value)),
            ValueFormat::Ip | ValueFormat::Geotile => None,
        }
    }

    /// A string key as it prints: an encoded address as the address, else unchanged.
    pub fn print_str(&self, key: &str) -> String {
        match self {
            ValueFormat::Ip => crate::ip::decode(key).unwrap_or_else(|| key.to_string()),
            _ => key.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rounding::parse_time_zone;
    use super::*;

    #[test]
    fn dates_print_in_their_zone() {
        let iso = DateFormat::parse("strict_date_optional_time||epoch_millis").unwrap();
        let london = parse_time_zone("Europe/London").unwrap();
        assert_eq!(
            iso.format(1_782_345_600_000, &TimeZone::UTC),
            "2026-06-25T00:00:00.000Z"
        );
        assert_eq!(
            iso.format(1_782_345_600_000, &london),
            "2026-06-25T01:00:00.000+01:00"
        );
        let custom = DateFormat::parse("yyyy-MM-dd'T'HH:mm EEE MMM Z").unwrap();
        assert_eq!(
            custom.format(1_782_345_600_000, &london),
            "2026-06-25T01:00 Thu Jun +0100"
        );
        assert_eq!(
            DateFormat::parse("epoch_millis")
                .unwrap()
                .format(5, &london),
            "5"
        );
        assert!(DateFormat::parse("yyyy-qq").is_err());
    }

    #[test]
    fn decimals() {
        assert_eq!(
            DecimalFormat::parse("0.00").unwrap().format(12.3456),
            "12.35"
        );
        assert_eq!(
            DecimalFormat::parse("#,##0.0#").unwrap().format(1234567.5),
            "1,234,567.5"
        );
        assert_eq!(DecimalFormat::parse("0").unwrap().format(-2.4), "-2");
        assert_eq!(DecimalFormat::parse("0.0").unwrap().format(0.0), "0.0");
    }
}
