//! Why root-device hints or a skip list could not be parsed. Each becomes an
//! `InvalidCommandParamsError` (HTTP 400 class) where a node's hints reach a command.

use super::key::HintKey;

/// What is wrong with one hint's expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExpressionError {
    /// `size` is neither a number nor a string.
    #[error("size must be a positive integer (GiB)")]
    SizeType,
    /// A multi-valued hint with `[]`.
    #[error("the list of values is empty")]
    EmptyList,
    /// A list element that is not a string (the element).
    #[error("list element {0} is not a string")]
    ListElement(String),
    /// A list for a hint that takes one string.
    #[error(
        "{0} takes a single string (only serial, wwn, wwn_with_extension and \
         wwn_vendor_extension accept a list)"
    )]
    SingleValued(HintKey),
    /// A string hint given another JSON type.
    #[error("{0} must be a string")]
    NotAString(HintKey),
    /// Not one of oslo's boolean spellings (the value).
    #[error("{0} is not a boolean; use one of true, false, 1, 0, t, f, on, off, y, n, yes, no")]
    NotABoolean(String),
    /// Blank.
    #[error("the expression is empty")]
    Empty,
    /// `<or>` with an empty alternative (the operator as written).
    #[error("{0} needs a value after every <or> (e.g. \"<or> a <or> b\")")]
    OrValueMissing(&'static str),
    /// An operator and nothing after it.
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    /// An operator `size` does not take.
    #[error(
        "the operator {0} does not apply to size; use ==, !=, >=, <=, >, <, = (meaning >=), \
         <or> or <range-in>"
    )]
    SizeOperator(&'static str),
    /// A size that is not an integer (the text).
    #[error("{0:?} is not an integer number of GiB")]
    NotAnInteger(String),
    /// A size of zero or less.
    #[error("{0} is not a positive integer number of GiB")]
    NotPositive(i64),
    /// A numeric operand that is not a number (the text).
    #[error("{0:?} is not a number (numeric operators need one)")]
    NotANumber(String),
    /// A malformed `<range-in>` interval.
    #[error(
        "<range-in> needs an interval such as \"[ 10 20 )\": [ or ( then two numbers then ] or )"
    )]
    BadRange,
    /// A `<range-in>` whose bounds are reversed.
    #[error("<range-in>: the lower bound {low} is greater than the upper bound {high}")]
    RangeReversed {
        /// The lower bound given.
        low: f64,
        /// The upper bound given.
        high: f64,
    },
    /// A numeric operator on a string hint whose operand is not a number.
    #[error("{source}; to compare the text literally write \"s== {expression}\"")]
    NumericText {
        /// Why the operand is not a number.
        source: Box<ExpressionError>,
        /// The whole expression, normalised.
        expression: String,
    },
}

/// One invalid hint: its key, its expression and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("hint {name:?} = {expression}: {reason}")]
pub struct InvalidHint {
    /// The key as given.
    pub name: String,
    /// The expression as given (JSON).
    pub expression: String,
    /// What is wrong.
    pub reason: ExpressionError,
}

/// Why a set of root-device hints is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HintError {
    /// Not an object (the JSON given).
    #[error("root device hints must be a JSON object, got {0}")]
    NotAnObject(String),
    /// A string that does not parse as JSON.
    #[error("root device hints {text:?} are not valid JSON: {reason}")]
    BadJson {
        /// The string.
        text: String,
        /// The JSON parser's complaint.
        reason: String,
    },
    /// Keys that are not hints.
    #[error("unknown root device hint(s) {}; valid hints are {}", .unknown.join(", "), valid_hints())]
    UnknownKeys {
        /// The unknown keys.
        unknown: Vec<String>,
    },
    /// Every invalid hint, reported at once.
    #[error("{}", join(.0))]
    Invalid(Vec<InvalidHint>),
}

/// Why a skip list (`properties.skip_block_devices`) is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkipListError {
    /// A string that does not parse as JSON.
    #[error("{text:?} is not valid JSON: {reason}")]
    BadJson {
        /// The string.
        text: String,
        /// The JSON parser's complaint.
        reason: String,
    },
    /// Not a list (the JSON given).
    #[error("expected a list of hint dictionaries, got {0}")]
    NotAList(String),
    /// An entry that is not an object.
    #[error("entry {index} ({entry}) is not a dictionary")]
    NotAnObject {
        /// Its index.
        index: usize,
        /// The entry (JSON).
        entry: String,
    },
    /// A `volume_name` that is not a non-empty string.
    #[error("entry {index} ({entry}): volume_name must be a non-empty string")]
    VolumeName {
        /// Its index.
        index: usize,
        /// The entry (JSON).
        entry: String,
    },
    /// A `volume_name` entry with other keys.
    #[error(
        "entry {index} ({entry}): a volume_name entry names a RAID volume and takes no other key"
    )]
    VolumeNameAlone {
        /// Its index.
        index: usize,
        /// The entry (JSON).
        entry: String,
    },
    /// `{}`: it would skip every disk.
    #[error("entry {0} is empty; it would match (and skip) every disk")]
    EmptyEntry(usize),
    /// An entry whose hints are invalid.
    #[error("entry {index} ({entry}): {reason}")]
    Hints {
        /// Its index.
        index: usize,
        /// The entry (JSON).
        entry: String,
        /// What is wrong with its hints.
        reason: HintError,
    },
}

fn join(errors: &[InvalidHint]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn valid_hints() -> String {
    HintKey::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
