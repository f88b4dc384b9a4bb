//! The device attributes a root-device hint can name, and the type of value each takes.

use std::fmt;

/// The attributes a hint can name, in IPA's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HintKey {
    /// `size`: integer GiB, compared with the device size in bytes / 2^30.
    Size,
    /// `model`.
    Model,
    /// `wwn` (a device may have several).
    Wwn,
    /// `serial` (a device may have several).
    Serial,
    /// `vendor`.
    Vendor,
    /// `wwn_with_extension` (a device may have several).
    WwnWithExtension,
    /// `wwn_vendor_extension` (a device may have several).
    WwnVendorExtension,
    /// `name`: the device path, `/dev/sda` (a bare `sda` is accepted).
    Name,
    /// `rotational`: a boolean.
    Rotational,
    /// `hctl`: SCSI host:channel:target:lun.
    Hctl,
    /// `by_path`: the `/dev/disk/by-path/...` link.
    ByPath,
    /// `tran`: the transport (`sata`, `sas`, `nvme`, ...).
    Tran,
}

/// The type of value a hint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintType {
    /// A positive integer (GiB).
    Integer,
    /// A string compared with the string operators by default.
    String,
    /// A boolean in `bool_from_string`'s strict vocabulary.
    Boolean,
}

impl HintKey {
    /// Every hint, in IPA's order.
    pub const ALL: [HintKey; 12] = [
        HintKey::Size,
        HintKey::Model,
        HintKey::Wwn,
        HintKey::Serial,
        HintKey::Vendor,
        HintKey::WwnWithExtension,
        HintKey::WwnVendorExtension,
        HintKey::Name,
        HintKey::Rotational,
        HintKey::Hctl,
        HintKey::ByPath,
        HintKey::Tran,
    ];

    /// The key as written in the hint dictionary and the inventory.
    pub fn as_str(self) -> &'static str {
        match self {
            HintKey::Size => "size",
            HintKey::Model => "model",
            HintKey::Wwn => "wwn",
            HintKey::Serial => "serial",
            HintKey::Vendor => "vendor",
            HintKey::WwnWithExtension => "wwn_with_extension",
            HintKey::WwnVendorExtension => "wwn_vendor_extension",
            HintKey::Name => "name",
            HintKey::Rotational => "rotational",
            HintKey::Hctl => "hctl",
            HintKey::ByPath => "by_path",
            HintKey::Tran => "tran",
        }
    }

    /// The key called `name`, if it is a valid hint.
    pub fn from_name(name: &str) -> Option<HintKey> {
        HintKey::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The type of value the hint takes.
    pub fn value_type(self) -> HintType {
        match self {
            HintKey::Size => HintType::Integer,
            HintKey::Rotational => HintType::Boolean,
            _ => HintType::String,
        }
    }

    /// Whether a device can carry several values of this attribute (all its serials and
    /// WWNs, as IPA lists them for hint matching); the hint then matches when any value does.
    /// A hint of such a key may also be given as a list of expressions, any of which may match.
    pub fn multi_valued(self) -> bool {
        matches!(
            self,
            HintKey::Serial
                | HintKey::Wwn
                | HintKey::WwnWithExtension
                | HintKey::WwnVendorExtension
        )
    }
}

impl fmt::Display for HintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
