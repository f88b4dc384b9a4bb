//! One `hardware-detect` fact and the ordered list of them.

use serde::Serialize;
use serde_json::Value;

/// `[category, item, key, value]`; the value is a string, except for the few facts that
/// `hardware-detect` reports as numbers (cpu counts, family, MHz, numa counts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fact(pub String, pub String, pub String, pub Value);

impl Fact {
    /// The category (`disk`, `cpu`, ...).
    pub fn category(&self) -> &str {
        &self.0
    }

    /// The item (`sda`, `physical_0`, ...).
    pub fn item(&self) -> &str {
        &self.1
    }

    /// The key (`size`, `vendor`, ...).
    pub fn key(&self) -> &str {
        &self.2
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.3
    }
}

/// The facts, in the order they were found; serialises as the JSON list Ironic expects.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Facts(pub Vec<Fact>);

impl Facts {
    /// Adds a fact with any JSON value.
    pub fn push(&mut self, category: &str, item: &str, key: &str, value: impl Into<Value>) {
        self.0.push(Fact(
            category.to_string(),
            item.to_string(),
            key.to_string(),
            value.into(),
        ));
    }

    /// The value of the first fact with these names.
    pub fn get(&self, category: &str, item: &str, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|f| f.category() == category && f.item() == item && f.key() == key)
            .map(Fact::value)
    }

    /// The first value with these names, as text (numbers are printed).
    pub fn get_text(&self, category: &str, item: &str, key: &str) -> Option<String> {
        self.get(category, item, key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Each fact's key and text value (empty for non-text values), in order (tests).
    #[cfg(test)]
    pub(crate) fn key_texts(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|f| {
                (
                    f.key().to_string(),
                    f.value().as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Iterates over the facts.
    pub fn iter(&self) -> impl Iterator<Item = &Fact> {
        self.0.iter()
    }
}

/// Python's `str()` of a float (`3500.0`, `2.5`): what `hardware-detect` prints for values
/// it computed as floats and then turned into text.
pub fn python_float(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_lists() {
        let mut f = Facts::default();
        f.push("cpu", "physical", "number", 2);
        f.push("disk", "sda", "size", "500");
        assert_eq!(
            serde_json::to_value(&f).expect("json"),
            serde_json::json!([
                ["cpu", "physical", "number", 2],
                ["disk", "sda", "size", "500"]
            ])
        );
        assert_eq!(
            f.get_text("cpu", "physical", "number").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn floats_as_python_prints_them() {
        assert_eq!(python_float(3500.0), "3500.0");
        assert_eq!(python_float(1234.5678), "1234.5678");
    }
}
