//! World-wide names from the kernel's `wwid` attribute, shaped like udev's `ID_WWN*`.

/// The three WWN fields of the inventory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Wwn {
    /// `ID_WWN`: the NAA identifier (`0x` + 16 hex digits) or the raw designator.
    pub wwn: Option<String>,
    /// `ID_WWN_WITH_EXTENSION`: the full identifier.
    pub with_extension: Option<String>,
    /// `ID_WWN_VENDOR_EXTENSION`: the part after the first 16 hex digits of a 32-digit NAA.
    pub vendor_extension: Option<String>,
}

impl Wwn {
    /// Interprets a sysfs `wwid` (`naa.600508b1...`, `eui.0025...`, `t10.ATA ...`).
    ///
    /// NAA names become `0x<hex>`; a 32-digit (NAA 6 registered extended) name is split into
    /// the 16-digit WWN and its vendor extension, as udev's scsi_id does. Other designators
    /// (EUI-64, NVMe, T10 vendor ids) are kept verbatim in both `wwn` and `with_extension`.
    pub fn from_wwid(wwid: &str) -> Self {
        let wwid = wwid.trim();
        if wwid.is_empty() {
            return Wwn::default();
        }
        let Some(hex) = wwid.strip_prefix("naa.") else {
            return Wwn {
                wwn: Some(wwid.to_string()),
                with_extension: Some(wwid.to_string()),
                vendor_extension: None,
            };
        };
        let hex = hex.to_ascii_lowercase();
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let (id, ext) = hex.split_at(16);
            Wwn {
                wwn: Some(format!("0x{id}")),
                with_extension: Some(format!("0x{hex}")),
                vendor_extension: Some(format!("0x{ext}")),
            }
        } else {
            Wwn {
                wwn: Some(format!("0x{hex}")),
                with_extension: Some(format!("0x{hex}")),
                vendor_extension: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naa_names() {
        let w = Wwn::from_wwid("naa.5000C500A1B2C3D4\n");
        assert_eq!(w.wwn.as_deref(), Some("0x5000c500a1b2c3d4"));
        assert_eq!(w.with_extension.as_deref(), Some("0x5000c500a1b2c3d4"));
        assert_eq!(w.vendor_extension, None);

        let w = Wwn::from_wwid("naa.600508b1001c4d0c1f2e3d4c5b6a7980");
        assert_eq!(w.wwn.as_deref(), Some("0x600508b1001c4d0c"));
        assert_eq!(w.vendor_extension.as_deref(), Some("0x1f2e3d4c5b6a7980"));
        assert_eq!(
            w.with_extension.as_deref(),
            Some("0x600508b1001c4d0c1f2e3d4c5b6a7980")
        );
    }

    #[test]
    fn other_designators_verbatim() {
        let w = Wwn::from_wwid("eui.0025388b71b2ab6c");
        assert_eq!(w.wwn.as_deref(), Some("eui.0025388b71b2ab6c"));
        assert_eq!(w.vendor_extension, None);
        assert_eq!(Wwn::from_wwid("  "), Wwn::default());
    }
}
