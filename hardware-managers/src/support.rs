//! Support levels: how well a manager claims to fit this machine.

use serde::{Deserialize, Serialize};

/// A manager's claim on this hardware; higher wins. The named values are IPA's; third parties
/// may use larger numbers. A manager at [`SupportLevel::NONE`] (or below) is dropped from the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SupportLevel(pub i64);

impl SupportLevel {
    /// The manager cannot run on this machine.
    pub const NONE: SupportLevel = SupportLevel(0);
    /// Works everywhere, using only generic Linux interfaces.
    pub const GENERIC: SupportLevel = SupportLevel(1);
    /// Supports hardware found by a mainline (in-tree) driver or tool.
    pub const MAINLINE: SupportLevel = SupportLevel(2);
    /// A site- or vendor-specific manager that should override everything else.
    pub const SERVICE_PROVIDER: SupportLevel = SupportLevel(3);

    /// Whether a manager at this level takes part in the chain.
    pub fn is_supported(self) -> bool {
        self.0 > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipa_numeric_values() {
        assert_eq!(SupportLevel::NONE.0, 0);
        assert_eq!(SupportLevel::GENERIC.0, 1);
        assert_eq!(SupportLevel::MAINLINE.0, 2);
        assert_eq!(SupportLevel::SERVICE_PROVIDER.0, 3);
        assert!(!SupportLevel(-1).is_supported());
        assert!(SupportLevel(7).is_supported());
        assert_eq!(
            serde_json::to_string(&SupportLevel(3)).ok().as_deref(),
            Some("3")
        );
    }
}
