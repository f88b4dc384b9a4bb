//! Parsing root-device hint dictionaries into typed conditions.
//!
//! A hint dictionary maps a device attribute to an expression: an optional operator followed
//! by one or more values, in the language of oslo.utils' `specs_matcher`. Everything is
//! validated here, once, so that matching cannot fail: an unknown key, a value of the wrong
//! type or an operator that makes no sense for the attribute is an error naming the hint.
//!
//! Normalisation follows IPA: an expression is trimmed and lower-cased; string values are
//! URL-quoted ([`quote`]) so that the hint and the device value compare in the same form;
//! `name` values get a `/dev/` prefix when they lack one.

use std::fmt;

use serde_json::{Map, Value};

use super::error::{ExpressionError, HintError, InvalidHint};
use super::key::{HintKey, HintType};

/// A numeric comparison (`==`, `!=`, `>=`, `<=`, `>`, `<`; `=` is the legacy spelling of `>=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`, and the legacy `=`.
    Ge,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `<`
    Lt,
}

impl NumOp {
    /// Applies the comparison `actual <op> wanted`.
    pub fn compare(self, actual: f64, wanted: f64) -> bool {
        match self {
            NumOp::Eq => actual == wanted,
            NumOp::Ne => actual != wanted,
            NumOp::Ge => actual >= wanted,
            NumOp::Le => actual <= wanted,
            NumOp::Gt => actual > wanted,
            NumOp::Lt => actual < wanted,
        }
    }
}

/// A string comparison (`s==`, `s!=`, `s>=`, `s>`, `s<=`, `s<`), on normalised strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    /// `s==`, the default for string hints.
    Eq,
    /// `s!=`
    Ne,
    /// `s>=`
    Ge,
    /// `s>`
    Gt,
    /// `s<=`
    Le,
    /// `s<`
    Lt,
}

impl StrOp {
    /// Applies the comparison `actual <op> wanted` (code-point order, as Python's).
    pub fn compare(self, actual: &str, wanted: &str) -> bool {
        match self {
            StrOp::Eq => actual == wanted,
            StrOp::Ne => actual != wanted,
            StrOp::Ge => actual >= wanted,
            StrOp::Gt => actual > wanted,
            StrOp::Le => actual <= wanted,
            StrOp::Lt => actual < wanted,
        }
    }
}

/// One end of a `<range-in>` interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeBound {
    /// The bound.
    pub value: f64,
    /// `[` / `]` (true) or `(` / `)` (false).
    pub inclusive: bool,
}

/// What a hint requires of the device's value, after parsing and normalisation.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A numeric comparison. For `size` the device value is its size in GiB (a float); for a
    /// string attribute the device value must read as a number.
    Number {
        /// The comparison.
        op: NumOp,
        /// The number compared with.
        value: f64,
    },
    /// A string comparison on lower-cased, URL-quoted values.
    Text {
        /// The comparison.
        op: StrOp,
        /// The normalised value compared with.
        value: String,
    },
    /// `<in>`: the device value contains this (lower-cased) text.
    Contains(String),
    /// `<all-in>`: the device value contains every one of these (lower-cased) words.
    ContainsAll(Vec<String>),
    /// `<or>`, or a list-valued hint: any of the conditions.
    AnyOf(Vec<Condition>),
    /// `<range-in>`: the numeric device value lies in the interval.
    Range {
        /// Lower bound.
        low: RangeBound,
        /// Upper bound.
        high: RangeBound,
    },
    /// `rotational`: the device's flag equals this.
    Bool(bool),
}

/// One parsed hint: `key: expression`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// The attribute.
    pub key: HintKey,
    /// What the attribute must satisfy.
    pub condition: Condition,
    /// The expression as the operator wrote it (for messages).
    pub expression: Value,
}

/// A validated set of root-device hints; a device matches when it satisfies every hint.
#[derive(Debug, Clone, PartialEq)]
pub struct RootDeviceHints {
    hints: Vec<Hint>,
    original: Map<String, Value>,
}

impl RootDeviceHints {
    /// Parses hints given as a JSON object or as a string holding one (Ironic stores either).
    /// `null`, `""`, `"{}"` and `{}` mean "no hints" (`Ok(None)`).
    ///
    /// # Errors
    /// A human-readable description of everything wrong with the hints: not an object,
    /// unknown keys, values of the wrong type, unusable operators.
    pub fn from_value(value: &Value) -> Result<Option<RootDeviceHints>, HintError> {
        match value {
            Value::Null => Ok(None),
            Value::String(text) if text.trim().is_empty() => Ok(None),
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Self::from_object(&map),
                Ok(other) => Err(HintError::NotAnObject(other.to_string())),
                Err(e) => Err(HintError::BadJson {
                    text: text.clone(),
                    reason: e.to_string(),
                }),
            },
            Value::Object(map) => Self::from_object(map),
            other => Err(HintError::NotAnObject(other.to_string())),
        }
    }

    /// [`from_value`](Self::from_value) for an object: `Ok(None)` when it is empty.
    ///
    /// # Errors
    /// As [`from_value`](Self::from_value).
    pub fn from_object(map: &Map<String, Value>) -> Result<Option<RootDeviceHints>, HintError> {
        if map.is_empty() {
            return Ok(None);
        }
        let unknown: Vec<String> = map
            .keys()
            .filter(|k| HintKey::from_name(k).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(HintError::UnknownKeys { unknown });
        }
        let mut hints = Vec::with_capacity(map.len());
        let mut errors = Vec::new();
        for (name, expression) in map {
            let Some(key) = HintKey::from_name(name) else {
                continue;
            };
            match parse_hint(key, expression) {
                Ok(condition) => hints.push(Hint {
                    key,
                    condition,
                    expression: expression.clone(),
                }),
                Err(reason) => errors.push(InvalidHint {
                    name: name.clone(),
                    expression: expression.to_string(),
                    reason,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(HintError::Invalid(errors));
        }
        hints.sort_by_key(|h| h.key);
        Ok(Some(RootDeviceHints {
            hints,
            original: map.clone(),
        }))
    }

    /// The parsed hints, in IPA's key order.
    pub fn hints(&self) -> &[Hint] {
        &self.hints
    }

    /// The hints as given (for messages and logs).
    pub fn original(&self) -> &Map<String, Value> {
        &self.original
    }
}

impl fmt::Display for RootDeviceHints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Value::Object(self.original.clone()))
    }
}

/// Parses the expression of one hint.
fn parse_hint(key: HintKey, expression: &Value) -> Result<Condition, ExpressionError> {
    match key.value_type() {
        HintType::Boolean => bool_from_value(expression).map(Condition::Bool),
        HintType::Integer => {
            let text = match expression {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return Err(ExpressionError::SizeType),
            };
            parse_size_expression(&text)
        }
        HintType::String => match expression {
            Value::String(s) => parse_string_expression(key, s),
            Value::Array(items) if key.multi_valued() => {
                if items.is_empty() {
                    return Err(ExpressionError::EmptyList);
                }
                let alternatives = items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => parse_string_expression(key, s),
                        other => Err(ExpressionError::ListElement(other.to_string())),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Condition::AnyOf(alternatives))
            }
            Value::Array(_) => Err(ExpressionError::SingleValued(key)),
            _ => Err(ExpressionError::NotAString(key)),
        },
    }
}

/// oslo.utils' `bool_from_string(value, strict=True)`: `1 t true on y yes` and
/// `0 f false off n no` (any case, surrounding spaces ignored); JSON booleans as themselves.
///
/// # Errors
/// Any other value, with the accepted spellings.
pub fn bool_from_value(value: &Value) -> Result<bool, ExpressionError> {
    let text = match value {
        Value::Bool(b) => return Ok(*b),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    match text.trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(ExpressionError::NotABoolean(value.to_string())),
    }
}

/// The operators of the expression language, longest spelling first where one is a prefix
/// of another (so `==` is not read as `=`, `<=` not as `<`).
const OPERATORS: [(&str, Operator); 17] = [
    ("<all-in>", Operator::AllIn),
    ("<range-in>", Operator::RangeIn),
    ("<or>", Operator::Or),
    ("<in>", Operator::In),
    ("s==", Operator::Str(StrOp::Eq)),
    ("s!=", Operator::Str(StrOp::Ne)),
    ("s<=", Operator::Str(StrOp::Le)),
    ("s<", Operator::Str(StrOp::Lt)),
    ("s>=", Operator::Str(StrOp::Ge)),
    ("s>", Operator::Str(StrOp::Gt)),
    ("==", Operator::Num(NumOp::Eq)),
    ("!=", Operator::Num(NumOp::Ne)),
    (">=", Operator::Num(NumOp::Ge)),
    ("<=", Operator::Num(NumOp::Le)),
    (">", Operator::Num(NumOp::Gt)),
    ("<", Operator::Num(NumOp::Lt)),
    // Legacy: `=` means "greater than or equal".
    ("=", Operator::Num(NumOp::Ge)),
];

/// A leading operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Num(NumOp),
    Str(StrOp),
    In,
    AllIn,
    Or,
    RangeIn,
}

/// Splits a trimmed, lower-cased expression into its operator (if it starts with one) and
/// the trimmed rest. Without an operator the whole expression is the value, even if it
/// contains an operator further on (`a <or> b` is the literal string).
fn split_operator(expression: &str) -> (Option<(&'static str, Operator)>, &str) {
    for (spelling, op) in OPERATORS {
        if let Some(rest) = expression.strip_prefix(spelling) {
            return (Some((spelling, op)), rest.trim());
        }
    }
    (None, expression)
}

/// The trimmed, lower-cased expression; an error when it is empty.
fn normalised(expression: &str) -> Result<String, ExpressionError> {
    let e = expression.trim().to_lowercase();
    if e.is_empty() {
        Err(ExpressionError::Empty)
    } else {
        Ok(e)
    }
}

/// The values of an `<or>` expression (`<or>` already removed): `a <or> b <or> c`.
fn or_values<'a>(rest: &'a str, spelling: &'static str) -> Result<Vec<&'a str>, ExpressionError> {
    let values: Vec<&str> = rest.split("<or>").map(str::trim).collect();
    if values.iter().any(|v| v.is_empty()) {
        return Err(ExpressionError::OrValueMissing(spelling));
    }
    Ok(values)
}

/// A `size` expression: a bare integer (`==`), a numeric operator and an integer, `<or>` of
/// integers, or `<range-in>`.
fn parse_size_expression(text: &str) -> Result<Condition, ExpressionError> {
    let expression = normalised(text)?;
    let (op, rest) = split_operator(&expression);
    match op {
        None => Ok(Condition::Number {
            op: NumOp::Eq,
            value: positive_integer(&expression)?,
        }),
        Some((spelling, _)) if rest.is_empty() => Err(ExpressionError::MissingValue(spelling)),
        Some((_, Operator::Num(op))) => Ok(Condition::Number {
            op,
            value: positive_integer(rest)?,
        }),
        Some((spelling, Operator::Or)) => Ok(Condition::AnyOf(
            or_values(rest, spelling)?
                .into_iter()
                .map(|v| {
                    Ok(Condition::Number {
                        op: NumOp::Eq,
                        value: positive_integer(v)?,
                    })
                })
                .collect::<Result<_, ExpressionError>>()?,
        )),
        Some((_, Operator::RangeIn)) => parse_range(rest),
        Some((spelling, _)) => Err(ExpressionError::SizeOperator(spelling)),
    }
}

/// A size value: a positive integer number of GiB.
fn positive_integer(text: &str) -> Result<f64, ExpressionError> {
    let n: i64 = text
        .trim()
        .parse()
        .map_err(|_| ExpressionError::NotAnInteger(text.to_string()))?;
    if n <= 0 {
        return Err(ExpressionError::NotPositive(n));
    }
    // Exact for every size a disk can have.
    Ok(n as f64)
}

/// A number for a numeric comparison of a string attribute.
fn number(text: &str) -> Result<f64, ExpressionError> {
    let t = text.trim();
    t.parse::<f64>()
        .ok()
        .filter(|v| !v.is_nan())
        .ok_or_else(|| ExpressionError::NotANumber(t.to_string()))
}

/// `<range-in>` operands: `[ 10 20 )` — an opening bracket (`[` inclusive, `(` exclusive),
/// two numbers with low ≤ high, a closing bracket (`]` or `)`).
fn parse_range(rest: &str) -> Result<Condition, ExpressionError> {
    let rest = rest.trim();
    let mut chars = rest.chars();
    let (Some(open), Some(close)) = (chars.next(), chars.next_back()) else {
        return Err(ExpressionError::BadRange);
    };
    let low_inclusive = match open {
        '[' => true,
        '(' => false,
        _ => return Err(ExpressionError::BadRange),
    };
    let high_inclusive = match close {
        ']' => true,
        ')' => false,
        _ => return Err(ExpressionError::BadRange),
    };
    let numbers: Vec<&str> = chars.as_str().split_whitespace().collect();
    let [low, high] = numbers[..] else {
        return Err(ExpressionError::BadRange);
    };
    let (low, high) = (number(low)?, number(high)?);
    if low > high {
        return Err(ExpressionError::RangeReversed { low, high });
    }
    Ok(Condition::Range {
        low: RangeBound {
            value: low,
            inclusive: low_inclusive,
        },
        high: RangeBound {
            value: high,
            inclusive: high_inclusive,
        },
    })
}

/// A string hint's expression.
fn parse_string_expression(key: HintKey, text: &str) -> Result<Condition, ExpressionError> {
    let expression = normalised(text)?;
    let (op, rest) = split_operator(&expression);
    let equal = |v: &str| Condition::Text {
        op: StrOp::Eq,
        value: normalise_value(key, v),
    };
    match op {
        None => Ok(equal(&expression)),
        Some((spelling, _)) if rest.is_empty() => Err(ExpressionError::MissingValue(spelling)),
        Some((_, Operator::Str(op))) => Ok(Condition::Text {
            op,
            value: normalise_value(key, rest),
        }),
        Some((_, Operator::In)) => Ok(Condition::Contains(rest.to_string())),
        Some((_, Operator::AllIn)) => Ok(Condition::ContainsAll(
            rest.split_whitespace().map(str::to_string).collect(),
        )),
        Some((spelling, Operator::Or)) => Ok(Condition::AnyOf(
            or_values(rest, spelling)?.into_iter().map(equal).collect(),
        )),
        Some((_, Operator::Num(op))) => Ok(Condition::Number {
            op,
            value: number(rest).map_err(|e| ExpressionError::NumericText {
                source: Box::new(e),
                expression: expression.clone(),
            })?,
        }),
        Some((_, Operator::RangeIn)) => parse_range(rest),
    }
}

/// A lower-cased string value in comparison form: `name` values get `/dev/` when they lack
/// it, then everything is URL-quoted.
fn normalise_value(key: HintKey, value: &str) -> String {
    if key == HintKey::Name && !value.starts_with("/dev/") {
        quote(&format!("/dev/{value}"))
    } else {
        quote(value)
    }
}

/// Python's `urllib.parse.quote(text, safe='/')`: every UTF-8 byte other than ASCII letters,
/// digits, `_ . - ~` and `/` becomes `%XX` (upper-case hex).
pub fn quote(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// The comparison form of a device's string value: trimmed, lower-cased, URL-quoted; `None`
/// when empty.
pub fn normalise_device_value(value: &str) -> Option<String> {
    let v = value.trim().to_lowercase();
    (!v.is_empty()).then(|| quote(&v))
}
