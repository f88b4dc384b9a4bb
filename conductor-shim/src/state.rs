//! Ironic's provision states, by their wire names (`"wait call-back"`, `"clean wait"`, ...).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A node's provision state, serialised with Ironic's exact wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProvisionState {
    /// `enroll`: newly created, not yet verified.
    #[serde(rename = "enroll")]
    Enroll,
    /// `verifying`.
    #[serde(rename = "verifying")]
    Verifying,
    /// `manageable`.
    #[serde(rename = "manageable")]
    Manageable,
    /// `available`.
    #[serde(rename = "available")]
    Available,
    /// `active`: deployed.
    #[serde(rename = "active")]
    Active,
    /// `deploying`.
    #[serde(rename = "deploying")]
    Deploying,
    /// `wait call-back` (Ironic's DEPLOYWAIT).
    #[serde(rename = "wait call-back")]
    DeployWait,
    /// `deploy failed`.
    #[serde(rename = "deploy failed")]
    DeployFailed,
    /// `deploy hold`.
    #[serde(rename = "deploy hold")]
    DeployHold,
    /// `deleting`.
    #[serde(rename = "deleting")]
    Deleting,
    /// `deleted`.
    #[serde(rename = "deleted")]
    Deleted,
    /// `cleaning`.
    #[serde(rename = "cleaning")]
    Cleaning,
    /// `clean wait`.
    #[serde(rename = "clean wait")]
    CleanWait,
    /// `clean failed`.
    #[serde(rename = "clean failed")]
    CleanFailed,
    /// `clean hold`.
    #[serde(rename = "clean hold")]
    CleanHold,
    /// `error`.
    #[serde(rename = "error")]
    Error,
    /// `rebuild`.
    #[serde(rename = "rebuild")]
    Rebuild,
    /// `inspecting`.
    #[serde(rename = "inspecting")]
    Inspecting,
    /// `inspect wait`.
    #[serde(rename = "inspect wait")]
    InspectWait,
    /// `inspect failed`.
    #[serde(rename = "inspect failed")]
    InspectFailed,
    /// `adopting`.
    #[serde(rename = "adopting")]
    Adopting,
    /// `adopt failed`.
    #[serde(rename = "adopt failed")]
    AdoptFailed,
    /// `rescue`: rescued.
    #[serde(rename = "rescue")]
    Rescue,
    /// `rescuing`.
    #[serde(rename = "rescuing")]
    Rescuing,
    /// `rescue wait`.
    #[serde(rename = "rescue wait")]
    RescueWait,
    /// `rescue failed`.
    #[serde(rename = "rescue failed")]
    RescueFailed,
    /// `unrescuing`.
    #[serde(rename = "unrescuing")]
    Unrescuing,
    /// `unrescue failed`.
    #[serde(rename = "unrescue failed")]
    UnrescueFailed,
    /// `servicing`.
    #[serde(rename = "servicing")]
    Servicing,
    /// `service wait`.
    #[serde(rename = "service wait")]
    ServiceWait,
    /// `service failed`.
    #[serde(rename = "service failed")]
    ServiceFailed,
    /// `service hold`.
    #[serde(rename = "service hold")]
    ServiceHold,
}

use ProvisionState as S;

/// Every state with its wire name and Ironic's constant name (accepted by the CLI too).
const TABLE: &[(ProvisionState, &str, &str)] = &[
    (S::Enroll, "enroll", "ENROLL"),
    (S::Verifying, "verifying", "VERIFYING"),
    (S::Manageable, "manageable", "MANAGEABLE"),
    (S::Available, "available", "AVAILABLE"),
    (S::Active, "active", "ACTIVE"),
    (S::Deploying, "deploying", "DEPLOYING"),
    (S::DeployWait, "wait call-back", "DEPLOYWAIT"),
    (S::DeployFailed, "deploy failed", "DEPLOYFAIL"),
    (S::DeployHold, "deploy hold", "DEPLOYHOLD"),
    (S::Deleting, "deleting", "DELETING"),
    (S::Deleted, "deleted", "DELETED"),
    (S::Cleaning, "cleaning", "CLEANING"),
    (S::CleanWait, "clean wait", "CLEANWAIT"),
    (S::CleanFailed, "clean failed", "CLEANFAIL"),
    (S::CleanHold, "clean hold", "CLEANHOLD"),
    (S::Error, "error", "ERROR"),
    (S::Rebuild, "rebuild", "REBUILD"),
    (S::Inspecting, "inspecting", "INSPECTING"),
    (S::InspectWait, "inspect wait", "INSPECTWAIT"),
    (S::InspectFailed, "inspect failed", "INSPECTFAIL"),
    (S::Adopting, "adopting", "ADOPTING"),
    (S::AdoptFailed, "adopt failed", "ADOPTFAIL"),
    (S::Rescue, "rescue", "RESCUE"),
    (S::Rescuing, "rescuing", "RESCUING"),
    (S::RescueWait, "rescue wait", "RESCUEWAIT"),
    (S::RescueFailed, "rescue failed", "RESCUEFAIL"),
    (S::Unrescuing, "unrescuing", "UNRESCUING"),
    (S::UnrescueFailed, "unrescue failed", "UNRESCUEFAIL"),
    (S::Servicing, "servicing", "SERVICING"),
    (S::ServiceWait, "service wait", "SERVICEWAIT"),
    (S::ServiceFailed, "service failed", "SERVICEFAIL"),
    (S::ServiceHold, "service hold", "SERVICEHOLD"),
];

/// A string that is not one of Ironic's provision states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provision state {0:?}")]
pub struct UnknownState(pub String);

impl ProvisionState {
    /// All states, in Ironic's life-cycle order.
    pub fn all() -> impl Iterator<Item = ProvisionState> {
        TABLE.iter().map(|(s, _, _)| *s)
    }

    /// The wire name (`"wait call-back"`).
    pub fn as_str(self) -> &'static str {
        TABLE
            .iter()
            .find(|(s, _, _)| *s == self)
            .map_or("error", |(_, name, _)| name)
    }

    /// Whether `GET /v1/lookup` may return a node in this state (Ironic's `restrict_lookup`).
    /// Fast-track adds the states a powered-on, idle ramdisk may be in.
    pub fn lookup_allowed(self, fast_track: bool) -> bool {
        match self {
            S::Deploying
            | S::DeployWait
            | S::Cleaning
            | S::CleanWait
            | S::Inspecting
            | S::InspectWait
            | S::Rescuing
            | S::RescueWait
            | S::ServiceWait => true,
            S::Enroll | S::Manageable | S::Available | S::Servicing | S::ServiceHold => fast_track,
            _ => false,
        }
    }

    /// Whether a heartbeat in this state is processed (recorded, and acted on in the `*wait`
    /// states). Ironic logs and ignores heartbeats in any other state.
    pub fn heartbeat_allowed(self) -> bool {
        matches!(
            self,
            S::DeployWait
                | S::CleanWait
                | S::RescueWait
                | S::ServiceWait
                | S::InspectWait
                | S::Enroll
                | S::Manageable
                | S::Available
                | S::Cleaning
                | S::Deploying
                | S::Rescuing
                | S::DeployHold
                | S::CleanHold
                | S::Servicing
                | S::ServiceHold
        )
    }
}

impl fmt::Display for ProvisionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProvisionState {
    type Err = UnknownState;

    /// Accepts the wire name (`wait call-back`) or Ironic's constant name (`DEPLOYWAIT`),
    /// case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        TABLE
            .iter()
            .find(|(_, name, constant)| {
                name.eq_ignore_ascii_case(wanted) || constant.eq_ignore_ascii_case(wanted)
            })
            .map(|(state, _, _)| *state)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in ProvisionState::all() {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            let back: ProvisionState = serde_json::from_str(&json).unwrap();
            assert_eq!(back, state);
            assert_eq!(state.as_str().parse::<ProvisionState>().unwrap(), state);
        }
        assert_eq!(
            "DEPLOYWAIT".parse::<ProvisionState>().unwrap(),
            ProvisionState::DeployWait
        );
        assert!("nope".parse::<ProvisionState>().is_err());
    }

    #[test]
    fn lookup_states() {
        assert!(ProvisionState::DeployWait.lookup_allowed(false));
        assert!(!ProvisionState::Manageable.lookup_allowed(false));
        assert!(ProvisionState::Manageable.lookup_allowed(true));
        assert!(!ProvisionState::Active.lookup_allowed(true));
    }
}
