//! Go duration syntax (`10s`, `500ms`, `1m30s`, `1.5h`, `-2s`, `0`), which every duration flag of
//! the classic `swarm` accepted, and Go's way of printing a duration (`1m0s`) for log lines that
//! users grep. Owns nothing else: range checks belong to the flags that use durations.
use std::fmt;
use std::time::Duration;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A parsed Go duration: a signed count of nanoseconds that fits an `i64`, like Go's
/// `time.Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration {
    nanos: i64,
}

impl GoDuration {
    /// The zero duration.
    pub const ZERO: GoDuration = GoDuration { nanos: 0 };

    /// A duration of `nanos` nanoseconds (negative allowed).
    pub const fn from_nanos(nanos: i64) -> Self {
        GoDuration { nanos }
    }

    /// A duration of whole seconds.
    pub const fn from_secs(secs: i64) -> Self {
        GoDuration {
            nanos: secs.saturating_mul(NANOS_PER_SECOND as i64),
        }
    }

    /// The signed number of nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// Whether the duration is below zero.
    pub const fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// The duration as a `std::time::Duration`, or `None` when it is negative.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.nanos).ok().map(Duration::from_nanos)
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()`: `0s`, `1.5s`, `1m0s`, `2h45m0.5s`, `500ms`, `1µs`, `-3s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        write!(f, "{sign}{}", format_magnitude(self.nanos.unsigned_abs()))
    }
}

/// Why a duration did not parse; the text matches Go's `time.ParseDuration` errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Malformed number, missing digits, or overflow.
    #[error("time: invalid duration {}", quote(.input))]
    Invalid {
        /// The whole text that was parsed.
        input: String,
    },
    /// A number without a unit (other than a plain `0`).
    #[error("time: missing unit in duration {}", quote(.input))]
    MissingUnit {
        /// The whole text that was parsed.
        input: String,
    },
    /// A unit Go does not know.
    #[error("time: unknown unit {} in duration {}", quote(.unit), quote(.input))]
    UnknownUnit {
        /// The unknown unit as written.
        unit: String,
        /// The whole text that was parsed.
        input: String,
    },
}

fn quote(text: &str) -> String {
    super::go_values::quote(text)
}

/// Parses Go duration syntax: an optional sign, then one or more `<number><unit>` terms where the
/// number may have a fraction and the unit is `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m` or `h`. A bare
/// `0` (optionally signed) is also accepted.
pub fn parse(input: &str) -> Result<GoDuration, DurationError> {
    let invalid = || DurationError::Invalid {
        input: input.to_string(),
    };
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(GoDuration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Accumulate as u128 so the overflow checks stay simple; the limit is 2^63 nanoseconds.
    const LIMIT: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let term = take_number(rest).ok_or_else(invalid)?;
        rest = term.rest;
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(index, _)| index);
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                input: input.to_string(),
            });
        }
        let unit_text = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit = unit_nanos(unit_text).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_text.to_string(),
            input: input.to_string(),
        })?;
        let whole = term.whole.checked_mul(unit).ok_or_else(invalid)?;
        let mut value = u128::from(whole);
        if value > LIMIT {
            return Err(invalid());
        }
        if term.fraction > 0 {
            // Float arithmetic mirrors Go, which needs it to stay exact for fractions of hours.
            value += (term.fraction as f64 * (unit as f64 / term.scale)) as u128;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total += value;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        // -2^63 is representable, so only the positive side needs the extra check below.
        Ok(GoDuration::from_nanos((-(total as i128)) as i64))
    } else if total > LIMIT - 1 {
        Err(invalid())
    } else {
        Ok(GoDuration::from_nanos(total as i64))
    }
}

/// Go's `Duration.String()` for a non-negative `std::time::Duration` (saturating above the largest
/// Go duration). Used in log lines such as `Registering on the discovery service every 1m0s...`.
pub fn format(duration: Duration) -> String {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    format_magnitude(nanos.min(i64::MAX as u64))
}

/// One `<digits>[.<digits>]` number at the start of a term.
struct Number<'a> {
    whole: u64,
    fraction: u64,
    scale: f64,
    rest: &'a str,
}

fn take_number(text: &str) -> Option<Number<'_>> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    if first != b'.' && !first.is_ascii_digit() {
        return None;
    }
    let mut index = 0;
    let mut whole: u64 = 0;
    while index < bytes.len() && bytes[index].is_ascii_digit() {
        whole = whole
            .checked_mul(10)?
            .checked_add(u64::from(bytes[index] - b'0'))?;
        if whole > 1 << 63 {
            return None;
        }
        index += 1;
    }
    let had_whole = index > 0;
    let mut fraction: u64 = 0;
    let mut scale = 1.0_f64;
    let mut had_fraction = false;
    if index < bytes.len() && bytes[index] == b'.' {
        index += 1;
        let start = index;
        let mut precise = true;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            // Digits beyond what fits are consumed but no longer add precision, as in Go.
            if precise {
                match fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(bytes[index] - b'0')))
                {
                    Some(next) if next <= 1 << 63 => {
                        fraction = next;
                        scale *= 10.0;
                    }
                    _ => precise = false,
                }
            }
            index += 1;
        }
        had_fraction = index > start;
    }
    if !had_whole && !had_fraction {
        return None;
    }
    Some(Number {
        whole,
        fraction,
        scale,
        rest: &text[index..],
    })
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3_600 * NANOS_PER_SECOND,
        _ => return None,
    })
}

fn format_magnitude(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < NANOS_PER_SECOND {
        // Below one second Go picks the largest unit that keeps a non-zero integer part.
        let (unit_nanos, unit) = if nanos < 1_000 {
            (1, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "\u{b5}s")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", decimal(nanos, unit_nanos));
    }
    let hours = nanos / (3_600 * NANOS_PER_SECOND);
    let minutes = nanos / (60 * NANOS_PER_SECOND) % 60;
    let seconds = decimal(nanos % (60 * NANOS_PER_SECOND), NANOS_PER_SECOND);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / unit` with the fractional digits Go would print (trailing zeros dropped).
fn decimal(value: u64, unit: u64) -> String {
    let whole = value / unit;
    let remainder = value % unit;
    if remainder == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let fraction = format!("{remainder:0width$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> i64 {
        parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .as_nanos()
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn simple_terms_use_their_unit() {
        assert_eq!(nanos("10s"), 10 * S);
        assert_eq!(nanos("500ms"), S / 2);
        assert_eq!(nanos("3us"), 3_000);
        assert_eq!(nanos("3\u{b5}s"), 3_000);
        assert_eq!(nanos("3\u{3bc}s"), 3_000);
        assert_eq!(nanos("7ns"), 7);
        assert_eq!(nanos("2m"), 120 * S);
        assert_eq!(nanos("1h"), 3_600 * S);
    }

    #[test]
    fn terms_add_up_and_fractions_are_exact() {
        assert_eq!(nanos("1m30s"), 90 * S);
        assert_eq!(nanos("1.5h"), 5_400 * S);
        assert_eq!(nanos("1h2m3.5s"), 3_723 * S + S / 2);
        assert_eq!(nanos(".5s"), S / 2);
        assert_eq!(nanos("1.s"), S);
        assert_eq!(nanos("1.000000001s"), S + 1);
        assert_eq!(nanos("0.3333333333333333333333h"), 1_200 * S);
    }

    #[test]
    fn zero_and_signs_are_accepted() {
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("-0"), 0);
        assert_eq!(nanos("+0"), 0);
        assert_eq!(nanos("0s"), 0);
        assert_eq!(nanos("-2s"), -2 * S);
        assert_eq!(nanos("+2s"), 2 * S);
        assert!(parse("-1s").unwrap().is_negative());
        assert_eq!(parse("-1s").unwrap().to_std(), None);
        assert_eq!(parse("1s").unwrap().to_std(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn malformed_input_reports_go_messages() {
        let cases = [
            ("", "time: invalid duration \"\""),
            ("-", "time: invalid duration \"-\""),
            ("abc", "time: invalid duration \"abc\""),
            (".s", "time: invalid duration \".s\""),
            ("1.2.3s", "time: missing unit in duration \"1.2.3s\""),
            ("10", "time: missing unit in duration \"10\""),
            ("1s2", "time: missing unit in duration \"1s2\""),
            ("10x", "time: unknown unit \"x\" in duration \"10x\""),
            ("1sec", "time: unknown unit \"sec\" in duration \"1sec\""),
            ("1 s", "time: unknown unit \" s\" in duration \"1 s\""),
            ("s", "time: invalid duration \"s\""),
        ];
        for (input, message) in cases {
            assert_eq!(
                parse(input).unwrap_err().to_string(),
                message,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert_eq!(nanos("9223372036854775807ns"), i64::MAX);
        assert_eq!(nanos("-9223372036854775808ns"), i64::MIN);
        for input in [
            "9223372036854775808ns",
            "99999999999999999999s",
            "3000000h",
            "2562047h47m16.854775808s",
            "9223372036854775807ns1ns",
        ] {
            assert!(
                matches!(parse(input), Err(DurationError::Invalid { .. })),
                "{input}"
            );
        }
    }

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5\u{b5}s"),
            (S / 2, "500ms"),
            (S + S / 2, "1.5s"),
            (10 * S, "10s"),
            (60 * S, "1m0s"),
            (90 * S, "1m30s"),
            (3_600 * S, "1h0m0s"),
            (3_723 * S + S / 2, "1h2m3.5s"),
            (-3 * S, "-3s"),
        ];
        for (value, text) in cases {
            assert_eq!(GoDuration::from_nanos(value).to_string(), text);
        }
        assert_eq!(format(Duration::from_secs(60)), "1m0s");
        assert_eq!(format(Duration::MAX), "2562047h47m16.854775807s");
    }
}
