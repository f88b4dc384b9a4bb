//! Matching parsed hints against devices, with the reasons a device does not match.

use std::fmt;

use serde_json::Value;

use super::key::HintKey;
use super::parse::{Condition, Hint, NumOp, RootDeviceHints, StrOp, quote};
use crate::inventory::BlockDevice;

/// Bytes per GiB: `size` hints are in GiB.
const GIB: f64 = (1u64 << 30) as f64;

/// The attributes of one device that hints are compared with.
///
/// Built from a [`BlockDevice`]; the identifier lists may hold every serial and WWN the
/// device is known by (sysfs and udev, as IPA's `all_serial_and_wwn` listing), the
/// inventory's value first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HintTarget {
    /// Device path, e.g. `/dev/sda`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the device is rotational.
    pub rotational: bool,
    /// Model.
    pub model: Option<String>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Serial numbers.
    pub serial: Vec<String>,
    /// WWNs.
    pub wwn: Vec<String>,
    /// WWNs with extension.
    pub wwn_with_extension: Vec<String>,
    /// WWN vendor extensions.
    pub wwn_vendor_extension: Vec<String>,
    /// SCSI address.
    pub hctl: Option<String>,
    /// `/dev/disk/by-path/...` link.
    pub by_path: Option<String>,
    /// Transport.
    pub tran: Option<String>,
}

impl From<&BlockDevice> for HintTarget {
    fn from(d: &BlockDevice) -> Self {
        HintTarget {
            name: d.name.clone(),
            size: d.size,
            rotational: d.rotational,
            model: d.model.clone(),
            vendor: d.vendor.clone(),
            serial: d.serial.iter().cloned().collect(),
            wwn: d.wwn.iter().cloned().collect(),
            wwn_with_extension: d.wwn_with_extension.iter().cloned().collect(),
            wwn_vendor_extension: d.wwn_vendor_extension.iter().cloned().collect(),
            hctl: d.hctl.clone(),
            by_path: d.by_path.clone(),
            tran: d.tran.clone(),
        }
    }
}

impl HintTarget {
    /// Adds `value` to the identifiers of `key` (serial or one of the WWNs) unless it is
    /// empty or already there. Other keys are single-valued and left alone.
    pub fn add_identifier(&mut self, key: HintKey, value: &str) {
        let value = value.trim();
        let list = match key {
            HintKey::Serial => &mut self.serial,
            HintKey::Wwn => &mut self.wwn,
            HintKey::WwnWithExtension => &mut self.wwn_with_extension,
            HintKey::WwnVendorExtension => &mut self.wwn_vendor_extension,
            _ => return,
        };
        if !value.is_empty() && !list.iter().any(|v| v == value) {
            list.push(value.to_string());
        }
    }

    /// The device's value for `key`.
    fn value(&self, key: HintKey) -> Actual<'_> {
        let one = |v: &'_ Option<String>| -> Vec<String> { v.iter().cloned().collect() };
        match key {
            HintKey::Size => Actual::Size(self.size),
            HintKey::Rotational => Actual::Flag(self.rotational),
            HintKey::Name => Actual::Texts(vec![self.name.clone()]),
            HintKey::Model => Actual::Texts(one(&self.model)),
            HintKey::Vendor => Actual::Texts(one(&self.vendor)),
            HintKey::Hctl => Actual::Texts(one(&self.hctl)),
            HintKey::ByPath => Actual::Texts(one(&self.by_path)),
            HintKey::Tran => Actual::Texts(one(&self.tran)),
            HintKey::Serial => Actual::List(&self.serial),
            HintKey::Wwn => Actual::List(&self.wwn),
            HintKey::WwnWithExtension => Actual::List(&self.wwn_with_extension),
            HintKey::WwnVendorExtension => Actual::List(&self.wwn_vendor_extension),
        }
    }
}

/// A device value as the matcher sees it.
enum Actual<'a> {
    Size(u64),
    Flag(bool),
    Texts(Vec<String>),
    List(&'a [String]),
}

impl Actual<'_> {
    /// The string values, trimmed and lower-cased, empty ones dropped.
    fn texts(&self) -> Vec<String> {
        let values: &[String] = match self {
            Actual::Texts(v) => v,
            Actual::List(v) => v,
            Actual::Size(_) | Actual::Flag(_) => &[],
        };
        values
            .iter()
            .map(|v| v.trim().to_lowercase())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

impl fmt::Display for Actual<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actual::Size(bytes) => {
                let gib = *bytes as f64 / GIB;
                if gib.fract() == 0.0 {
                    write!(f, "{gib} GiB ({bytes} bytes)")
                } else {
                    // Truncate rather than round: 9.9999 GiB must not print as 10.
                    write!(
                        f,
                        "~{:.3} GiB ({bytes} bytes)",
                        (gib * 1000.0).floor() / 1000.0
                    )
                }
            }
            Actual::Flag(b) => write!(f, "{b}"),
            Actual::Texts(v) => write_texts(f, v),
            Actual::List(v) => write_texts(f, v),
        }
    }
}

fn write_texts(f: &mut fmt::Formatter<'_>, values: &[String]) -> fmt::Result {
    match values {
        [] => f.write_str("unset"),
        [one] => write!(f, "{one:?}"),
        many => write!(f, "{many:?}"),
    }
}

impl Condition {
    /// Whether a numeric device value (size in GiB, or a string attribute read as a number)
    /// satisfies the condition.
    pub fn holds_for_number(&self, x: f64) -> bool {
        match self {
            Condition::Number { op, value } => op.compare(x, *value),
            Condition::Range { low, high } => {
                let above = if low.inclusive {
                    x >= low.value
                } else {
                    x > low.value
                };
                let below = if high.inclusive {
                    x <= high.value
                } else {
                    x < high.value
                };
                above && below
            }
            Condition::AnyOf(alternatives) => alternatives.iter().any(|c| c.holds_for_number(x)),
            Condition::Text { .. }
            | Condition::Contains(_)
            | Condition::ContainsAll(_)
            | Condition::Bool(_) => false,
        }
    }

    /// Whether a string device value (trimmed, lower-cased, not yet quoted) satisfies the
    /// condition. `<in>`/`<all-in>` test containment on the unquoted text, so that a hint such
    /// as `<in> 20` does not match the `%20` that quoting makes of a space.
    pub fn holds_for_text(&self, value: &str) -> bool {
        match self {
            Condition::Text { op, value: wanted } => op.compare(&quote(value), wanted),
            Condition::Contains(part) => value.contains(part.as_str()),
            Condition::ContainsAll(parts) => parts.iter().all(|p| value.contains(p.as_str())),
            Condition::AnyOf(alternatives) => alternatives.iter().any(|c| c.holds_for_text(value)),
            Condition::Number { .. } | Condition::Range { .. } => value
                .parse::<f64>()
                .is_ok_and(|x| !x.is_nan() && self.holds_for_number(x)),
            Condition::Bool(_) => false,
        }
    }

    /// Whether a device that lacks the attribute satisfies the condition: only the negations
    /// (`s!=`, `!=`) do.
    pub fn holds_for_absent(&self) -> bool {
        match self {
            Condition::Text { op: StrOp::Ne, .. } | Condition::Number { op: NumOp::Ne, .. } => true,
            Condition::AnyOf(alternatives) => alternatives.iter().any(Condition::holds_for_absent),
            _ => false,
        }
    }
}

impl Hint {
    /// Whether `device` satisfies this hint. For a multi-valued attribute any value will do.
    pub fn matches(&self, device: &HintTarget) -> bool {
        let actual = device.value(self.key);
        match (&actual, &self.condition) {
            (Actual::Size(bytes), c) => c.holds_for_number(*bytes as f64 / GIB),
            (Actual::Flag(flag), Condition::Bool(wanted)) => flag == wanted,
            (Actual::Flag(_), _) => false,
            (Actual::Texts(_) | Actual::List(_), c) => {
                let values = actual.texts();
                if values.is_empty() {
                    c.holds_for_absent()
                } else {
                    values.iter().any(|v| c.holds_for_text(v))
                }
            }
        }
    }
}

/// Why one hint did not match one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The hint's attribute.
    pub key: HintKey,
    /// The device's value, formatted for people (`"QEMU HARDDISK"`, `5 GiB (5368709120
    /// bytes)`, `unset`).
    pub actual: String,
    /// The hint's expression as given.
    pub expected: Value,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}, hint wants {}",
            self.key, self.actual, self.expected
        )
    }
}

impl RootDeviceHints {
    /// The hints `device` fails (empty when it matches).
    pub fn mismatches(&self, device: &HintTarget) -> Vec<Mismatch> {
        self.hints()
            .iter()
            .filter(|h| !h.matches(device))
            .map(|h| Mismatch {
                key: h.key,
                actual: device.value(h.key).to_string(),
                expected: h.expression.clone(),
            })
            .collect()
    }

    /// Whether `device` satisfies every hint.
    pub fn matches(&self, device: &HintTarget) -> bool {
        self.hints().iter().all(|h| h.matches(device))
    }

    /// The first device, in the given order, that satisfies every hint.
    pub fn first_match<'a>(&self, devices: &'a [HintTarget]) -> Option<&'a HintTarget> {
        devices.iter().find(|d| self.matches(d))
    }

    /// Every device with the hints it fails, for an error message:
    /// `/dev/sda (size is 5 GiB (5368709120 bytes), hint wants ">= 10")`, joined by `; `.
    pub fn explain(&self, devices: &[HintTarget]) -> String {
        devices
            .iter()
            .map(|d| {
                let reasons: Vec<String> =
                    self.mismatches(d).iter().map(ToString::to_string).collect();
                if reasons.is_empty() {
                    format!("{} (matches)", d.name)
                } else {
                    format!("{} ({})", d.name, reasons.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}
