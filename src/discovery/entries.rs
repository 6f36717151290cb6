//! Engine addresses as discovery lists write them: [`Entry`] (`host:port`, split and printed with
//! Go's `SplitHostPort` rules, IPv6 hosts in brackets) and the `[from:to]` range expansion of
//! `nodes://` and `file://` items (`10.0.0.[1:20]:2375`), with its caps of [`MAX_RANGE_VALUES`]
//! per range and [`MAX_LIST_ADDRESSES`] per list.
//!
//! Pure text handling: it must not do I/O, know any backend or URL scheme, or check that an
//! address answers.
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// A range wider than this many values is left unexpanded by [`expand_ranges`] instead of
/// allocating without bound, and refused by [`push_expanded`]; 65536 covers a whole port range or
/// a /16.
pub const MAX_RANGE_VALUES: u64 = 65_536;

/// The most addresses one list (a `nodes://` URL or a `file://` file) may expand to: many ranges
/// of [`MAX_RANGE_VALUES`] each would otherwise multiply past any memory.
pub const MAX_LIST_ADDRESSES: usize = 65_536;

/// One discovered engine address, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    /// Host name or IP address, without brackets for IPv6.
    pub host: String,
    /// Port as written (not checked to be numeric, like the original).
    pub port: String,
}

impl Entry {
    /// An entry from its two parts.
    pub fn new(host: impl Into<String>, port: impl Into<String>) -> Self {
        Entry {
            host: host.into(),
            port: port.into(),
        }
    }

    /// Parses `host:port` with Go's `net.SplitHostPort` rules: IPv6 hosts must be bracketed
    /// (`[::1]:2375`), the port is whatever follows the last colon (possibly empty).
    pub fn parse(addr: &str) -> Result<Entry, AddrError> {
        let (host, port) = split_host_port(addr)?;
        Ok(Entry::new(host, port))
    }
}

impl FromStr for Entry {
    type Err = AddrError;

    fn from_str(addr: &str) -> Result<Self, Self::Err> {
        Entry::parse(addr)
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// An address that is not `host:port`; displays like Go's `net.AddrError`
/// (`address 1.2.3.4: missing port in address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrError {
    /// The address as given.
    pub addr: String,
    /// What is wrong with it, in Go's words.
    pub reason: &'static str,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.addr.is_empty() {
            f.write_str(self.reason)
        } else {
            write!(f, "address {}: {}", self.addr, self.reason)
        }
    }
}

impl std::error::Error for AddrError {}

/// Go's `net.SplitHostPort`: splits at the last colon; a leading `[` must close just before it.
pub fn split_host_port(addr: &str) -> Result<(&str, &str), AddrError> {
    let fail = |reason| AddrError {
        addr: addr.to_string(),
        reason,
    };
    const MISSING_PORT: &str = "missing port in address";
    const TOO_MANY_COLONS: &str = "too many colons in address";
    let last_colon = addr.rfind(':').ok_or_else(|| fail(MISSING_PORT))?;
    // `[` may appear only at `bracket_from`-less positions and `]` only after `bracket_to`.
    let (host, no_open_from, no_close_from) = if addr.starts_with('[') {
        let close = addr
            .find(']')
            .ok_or_else(|| fail("missing ']' in address"))?;
        if close + 1 == addr.len() {
            return Err(fail(MISSING_PORT));
        }
        if close + 1 != last_colon {
            return Err(if addr.as_bytes()[close + 1] == b':' {
                fail(TOO_MANY_COLONS)
            } else {
                fail(MISSING_PORT)
            });
        }
        (&addr[1..close], 1, close + 1)
    } else {
        let host = &addr[..last_colon];
        if host.contains(':') {
            return Err(fail(TOO_MANY_COLONS));
        }
        (host, 0, 0)
    };
    if addr[no_open_from..].contains('[') {
        return Err(fail("unexpected '[' in address"));
    }
    if addr[no_close_from..].contains(']') {
        return Err(fail("unexpected ']' in address"));
    }
    Ok((host, &addr[last_colon + 1..]))
}

static RANGE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\[(.+):(.+)\]").expect("the range pattern is valid"));

/// Expands one numeric range `[from:to]` in `pattern` (inclusive): `10.0.0.[1:3]:2375` gives three
/// addresses, `192.168.1.2:[2:4]375` gives ports 2375, 3375 and 4375. `from > to` gives nothing.
/// Bounds that are not decimal integers leave the pattern unchanged, which is what lets bracketed
/// IPv6 literals (`[::1]:2375`) through. Only one range per item: with two, the match spans both
/// and its bounds are not numbers, so the item comes back unchanged (and fails to parse later).
/// A range wider than [`MAX_RANGE_VALUES`] is also left unchanged.
pub fn expand_ranges(pattern: &str) -> Vec<String> {
    let Some(range) = NumericRange::find(pattern) else {
        return vec![pattern.to_string()];
    };
    if range.count() > u128::from(MAX_RANGE_VALUES) {
        return vec![pattern.to_string()];
    }
    let (before, after) = (&pattern[..range.start], &pattern[range.end..]);
    (range.from..=range.to)
        .map(|value| format!("{before}{value}{after}"))
        .collect()
}

/// Expands `item`'s range and appends the addresses to `entries`, which holds the list read so
/// far. Refuses, with a message that says so, a range wider than [`MAX_RANGE_VALUES`] and a list
/// that would grow past [`MAX_LIST_ADDRESSES`]; any other error is the address's own.
pub fn push_expanded(item: &str, entries: &mut Vec<Entry>) -> Result<(), AddrError> {
    let fail = |reason| AddrError {
        addr: item.to_string(),
        reason,
    };
    let count = NumericRange::find(item).map_or(1, |range| range.count());
    if count > u128::from(MAX_RANGE_VALUES) {
        return Err(fail("range of more than 65536 addresses"));
    }
    if entries.len() as u128 + count > MAX_LIST_ADDRESSES as u128 {
        return Err(fail("the list expands to more than 65536 addresses"));
    }
    for addr in expand_ranges(item) {
        entries.push(Entry::parse(&addr)?);
    }
    Ok(())
}

/// The first `[from:to]` of a pattern whose bounds are decimal integers, and where it stands.
struct NumericRange {
    start: usize,
    end: usize,
    from: i64,
    to: i64,
}

impl NumericRange {
    fn find(pattern: &str) -> Option<NumericRange> {
        let captures = RANGE.captures(pattern)?;
        let (whole, from, to) = (captures.get(0)?, captures.get(1)?, captures.get(2)?);
        // `i64::from_str` accepts exactly what Go's `strconv.Atoi` does: a sign and decimal digits.
        Some(NumericRange {
            start: whole.start(),
            end: whole.end(),
            from: from.as_str().parse().ok()?,
            to: to.as_str().parse().ok()?,
        })
    }

    /// How many values the range holds (0 when `from > to`).
    fn count(&self) -> u128 {
        u128::try_from(i128::from(self.to) - i128::from(self.from) + 1).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_like_go() {
        assert_eq!(
            Entry::parse("10.0.0.1:2375").unwrap(),
            Entry::new("10.0.0.1", "2375")
        );
        assert_eq!(
            Entry::parse("[::1]:2375").unwrap(),
            Entry::new("::1", "2375")
        );
        assert_eq!(
            Entry::parse("host.example:").unwrap(),
            Entry::new("host.example", "")
        );
        assert_eq!(Entry::parse(":2375").unwrap(), Entry::new("", "2375"));
        assert_eq!("a:1".parse::<Entry>().unwrap(), Entry::new("a", "1"));
    }

    #[test]
    fn malformed_entries_report_go_messages() {
        let cases = [
            ("1.2.3.4", "address 1.2.3.4: missing port in address"),
            ("", "missing port in address"),
            ("::1:2375", "address ::1:2375: too many colons in address"),
            ("[::1]", "address [::1]: missing port in address"),
            ("[::1", "address [::1: missing ']' in address"),
            ("[::1]x:1", "address [::1]x:1: missing port in address"),
            ("[::1]:1:2", "address [::1]:1:2: too many colons in address"),
            ("a[b:1", "address a[b:1: unexpected '[' in address"),
            ("ab]:1", "address ab]:1: unexpected ']' in address"),
            ("[a]]:1", "address [a]]:1: missing port in address"),
        ];
        for (input, message) in cases {
            assert_eq!(
                Entry::parse(input).unwrap_err().to_string(),
                message,
                "{input:?}"
            );
        }
    }

    #[test]
    fn entries_print_ipv6_in_brackets() {
        assert_eq!(Entry::new("::1", "2375").to_string(), "[::1]:2375");
        assert_eq!(Entry::new("a", "1").to_string(), "a:1");
    }

    #[test]
    fn ranges_expand_inclusively_in_an_octet() {
        let expanded = expand_ranges("10.0.0.[10:20]:2375");
        assert_eq!(expanded.len(), 11);
        assert_eq!(expanded[0], "10.0.0.10:2375");
        assert_eq!(expanded[10], "10.0.0.20:2375");
    }

    #[test]
    fn ranges_expand_inside_port_digits() {
        assert_eq!(
            expand_ranges("192.168.1.2:[2:4]375"),
            ["192.168.1.2:2375", "192.168.1.2:3375", "192.168.1.2:4375"]
        );
    }

    #[test]
    fn ranges_edge_cases() {
        assert!(expand_ranges("10.0.0.[3:1]:2375").is_empty());
        assert_eq!(expand_ranges("10.0.0.[5:5]:1"), ["10.0.0.5:1"]);
        assert_eq!(expand_ranges("h[-1:1]:1"), ["h-1:1", "h0:1", "h1:1"]);
        assert_eq!(expand_ranges("a[01:02]:1"), ["a1:1", "a2:1"]);
        // Non-numeric bounds: unchanged, so bracketed IPv6 passes through.
        assert_eq!(expand_ranges("[::1]:2375"), ["[::1]:2375"]);
        assert_eq!(expand_ranges("[fe80::1:2]:2375"), ["[fe80::1:2]:2375"]);
        assert_eq!(expand_ranges("host[a:b]:1"), ["host[a:b]:1"]);
        assert_eq!(expand_ranges("plain:1"), ["plain:1"]);
        assert_eq!(expand_ranges(""), [""]);
        // Two ranges: the match spans both and is not numeric.
        assert_eq!(
            expand_ranges("10.0.[1:2].[3:4]:2375"),
            ["10.0.[1:2].[3:4]:2375"]
        );
        // Huge ranges are refused rather than allocated.
        assert_eq!(expand_ranges("h:[0:99999999]"), ["h:[0:99999999]"]);
        assert_eq!(expand_ranges("h:[0:65535]").len(), 65_536);
        assert_eq!(
            expand_ranges("h:[-9223372036854775808:9223372036854775807]").len(),
            1
        );
    }
}
