//! Value ordering shared by `sort` and the filter's numeric comparisons.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A number kept exact when it is an integer, so 64-bit ids and byte counts
/// above 2^53 still compare correctly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    pub(crate) fn from_json(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            // Without `arbitrary_precision` every other Number is a finite f64.
            Num::Float(n.as_f64().unwrap_or(0.0))
        }
    }

    /// Parses a decimal string; `None` unless it is a finite number
    /// (so "inf"/"NaN" stay plain strings).
    pub(crate) fn parse(s: &str) -> Option<Num> {
        let digits = s.strip_prefix('-').unwrap_or(s);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = s.parse::<i128>()
        {
            return Some(Num::Int(i));
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Some(Num::Float(f)),
            _ => None,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            // Precision loss only matters beyond 2^53 against a float operand.
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    pub(crate) fn cmp(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (a, b) => a.as_f64().total_cmp(&b.as_f64()),
        }
    }
}

/// Type rank for mixed-type ordering; missing and null share the lowest rank.
fn rank(v: Option<&Value>) -> u8 {
    match v {
        None | Some(Value::Null) => 0,
        Some(Value::Bool(_)) => 1,
        Some(Value::Number(_)) => 2,
        Some(Value::String(_)) => 3,
        Some(Value::Array(_)) => 4,
        Some(Value::Object(_)) => 5,
    }
}

/// Ascending order: null/missing < bool < number < string < array < object.
/// Strings compare by bytes, arrays element-wise, objects are all equal.
pub(crate) fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            Num::from_json(x).cmp(Num::from_json(y))
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.as_bytes().cmp(y.as_bytes()),
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for (ex, ey) in x.iter().zip(y) {
                let o = compare(Some(ex), Some(ey));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn num_parse() {
        assert_eq!(Num::parse("42"), Some(Num::Int(42)));
        assert_eq!(Num::parse("-7"), Some(Num::Int(-7)));
        assert_eq!(Num::parse("1.5"), Some(Num::Float(1.5)));
        assert_eq!(Num::parse("1e3"), Some(Num::Float(1000.0)));
        assert_eq!(Num::parse("inf"), None);
        assert_eq!(Num::parse("NaN"), None);
        assert_eq!(Num::parse(""), None);
        assert_eq!(Num::parse("-"), None);
        assert_eq!(Num::parse("2024-01-01"), None);
    }

    #[test]
    fn big_integers_compare_exactly() {
        let a = json!(u64::MAX);
        let b = json!(u64::MAX - 1);
        assert_eq!(compare(Some(&a), Some(&b)), Ordering::Greater);
        assert_eq!(
            Num::parse("18446744073709551615")
                .unwrap()
                .cmp(Num::from_json(a.as_number().unwrap())),
            Ordering::Equal
        );
    }

    #[test]
    fn mixed_numbers() {
        assert_eq!(compare(Some(&json!(1)), Some(&json!(1.5))), Ordering::Less);
        assert_eq!(compare(Some(&json!(-1)), Some(&json!(0.0))), Ordering::Less);
        assert_eq!(compare(Some(&json!(2)), Some(&json!(2.0))), Ordering::Equal);
    }

    #[test]
    fn type_ranks() {
        let order = [
            json!(null),
            json!(true),
            json!(-5),
            json!(""),
            json!([]),
            json!({}),
        ];
        for w in order.windows(2) {
            assert_eq!(compare(Some(&w[0]), Some(&w[1])), Ordering::Less, "{w:?}");
        }
        assert_eq!(compare(None, Some(&json!(null))), Ordering::Equal);
        assert_eq!(compare(None, Some(&json!(false))), Ordering::Less);
    }

    #[test]
    fn arrays_elementwise() {
        assert_eq!(
            compare(Some(&json!([1, 2])), Some(&json!([1, 3]))),
            Ordering::Less
        );
        assert_eq!(
            compare(Some(&json!([1])), Some(&json!([1, 0]))),
            Ordering::Less
        );
        assert_eq!(
            compare(Some(&json!({"a":1})), Some(&json!({"a":2}))),
            Ordering::Equal
        );
    }

    #[test]
    fn strings_by_bytes() {
        assert_eq!(
            compare(Some(&json!("B")), Some(&json!("a"))),
            Ordering::Less
        );
        assert_eq!(
            compare(Some(&json!("z")), Some(&json!("é"))),
            Ordering::Less
        );
        assert_eq!(
            compare(Some(&json!(false)), Some(&json!(true))),
            Ordering::Less
        );
    }
}
