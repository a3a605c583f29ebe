//! The `filter` parameter: parsing (see the crate docs for the grammar) and
//! evaluation against JSON items.

use std::cmp::Ordering;

use serde_json::Value;

use crate::order::Num;
use crate::{MAX_FILTER_LEN, QueryError, codes, shown, valid_fields};

/// A parsed `filter` expression: a conjunction of terms. The default value
/// (also produced by an empty filter string) matches every item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq)]
struct Term {
    negated: bool,
    kind: TermKind,
}

#[derive(Debug, Clone, PartialEq)]
enum TermKind {
    /// Bare word, stored lowercased: substring of any string value.
    Word(String),
    /// `field:pattern`
    Eq { path: Path, pattern: Pattern },
    /// `field:>N` and friends.
    Cmp {
        path: Path,
        op: CmpOp,
        raw: String,
        /// Pre-parsed once so evaluation does not re-parse per item.
        num: Option<Num>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Path {
    field: String,
    sub: Option<String>,
}

impl Path {
    fn lookup<'a>(&self, item: &'a Value) -> Option<&'a Value> {
        let top = item.get(&self.field)?;
        match &self.sub {
            None => Some(top),
            Some(sub) => top.as_object()?.get(sub),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
        }
    }
}

/// Equality pattern; compiled once at parse time.
#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    Exact(String),
    /// Literal pieces between unquoted `*`s (at least two: prefix and suffix,
    /// either may be empty; empty middle pieces are dropped).
    Glob(Vec<String>),
}

impl Pattern {
    fn matches(&self, s: &str) -> bool {
        match self {
            Pattern::Exact(p) => p == s,
            Pattern::Glob(parts) => glob_match(parts, s),
        }
    }
}

/// Glob with only `*`: anchored prefix and suffix, then the middle pieces
/// found leftmost-first in order, which is optimal for `*`-only globs (no
/// backtracking needed). Byte-level search is safe because UTF-8 is
/// self-synchronizing.
fn glob_match(parts: &[String], s: &str) -> bool {
    let [first, middle @ .., last] = parts else {
        return false;
    };
    if s.len() < first.len() + last.len()
        || !s.starts_with(first.as_str())
        || !s.ends_with(last.as_str())
    {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for piece in middle {
        match rest.find(piece.as_str()) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

fn err(message: String) -> QueryError {
    QueryError {
        code: codes::INVALID_FILTER,
        param: "filter",
        message,
    }
}

/// One whitespace-separated term as characters tagged with "came from inside
/// quotes", so operators, `:`, `!` and `*` only count when unquoted.
#[derive(Default)]
struct RawTerm {
    chars: Vec<(char, bool)>,
    /// Positions in `chars` where a quoted section opened; lets `name:""`
    /// (explicit empty string) differ from `name:` (missing value).
    quote_starts: Vec<usize>,
}

fn tokenize(input: &str) -> Result<Vec<RawTerm>, QueryError> {
    let mut terms = Vec::new();
    let mut cur: Option<RawTerm> = None;
    let mut in_quotes = false;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        if in_quotes {
            let term = cur.get_or_insert_with(RawTerm::default);
            match c {
                '"' => in_quotes = false,
                '\\' => {
                    // `\"` and `\\` are escapes; any other backslash is literal.
                    match chars.clone().next() {
                        Some(e @ ('"' | '\\')) => {
                            chars.next();
                            term.chars.push((e, true));
                        }
                        _ => term.chars.push(('\\', true)),
                    }
                }
                _ => term.chars.push((c, true)),
            }
        } else if c.is_whitespace() {
            if let Some(t) = cur.take() {
                terms.push(t);
            }
        } else {
            let term = cur.get_or_insert_with(RawTerm::default);
            if c == '"' {
                in_quotes = true;
                term.quote_starts.push(term.chars.len());
            } else {
                term.chars.push((c, false));
            }
        }
    }
    if in_quotes {
        return Err(err("unterminated quote in `filter`".to_owned()));
    }
    terms.extend(cur);
    Ok(terms)
}

fn text(chars: &[(char, bool)]) -> String {
    chars.iter().map(|&(c, _)| c).collect()
}

impl Filter {
    /// Parses a filter expression (grammar in the crate docs). Field names
    /// are checked against `known_fields`; only the part before a `.` is.
    pub fn parse(input: &str, known_fields: &[&str]) -> Result<Filter, QueryError> {
        if input.len() > MAX_FILTER_LEN && input.chars().count() > MAX_FILTER_LEN {
            return Err(err(format!(
                "`filter` is longer than {MAX_FILTER_LEN} characters"
            )));
        }
        let terms = tokenize(input)?
            .iter()
            .map(|t| parse_term(t, known_fields))
            .collect::<Result<_, _>>()?;
        Ok(Filter { terms })
    }

    /// True when the filter has no terms (matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// True when `item` satisfies every term.
    pub fn matches(&self, item: &Value) -> bool {
        self.terms.iter().all(|t| t.matches(item) != t.negated)
    }
}

fn parse_term(raw: &RawTerm, known: &[&str]) -> Result<Term, QueryError> {
    let mut rest = raw.chars.as_slice();
    let mut offset = 0;
    // `""!x` is a word starting with `!`, not a negation.
    let negated = rest.first() == Some(&('!', false)) && raw.quote_starts.first() != Some(&0);
    if negated {
        rest = &rest[1..];
        offset = 1;
        match rest.first() {
            None if raw.quote_starts.is_empty() => {
                return Err(err("`!` must be followed by a term".to_owned()));
            }
            Some(('!', false)) => {
                return Err(err("double negation `!!` is not allowed".to_owned()));
            }
            _ => {}
        }
    }

    let Some(colon) = rest.iter().position(|&c| c == (':', false)) else {
        let word = text(rest);
        if word.is_empty() {
            return Err(err("empty search term `\"\"` in `filter`".to_owned()));
        }
        return Ok(Term {
            negated,
            kind: TermKind::Word(word.to_lowercase()),
        });
    };

    let path = parse_path(&text(&rest[..colon]), known)?;
    let value = &rest[colon + 1..];
    let value_start = offset + colon + 1;

    let (op, op_len) = match value {
        [('>', false), ('=', false), ..] => (Some(CmpOp::Ge), 2),
        [('<', false), ('=', false), ..] => (Some(CmpOp::Le), 2),
        [('>', false), ..] => (Some(CmpOp::Gt), 1),
        [('<', false), ..] => (Some(CmpOp::Lt), 1),
        _ => (None, 0),
    };
    let field_name = || match &path.sub {
        Some(sub) => format!("{}.{sub}", path.field),
        None => path.field.clone(),
    };

    if let Some(op) = op {
        let raw_value = text(&value[op_len..]);
        if raw_value.is_empty() {
            return Err(err(format!(
                "missing value after comparison operator for field `{}`",
                field_name()
            )));
        }
        let num = Num::parse(&raw_value);
        return Ok(Term {
            negated,
            kind: TermKind::Cmp {
                path,
                op,
                raw: raw_value,
                num,
            },
        });
    }

    if value.is_empty() && !raw.quote_starts.iter().any(|&q| q >= value_start) {
        return Err(err(format!(
            "missing value after `{}:` (use `\"\"` to match an empty string)",
            field_name()
        )));
    }
    Ok(Term {
        negated,
        kind: TermKind::Eq {
            path,
            pattern: compile_pattern(value),
        },
    })
}

fn parse_path(name: &str, known: &[&str]) -> Result<Path, QueryError> {
    if name.is_empty() {
        return Err(err("missing field name before `:` in `filter`".to_owned()));
    }
    let (field, sub) = match name.split_once('.') {
        None => (name, None),
        Some((f, s)) => (f, Some(s)),
    };
    if field.is_empty() || sub.is_some_and(str::is_empty) {
        return Err(err(format!(
            "invalid field name `{}` in `filter`",
            shown(name)
        )));
    }
    if sub.is_some_and(|s| s.contains('.')) {
        return Err(err(format!(
            "field `{}` in `filter` nests too deep; only one level (`field.key`) is supported",
            shown(name)
        )));
    }
    if !known.contains(&field) {
        return Err(err(format!(
            "unknown field `{}` in `filter`; {}",
            shown(field),
            valid_fields(known)
        )));
    }
    Ok(Path {
        field: field.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

fn compile_pattern(value: &[(char, bool)]) -> Pattern {
    let mut parts = vec![String::new()];
    for &(c, quoted) in value {
        if c == '*' && !quoted {
            parts.push(String::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    if parts.len() == 1 {
        return Pattern::Exact(parts.pop().unwrap_or_default());
    }
    // Keep the anchored first/last pieces even when empty; drop empty middles.
    let last = parts.pop().unwrap_or_default();
    let first = parts.remove(0);
    let mut glob = vec![first];
    glob.extend(parts.into_iter().filter(|p| !p.is_empty()));
    glob.push(last);
    Pattern::Glob(glob)
}

impl Term {
    fn matches(&self, item: &Value) -> bool {
        match &self.kind {
            TermKind::Word(needle) => match item {
                // `href` is excluded: every item's href holds the collection
                // path, so words like "api" would otherwise match everything.
                Value::Object(map) => map.iter().any(|(k, v)| match v {
                    _ if k == "href" => false,
                    Value::String(s) => contains_ci(s, needle),
                    Value::Array(a) => a
                        .iter()
                        .any(|e| e.as_str().is_some_and(|s| contains_ci(s, needle))),
                    _ => false,
                }),
                _ => false,
            },
            TermKind::Eq { path, pattern } => match path.lookup(item) {
                // Missing and null are the same thing to a client.
                None => pattern.matches("null"),
                Some(Value::Array(a)) => a.iter().any(|e| scalar_matches(pattern, e)),
                Some(v) => scalar_matches(pattern, v),
            },
            TermKind::Cmp { path, op, raw, num } => match path.lookup(item) {
                Some(Value::Array(a)) => a.iter().any(|e| compare_holds(e, *op, raw, *num)),
                Some(v) => compare_holds(v, *op, raw, *num),
                None => false,
            },
        }
    }
}

fn scalar_matches(pattern: &Pattern, v: &Value) -> bool {
    match v {
        Value::String(s) => pattern.matches(s),
        Value::Number(n) => pattern.matches(&n.to_string()),
        Value::Bool(true) => pattern.matches("true"),
        Value::Bool(false) => pattern.matches("false"),
        Value::Null => pattern.matches("null"),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// Numeric when both sides are numbers, otherwise byte-wise string order
/// (which is chronological for RFC 3339 timestamps in the same offset).
fn compare_holds(v: &Value, op: CmpOp, raw: &str, num: Option<Num>) -> bool {
    let ord = match v {
        Value::Number(n) => match num {
            Some(rhs) => Num::from_json(n).cmp(rhs),
            None => n.to_string().as_bytes().cmp(raw.as_bytes()),
        },
        Value::String(s) => match (num, Num::parse(s)) {
            (Some(rhs), Some(lhs)) => lhs.cmp(rhs),
            _ => s.as_bytes().cmp(raw.as_bytes()),
        },
        _ => return false,
    };
    op.holds(ord)
}

/// Case-insensitive substring test; `needle` is already lowercased. The
/// ASCII fast path avoids allocating per item.
fn contains_ci(hay: &str, needle: &str) -> bool {
    if hay.is_ascii() && needle.is_ascii() {
        let n = needle.as_bytes();
        hay.as_bytes()
            .windows(n.len())
            .any(|w| w.eq_ignore_ascii_case(n))
    } else {
        hay.to_lowercase().contains(needle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KNOWN: &[&str] = &[
        "name", "size", "tags", "data", "created", "enabled", "note", "id",
    ];

    fn f(s: &str) -> Filter {
        Filter::parse(s, KNOWN).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn bad(s: &str) -> String {
        let e = Filter::parse(s, KNOWN).expect_err(s);
        assert_eq!(e.code, "invalid_filter", "{s:?}");
        assert_eq!(e.param, "filter");
        e.message
    }

    fn item() -> Value {
        json!({
            "id": 7,
            "name": "web-01",
            "size": 2048,
            "tags": ["prod", "eu-west"],
            "data": {"kind": "vm", "cpus": 4},
            "created": "2024-05-01T12:00:00Z",
            "enabled": true,
            "note": null,
        })
    }

    #[test]
    fn empty_matches_all() {
        for s in ["", "   ", "\t\n"] {
            let flt = f(s);
            assert!(flt.is_empty());
            assert!(flt.matches(&item()));
            assert!(flt.matches(&json!(null)));
        }
        assert_eq!(Filter::default(), f(""));
    }

    #[test]
    fn exact_equality() {
        assert!(f("name:web-01").matches(&item()));
        assert!(!f("name:web").matches(&item()));
        assert!(!f("name:WEB-01").matches(&item()), "case-sensitive");
        assert!(f("size:2048").matches(&item()));
        assert!(!f("size:2048.0").matches(&item()));
        assert!(f("enabled:true").matches(&item()));
        assert!(!f("enabled:false").matches(&item()));
        assert!(f("note:null").matches(&item()));
        assert!(f("id:7").matches(&item()));
    }

    #[test]
    fn missing_field_is_null() {
        let it = json!({"name": "a"});
        assert!(f("note:null").matches(&it));
        assert!(!f("note:x").matches(&it));
        assert!(f("!note:x").matches(&it));
        assert!(!f("size:>1").matches(&it));
        assert!(!f("size:<1").matches(&it));
    }

    #[test]
    fn wildcards() {
        let it = item();
        for yes in [
            "name:web*",
            "name:*01",
            "name:w*-*1",
            "name:*",
            "name:**",
            "name:web-01*",
            "name:*web-01",
            "name:w*e*b*0*1",
        ] {
            assert!(f(yes).matches(&it), "{yes}");
        }
        for no in [
            "name:db*",
            "name:*02",
            "name:w*x*1",
            "name:web-01?*",
            "name:*web-01x",
        ] {
            assert!(!f(no).matches(&it), "{no}");
        }
        // Prefix and suffix must not overlap.
        assert!(!f("name:ab*ba").matches(&json!({"name": "aba"})));
        assert!(f("name:ab*ba").matches(&json!({"name": "abba"})));
        assert!(f("name:*").matches(&json!({"name": ""})));
        assert!(f("size:20*").matches(&it), "numbers render as text");
        assert!(f("name:é*").matches(&json!({"name": "été"})));
        assert!(f("name:*t*").matches(&json!({"name": "été"})));
    }

    #[test]
    fn glob_matcher_direct() {
        let g = |p: &[&str], s: &str| {
            glob_match(&p.iter().map(|x| x.to_string()).collect::<Vec<_>>(), s)
        };
        assert!(g(&["", ""], ""));
        assert!(g(&["a", "b", "c"], "axxbyyc"));
        assert!(!g(&["a", "b", "c"], "acb"));
        assert!(g(&["", "aa", ""], "baaab"));
        assert!(!g(&["only"], "only"), "malformed glob never matches");
    }

    #[test]
    fn quoted_values() {
        let it = json!({"name": "my vm", "note": "a:b", "tags": ["x \"y\"", "back\\slash"]});
        assert!(f(r#"name:"my vm""#).matches(&it));
        assert!(f(r#"note:"a:b""#).matches(&it));
        assert!(
            f("note:a:b").matches(&it),
            "colons after the first are part of the value"
        );
        assert!(f(r#"tags:"x \"y\"""#).matches(&it));
        assert!(f(r#"tags:"back\\slash""#).matches(&it));
        assert!(
            f(r#"tags:"back\slash""#).matches(&it),
            "unknown escape kept literally"
        );
        assert!(
            f(r#"name:my" "vm"#).matches(&it),
            "quoted section inside a word"
        );
        assert!(f(r#""name":"my vm""#).matches(&it));
    }

    #[test]
    fn quoted_star_is_literal() {
        let lit = json!({"name": "a*"});
        let other = json!({"name": "ab"});
        assert!(f(r#"name:"a*""#).matches(&lit));
        assert!(!f(r#"name:"a*""#).matches(&other));
        assert!(f("name:a*").matches(&other));
        assert!(f(r#"name:"my vm"*"#).matches(&json!({"name": "my vm 2"})));
    }

    #[test]
    fn quoted_operator_is_literal() {
        let it = json!({"name": ">5", "size": 9});
        assert!(f(r#"name:">5""#).matches(&it));
        assert!(!f(r#"size:">5""#).matches(&it));
        assert!(f("size:>5").matches(&it));
        assert!(
            f(r#"size:>"5""#).matches(&it),
            "operator then quoted operand"
        );
    }

    #[test]
    fn empty_string_value() {
        assert!(f(r#"name:"""#).matches(&json!({"name": ""})));
        assert!(!f(r#"name:"""#).matches(&json!({"name": "x"})));
        assert!(f(r#"!name:"""#).matches(&json!({"name": "x"})));
    }

    #[test]
    fn negation() {
        let it = item();
        assert!(f("!name:db*").matches(&it));
        assert!(!f("!name:web*").matches(&it));
        assert!(!f("!web").matches(&it));
        assert!(f("!nomatch").matches(&it));
        assert!(f("!size:>4096").matches(&it));
        assert!(f("!tags:dev").matches(&it));
        assert!(!f("!tags:prod").matches(&it));
        // `!` inside quotes is literal.
        assert!(f(r#""!bang""#).matches(&json!({"name": "a !bang"})));
    }

    #[test]
    fn and_of_terms() {
        let it = item();
        assert!(f("name:web* size:>1000 tags:prod enabled:true").matches(&it));
        assert!(!f("name:web* size:>4096").matches(&it));
        assert!(f("  name:web*\t\ttags:prod  ").matches(&it));
    }

    #[test]
    fn arrays_any_element() {
        let it = item();
        assert!(f("tags:prod").matches(&it));
        assert!(f("tags:eu-*").matches(&it));
        assert!(!f("tags:dev").matches(&it));
        assert!(!f("tags:null").matches(&json!({"tags": []})));
        assert!(f("tags:null").matches(&json!({"tags": [null]})));
        assert!(f("tags:>3").matches(&json!({"tags": [1, 5]})));
        assert!(!f("tags:>9").matches(&json!({"tags": [1, 5]})));
        assert!(
            !f("tags:x").matches(&json!({"tags": [["x"]]})),
            "no recursion into nested arrays"
        );
    }

    #[test]
    fn numeric_comparisons() {
        let it = item();
        assert!(f("size:>2047").matches(&it));
        assert!(!f("size:>2048").matches(&it));
        assert!(f("size:>=2048").matches(&it));
        assert!(f("size:<2049").matches(&it));
        assert!(!f("size:<2048").matches(&it));
        assert!(f("size:<=2048").matches(&it));
        assert!(f("size:>1e3").matches(&it));
        assert!(f("size:<2048.5").matches(&it));
        assert!(f("size:>-1").matches(&it));
        assert!(f("data.cpus:>=4").matches(&it));
        // Numeric strings compare numerically, not lexically ("10" > "9").
        assert!(f("name:>9").matches(&json!({"name": "10"})));
        // Non-numbers never satisfy comparisons.
        assert!(!f("enabled:>0").matches(&it));
        assert!(!f("note:<1").matches(&it));
        assert!(!f("data:>0").matches(&it));
        let big = json!({"size": u64::MAX});
        assert!(f("size:>18446744073709551614").matches(&big));
        assert!(!f("size:>18446744073709551615").matches(&big));
    }

    #[test]
    fn string_comparisons() {
        let it = item();
        assert!(f("created:>2024-01-01").matches(&it));
        assert!(f("created:>=2024-05-01T12:00:00Z").matches(&it));
        assert!(!f("created:>2024-05-01T12:00:00Z").matches(&it));
        assert!(
            f("created:<2025").matches(&it),
            "string vs number-looking operand falls back to lexical"
        );
        assert!(f("name:<x").matches(&it));
        assert!(!f("name:<a").matches(&it));
        // A number against a non-numeric operand compares its JSON text.
        assert!(f("size:<a").matches(&it));
    }

    #[test]
    fn nested_fields() {
        let it = item();
        assert!(f("data.kind:vm").matches(&it));
        assert!(!f("data.kind:ct").matches(&it));
        assert!(f("data.missing:null").matches(&it));
        assert!(
            f("name.x:null").matches(&it),
            "non-object parent acts as missing"
        );
        assert!(f("data.cpus:4").matches(&it));
        assert!(!f("data:vm").matches(&it), "objects never equal a value");
        assert!(f("data.kind:v*").matches(&it));
    }

    #[test]
    fn bare_words() {
        let it = item();
        assert!(f("web").matches(&it));
        assert!(f("WEB").matches(&it), "case-insensitive");
        assert!(f("EU-WE").matches(&it), "looks inside string arrays");
        assert!(f("2024-05").matches(&it));
        assert!(!f("2048").matches(&it), "only string values are searched");
        assert!(!f("vm").matches(&it), "nested objects are not searched");
        assert!(f(r#""web-01""#).matches(&it));
        assert!(
            f(r#""a:b""#).matches(&json!({"note": "xA:By"})),
            "quoted colon makes a bare word"
        );
        assert!(f("ÉTÉ").matches(&json!({"name": "un été"})));
        assert!(f("été").matches(&json!({"name": "UN ÉTÉ"})));
        assert!(
            !f("web").matches(&json!("web")),
            "non-object items have no fields"
        );
        assert!(!f("verylongneedle").matches(&json!({"name": "short"})));
        assert!(!f("api").matches(&json!({"href": "/api/v1/vms/1"})));
    }

    #[test]
    fn errors() {
        assert!(
            bad("bogus:1")
                .contains("valid fields: name, size, tags, data, created, enabled, note, id")
        );
        assert!(bad("bogus.kind:1").contains("unknown field `bogus`"));
        assert!(bad(":x").contains("missing field name"));
        assert!(bad(":::").contains("missing field name"));
        assert!(bad("name:").contains("missing value"));
        assert!(bad("name:web name:").contains("missing value"));
        assert!(bad("size:>").contains("missing value after comparison"));
        assert!(bad("size:>=").contains("missing value after comparison"));
        assert!(bad("size:<=\"\"").contains("missing value after comparison"));
        assert!(bad("name:\"abc").contains("unterminated quote"));
        assert!(bad("\"").contains("unterminated quote"));
        assert!(bad(r#"name:"a\""#).contains("unterminated quote"));
        assert!(bad("!").contains("`!` must be followed"));
        assert!(bad("name:x !").contains("`!` must be followed"));
        assert!(bad("!!name:x").contains("double negation"));
        assert!(bad("!!").contains("double negation"));
        assert!(bad("\"\"").contains("empty search term"));
        assert!(bad("!\"\"").contains("empty search term"));
        assert!(bad(".kind:x").contains("invalid field name"));
        assert!(bad("data.:x").contains("invalid field name"));
        assert!(bad("data.a.b:x").contains("only one level"));
        assert!(bad("!:x").contains("missing field name"));
    }

    #[test]
    fn unknown_field_with_no_known_fields() {
        let e = Filter::parse("a:b", &[]).unwrap_err();
        assert!(e.message.contains("no fields"), "{}", e.message);
        // Bare words need no field list.
        assert!(Filter::parse("a", &[]).is_ok());
    }

    #[test]
    fn long_inputs() {
        let ok = "a".repeat(MAX_FILTER_LEN);
        assert!(Filter::parse(&ok, KNOWN).is_ok());
        assert!(bad(&"a".repeat(MAX_FILTER_LEN + 1)).contains("longer than 4096"));
        // 4096 multi-byte characters are within the limit.
        assert!(Filter::parse(&"é".repeat(MAX_FILTER_LEN), KNOWN).is_ok());
        assert!(bad(&"é".repeat(MAX_FILTER_LEN + 1)).contains("longer than"));
        // Echoed names are truncated in messages.
        let msg = bad(&format!("{}:x", "z".repeat(500)));
        assert!(msg.len() < 300, "{msg}");
    }

    #[test]
    fn nasty_inputs_never_panic() {
        let nasty = [
            "",
            " ",
            "!",
            "!!",
            "!!!",
            ":",
            "::",
            ":::",
            "\"",
            "\"\"",
            "\"\"\"",
            "\\",
            "\\\"",
            "\"\\",
            "\"\\\"",
            "*",
            "**",
            "!*",
            "name:*",
            "name:**",
            "name:\\*",
            "name:>",
            "name:<",
            "name:>>",
            "name:<<",
            "name:>=<",
            "name:=",
            "name:!",
            "name:!x",
            "name::",
            "name:\"",
            "name:\"\\",
            ".",
            "..",
            ".:x",
            "a.b.c:d",
            "name.:",
            "é:ü",
            "名前:値",
            "name:名*",
            "🦀",
            "name:🦀*🦀",
            "\u{0}",
            "name:\u{0}",
            "\u{200b}",
            "\u{feff}name:x",
            "name:x\u{2003}size:1",
            "!\"!\"",
            "\"!\":\"!\"",
            "name:\"a\"\"b\"",
            "tags:[1,2]",
            "data.:",
            "data..x:y",
            "size:>1e999",
            "size:>-",
            "size:>nan",
            "size:>inf",
            "size:>0x10",
            "size:<=-0",
            "-",
            "--",
            "name:-",
            "\n\r\t",
            "name:\"\n\"",
            "!name",
            "!name:",
            "!\"",
            "name:\"\\\\\"",
            "a\"b",
            "a\"b\"c:d",
        ];
        let items = [
            item(),
            json!(null),
            json!([]),
            json!("web"),
            json!({}),
            json!({"name": 1, "tags": {"a": 1}}),
        ];
        for s in nasty {
            if let Ok(flt) = Filter::parse(s, KNOWN) {
                for it in &items {
                    let _ = flt.matches(it);
                }
            }
        }
        // Pseudo-random strings built from the grammar's special characters.
        let alphabet: Vec<char> = "!:\"\\*<>=. ab.-é🦀\t".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let mut x = seed;
            for _ in 0..len {
                s.push(alphabet[(x % alphabet.len() as u64) as usize]);
                x = x.rotate_left(7).wrapping_mul(0x2545_f491_4f6c_dd1d);
            }
            let s = s.replace("a:", "name:").replace("b:", "size:");
            if let Ok(flt) = Filter::parse(&s, KNOWN) {
                for it in &items {
                    let _ = flt.matches(it);
                }
            }
        }
    }
}
