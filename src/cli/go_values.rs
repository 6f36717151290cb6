//! The text forms of booleans and numbers that the classic `swarm` flags accepted (Go's `strconv`
//! parsed them), so scripts written for it keep working. Pure functions; no flag knowledge here.
//! [`go_bool`] and [`go_int`] are the value parsers of the boolean and integer flags.

/// Why an integer did not parse; displays as Go's `flag` package words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IntError {
    /// Not an integer at all.
    #[error("parse error")]
    Syntax,
    /// An integer, but outside `i64`; carries the saturated value Go would have returned alongside
    /// its error.
    #[error("value out of range")]
    Range(i64),
}

/// A boolean flag's value was none of Go's spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("parse error")]
pub(crate) struct BoolError;

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// [`parse_bool`] as a flag value parser.
pub(crate) fn go_bool(text: &str) -> Result<bool, BoolError> {
    parse_bool(text).ok_or(BoolError)
}

/// [`parse_int_base0`] as a flag value parser.
pub(crate) fn go_int(text: &str) -> Result<i64, IntError> {
    parse_int_base0(text)
}

/// Go's `strconv.ParseInt(text, 0, 64)`: optional sign, then a base prefix (`0x`, `0o`, `0b`, or a
/// bare leading `0` for octal) and digits, with `_` allowed between digits when a prefix is present
/// or the number is decimal.
pub(crate) fn parse_int_base0(text: &str) -> Result<i64, IntError> {
    let (negative, body) = split_sign(text);
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_string(), true)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_string(), true)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    if digits.contains('_') && !underscores_well_placed(&digits, prefixed) {
        return Err(IntError::Syntax);
    }
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(IntError::Syntax);
    }
    accumulate(&digits, radix, negative)
}

/// The classic cluster options parsed numbers and silently used 0 for garbage (and the saturated
/// value for overflow); this keeps that behaviour in one place.
pub(crate) fn parse_int_base0_lenient(text: &str) -> i64 {
    match parse_int_base0(text) {
        Ok(value) | Err(IntError::Range(value)) => value,
        Err(IntError::Syntax) => 0,
    }
}

/// Go's `strconv.ParseFloat` as the classic cluster options used it: garbage becomes 0, overflow
/// becomes an infinity, `inf`/`infinity`/`nan` are accepted in any case.
pub(crate) fn parse_float_lenient(text: &str) -> f64 {
    // Rust accepts a few forms Go does not (and the other way round for hex floats); both are
    // edge cases nobody writes in a cluster option, and either way the result is a number.
    text.parse::<f64>().unwrap_or(0.0)
}

/// Go's `%f` verb: six decimals, `+Inf`/`-Inf`/`NaN` for the special values.
pub(crate) fn format_float_f(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{value:.6}")
    }
}

/// Go's `%q` for the strings we quote in messages. Rust's debug escaping differs from Go's only for
/// unusual control characters, which is fine for an error message.
pub(crate) fn quote(text: &str) -> String {
    format!("{text:?}")
}

fn split_sign(text: &str) -> (bool, &str) {
    if let Some(rest) = text.strip_prefix('-') {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix('+') {
        (false, rest)
    } else {
        (false, text)
    }
}

/// Go accepts `_` only between digits, or right after a base prefix.
fn underscores_well_placed(digits: &str, prefixed: bool) -> bool {
    let bytes = digits.as_bytes();
    let mut previous_is_digit = prefixed;
    for (index, byte) in bytes.iter().enumerate() {
        if *byte == b'_' {
            let next_is_digit = bytes.get(index + 1).is_some_and(|b| *b != b'_');
            if !previous_is_digit || !next_is_digit {
                return false;
            }
            previous_is_digit = false;
        } else {
            previous_is_digit = true;
        }
    }
    true
}

fn accumulate(digits: &str, radix: u32, negative: bool) -> Result<i64, IntError> {
    let saturated = if negative { i64::MIN } else { i64::MAX };
    let mut magnitude: u128 = 0;
    for c in digits.chars() {
        let digit = c.to_digit(radix).ok_or(IntError::Syntax)?;
        magnitude = magnitude * u128::from(radix) + u128::from(digit);
        if magnitude > u128::from(u64::MAX) {
            // Keep consuming so a later non-digit still reports a syntax error, as Go does.
            magnitude = u128::from(u64::MAX) + 1;
        }
    }
    let limit = if negative {
        u128::from(i64::MAX as u64) + 1
    } else {
        u128::from(i64::MAX as u64)
    };
    if magnitude > limit {
        return Err(IntError::Range(saturated));
    }
    let magnitude = magnitude as i128;
    Ok(if negative { -magnitude } else { magnitude } as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_exactly_the_go_spellings() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        for bad in ["", "yes", "tRUE", "2", " true"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn base_zero_integers_detect_their_prefix() {
        assert_eq!(parse_int_base0("0x10"), Ok(16));
        assert_eq!(parse_int_base0("0X1f"), Ok(31));
        assert_eq!(parse_int_base0("017"), Ok(15));
        assert_eq!(parse_int_base0("0o17"), Ok(15));
        assert_eq!(parse_int_base0("0b101"), Ok(5));
        assert_eq!(parse_int_base0("-0x10"), Ok(-16));
        assert_eq!(parse_int_base0("0"), Ok(0));
        assert_eq!(parse_int_base0("1_000"), Ok(1000));
        assert_eq!(parse_int_base0("0x_10"), Ok(16));
        assert_eq!(parse_int_base0("_1"), Err(IntError::Syntax));
        assert_eq!(parse_int_base0("1__0"), Err(IntError::Syntax));
        assert_eq!(parse_int_base0("08"), Err(IntError::Syntax));
        assert_eq!(parse_int_base0("0x"), Err(IntError::Syntax));
        assert_eq!(parse_int_base0("abc"), Err(IntError::Syntax));
        assert_eq!(parse_int_base0("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_int_base0("-9223372036854775809"),
            Err(IntError::Range(i64::MIN))
        );
    }

    #[test]
    fn lenient_numbers_turn_garbage_into_zero() {
        assert_eq!(parse_int_base0_lenient("x"), 0);
        assert_eq!(parse_int_base0_lenient("0x10"), 16);
        assert_eq!(parse_int_base0_lenient("1e99"), 0);
        assert_eq!(
            parse_int_base0_lenient("123456789012345678901234"),
            i64::MAX
        );
        assert_eq!(parse_float_lenient("0.5"), 0.5);
        assert_eq!(parse_float_lenient("-2"), -2.0);
        assert_eq!(parse_float_lenient("abc"), 0.0);
        assert!(parse_float_lenient("1e400").is_infinite());
    }

    #[test]
    fn floats_format_like_go_percent_f() {
        assert_eq!(format_float_f(-2.0), "-2.000000");
        assert_eq!(format_float_f(-1.5), "-1.500000");
        assert_eq!(format_float_f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float_f(f64::NAN), "NaN");
    }
}
