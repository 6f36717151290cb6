//! Constraint, affinity and whitelist expressions (`key==value`, `key!=~value`, globs, `/regex/`):
//! parsing with the classic grammar and messages, and matching against candidate strings
//! (SPEC §4.1). Pure; compiles each expression's pattern once.
use std::fmt;
use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};

/// The two comparison operators, in the order the parser looks for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `==`: true when any candidate matches.
    Equal,
    /// `!=`: true when no candidate matches.
    NotEqual,
}

impl Operator {
    /// The operator as written in an expression.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equal => "==",
            Operator::NotEqual => "!=",
        }
    }
}

/// Why an expression was rejected; the texts are the classic ones, shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// Neither `==` nor `!=` occurs in the expression.
    #[error("One of operator ==, != is expected")]
    MissingOperator,
    /// The text before the operator is not a valid key.
    #[error("Key '{0}' is invalid")]
    InvalidKey(String),
    /// The text after the operator holds characters outside the allowed set, or is empty.
    #[error("Value '{0}' is invalid")]
    InvalidValue(String),
}

/// A parsed expression. `value` has its leading `~` removed; `soft` remembers it.
#[derive(Debug, Clone)]
pub struct Expression {
    /// Left side, as written (validated, not case-folded).
    pub key: String,
    /// The operator found first.
    pub operator: Operator,
    /// Right side without the soft marker.
    pub value: String,
    /// Whether the value started with `~` (dropped in the scheduler's second pass).
    pub soft: bool,
    /// How candidates are compared with `value`.
    pattern: Pattern,
}

// Go's RE2 `\s` is ASCII-only, so whitespace is spelled out; `(?i)` keeps Unicode case folding as RE2 does.
static KEY_SYNTAX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^[a-z_][a-z0-9\-_.]+$").expect("key syntax regex compiles"));
static VALUE_SYNTAX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[=!/]?(~)?[a-z0-9:\-_\t\n\x0C\r .*/()?+\[\]\\^$|]+$")
        .expect("value syntax regex compiles")
});

impl Expression {
    /// Parses one expression. The text is split at the first `==`, or else at the first `!=`.
    pub fn parse(text: &str) -> Result<Expression, ExprError> {
        let (key, operator, value) = if let Some((key, value)) = text.split_once("==") {
            (key, Operator::Equal, value)
        } else if let Some((key, value)) = text.split_once("!=") {
            (key, Operator::NotEqual, value)
        } else {
            return Err(ExprError::MissingOperator);
        };
        if !KEY_SYNTAX.is_match(key) {
            return Err(ExprError::InvalidKey(key.to_string()));
        }
        if !VALUE_SYNTAX.is_match(value) {
            return Err(ExprError::InvalidValue(value.to_string()));
        }
        let soft = value.starts_with('~');
        let value = value.trim_start_matches('~').to_string();
        Ok(Expression {
            pattern: Pattern::new(&value),
            key: key.to_string(),
            operator,
            value,
            soft,
        })
    }

    /// Parses every expression, stopping at the first error (as the classic filters do).
    pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Expression>, ExprError> {
        texts
            .iter()
            .map(|t| Expression::parse(t.as_ref()))
            .collect()
    }

    /// Applies the operator: `==` holds when any candidate matches the value, `!=` when none does.
    pub fn matches<'c, I>(&self, candidates: I) -> bool
    where
        I: IntoIterator<Item = &'c str>,
    {
        let any = candidates.into_iter().any(|c| self.pattern.is_match(c));
        match self.operator {
            Operator::Equal => any,
            Operator::NotEqual => !any,
        }
    }

    /// Whether this expression should be evaluated in a pass that has soft expressions on or off.
    pub fn applies(&self, soft_active: bool) -> bool {
        soft_active || !self.soft
    }
}

/// `key<op>value`, the form shown in scheduling errors (without the soft marker).
impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.key, self.operator.as_str(), self.value)
    }
}

/// The longest regex a client may send (an expression value, a `name` filter). Compiling costs
/// up to about a third of a millisecond per byte for Unicode classes under case folding, before
/// the size limits below can stop it, so the text itself is bounded.
pub const MAX_USER_REGEX_BYTES: usize = 4 << 10;

/// The most memory one client regex may compile to, and the most its lazy DFA may cache.
const USER_REGEX_MEMORY: usize = 2 << 20;

/// Compiles a regex that a client wrote, within [`MAX_USER_REGEX_BYTES`] of text and
/// `USER_REGEX_MEMORY` of compiled program and DFA cache; the error says which limit was hit.
/// Matching is linear in the input (the `regex` crate never backtracks), so time is bounded too.
pub fn user_regex(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_USER_REGEX_BYTES {
        return Err(format!(
            "regex of {} bytes is longer than the {MAX_USER_REGEX_BYTES} allowed",
            pattern.len()
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(USER_REGEX_MEMORY)
        .dfa_size_limit(USER_REGEX_MEMORY)
        .build()
        .map_err(|e| e.to_string())
}

/// A value compiled for matching. Values whose glob form has no regex metacharacter besides a
/// trailing `*` are compared without a regex; the result is the same as the classic regex, only
/// cheaper on large clusters.
#[derive(Debug, Clone)]
enum Pattern {
    /// `^value$` with a literal value.
    Exact(String),
    /// `^prefix.*$` with a literal prefix (`.` does not match a newline).
    Prefix(String),
    /// Any other glob, or a `/…/` regex.
    Regex(Regex),
    /// An invalid regex: never matches.
    Invalid,
}

/// Characters with a meaning in a regex among those the value syntax allows.
const REGEX_METACHARACTERS: &[char] =
    &['.', '*', '(', ')', '?', '+', '[', ']', '\\', '^', '$', '|'];

impl Pattern {
    /// `/…/` is an unanchored regex; anything else is an anchored glob where only `*` is
    /// translated and other metacharacters keep their regex meaning (SPEC §9 quirk 10).
    fn new(value: &str) -> Pattern {
        if let Some(inner) = value.strip_prefix('/').and_then(|v| v.strip_suffix('/')) {
            return Pattern::compile(inner);
        }
        if !value.contains(REGEX_METACHARACTERS) {
            return Pattern::Exact(value.to_string());
        }
        if let Some(prefix) = value.strip_suffix('*') {
            if !prefix.contains(REGEX_METACHARACTERS) {
                return Pattern::Prefix(prefix.to_string());
            }
        }
        Pattern::compile(&format!("^{}$", value.replace('*', ".*")))
    }

    fn compile(pattern: &str) -> Pattern {
        user_regex(pattern).map_or(Pattern::Invalid, Pattern::Regex)
    }

    fn is_match(&self, candidate: &str) -> bool {
        match self {
            Pattern::Exact(value) => candidate == value,
            Pattern::Prefix(prefix) => candidate
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| !rest.contains('\n')),
            Pattern::Regex(regex) => regex.is_match(candidate),
            Pattern::Invalid => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Expression {
        Expression::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn splits_at_the_first_equal_operator_before_looking_for_not_equal() {
        assert_eq!(
            Expression::parse("key!=x==y").unwrap_err(),
            ExprError::InvalidKey("key!=x".into())
        );
        let e = parse("region!=us-east");
        assert_eq!(
            (e.key.as_str(), e.operator, e.value.as_str()),
            ("region", Operator::NotEqual, "us-east")
        );
        // `node===x` keeps the extra `=` in the value, which the value syntax allows.
        assert_eq!(parse("node===x").value, "=x");
    }

    #[test]
    fn rejects_expressions_with_the_classic_messages() {
        let err = |t: &str| Expression::parse(t).unwrap_err().to_string();
        assert_eq!(err("node"), "One of operator ==, != is expected");
        assert_eq!(err("node=x"), "One of operator ==, != is expected");
        assert_eq!(err("n==x"), "Key 'n' is invalid");
        assert_eq!(err("==x"), "Key '' is invalid");
        assert_eq!(err("1abc==x"), "Key '1abc' is invalid");
        assert_eq!(err("node!==x"), "Key 'node!' is invalid");
        assert_eq!(err("node=="), "Value '' is invalid");
        assert_eq!(err("node==a,b"), "Value 'a,b' is invalid");
        assert_eq!(err("node==a{2}"), "Value 'a{2}' is invalid");
        assert_eq!(err("node==~~x"), "Value '~~x' is invalid");
        assert_eq!(err("node==a=b"), "Value 'a=b' is invalid");
    }

    #[test]
    fn accepts_keys_and_values_case_insensitively() {
        let e = parse("Com.Example-Key_1==Node-1.Example.COM");
        assert_eq!(e.key, "Com.Example-Key_1");
        assert!(e.matches(["Node-1.Example.COM"]));
        assert!(!e.matches(["node-1.example.com"]));
    }

    #[test]
    fn a_leading_tilde_makes_the_expression_soft_and_is_stripped() {
        let e = parse("node==~node-1");
        assert!(e.soft);
        assert_eq!(e.value, "node-1");
        assert_eq!(e.to_string(), "node==node-1");
        assert!(e.applies(true));
        assert!(!e.applies(false));
        assert!(!parse("node==node-1").soft);
    }

    #[test]
    fn globs_are_anchored_and_do_not_escape_other_metacharacters() {
        let e = parse("node==node-*");
        assert!(e.matches(["node-1"]));
        assert!(!e.matches(["xnode-1"]));
        // `.` keeps its regex meaning (quirk 10).
        let e = parse("ostype==l.nux");
        assert!(e.matches(["linux"]));
        assert!(!e.matches(["linux2"]));
    }

    #[test]
    fn slash_delimited_values_are_unanchored_regexes() {
        let e = parse("node==/node-[12]/");
        assert!(e.matches(["my-node-1-x"]));
        assert!(!e.matches(["node-3"]));
        let e = parse("ostype==/(?i)LINUX/");
        assert!(e.matches(["linux"]));
    }

    #[test]
    fn an_invalid_regex_never_matches() {
        let e = parse("node==/node-[/");
        assert!(!e.matches(["node-["]));
        let e = parse("node!=/node-[/");
        assert!(e.matches(["node-["]));
        let e = parse("node==(");
        assert!(!e.matches(["("]));
    }

    #[test]
    fn a_hostile_regex_is_refused_before_it_costs_time_or_memory() {
        // Case-folded Unicode classes took ~1.5 s and 75 MB to compile at 15 KB of text.
        let long = format!("node==/(?i){}/", "\\pL".repeat(2_000));
        let e = parse(&long);
        assert!(!e.matches(["a"]));
        assert!(user_regex(&"\\pL".repeat(2_000))
            .unwrap_err()
            .contains("longer than"));
        // Within the length, the compiled size is what stops it.
        assert!(user_regex(&"\\w".repeat(500))
            .unwrap_err()
            .contains("size limit"));
        assert!(user_regex("^node-[0-9]+$").is_ok());
    }

    #[test]
    fn a_lone_slash_is_a_plain_value() {
        let e = parse("key==/");
        assert!(e.matches(["/"]));
    }

    #[test]
    fn not_equal_holds_when_no_candidate_matches() {
        let e = parse("node!=node-1");
        assert!(e.matches(["node-2", "id-2"]));
        assert!(!e.matches(["node-2", "node-1"]));
        assert!(e.matches([]));
        assert!(!parse("node==x").matches([]));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,40}") {
            let _ = Expression::parse(&text).map(|e| e.matches([text.as_str()]));
        }

        #[test]
        fn fast_paths_agree_with_the_classic_regex(
            value in "[a-z.*()?+|^$\\[\\]\\\\-]{1,6}",
            candidate in "[a-z.*\n-]{0,8}",
        ) {
            let classic = Regex::new(&format!("^{}$", value.replace('*', ".*")))
                .map(|r| r.is_match(&candidate))
                .unwrap_or(false);
            prop_assert_eq!(Pattern::new(&value).is_match(&candidate), classic);
        }

        #[test]
        fn plain_values_match_themselves(value in "[a-z0-9][a-z0-9_-]{0,20}") {
            let e = Expression::parse(&format!("key=={value}")).unwrap();
            prop_assert!(e.matches([value.as_str()]));
            let e = Expression::parse(&format!("key!={value}")).unwrap();
            prop_assert!(!e.matches([value.as_str()]));
        }
    }
}
