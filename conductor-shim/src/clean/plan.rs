//! Which clean steps run and in which order, as Ironic decides it (`conductor/steps.py`,
//! `AgentBaseMixin.get_clean_steps`, `AgentRAID.get_clean_steps`), and the operator's
//! `--step` syntax.
//!
//! * The agent's steps count on the interfaces Ironic backs with the agent: `deploy` and
//!   `raid` ([`AGENT_INTERFACES`]); steps the agent lists on other interfaces are not run.
//! * Priority overrides: `erase_devices` / `erase_devices_metadata` of the `deploy`
//!   interface (`[deploy]erase_devices_priority`, `erase_devices_metadata_priority`), then
//!   `interface.step` overrides (`[conductor]clean_step_priority_override`).
//! * Automated cleaning: the steps with a priority above 0, highest first; ties are broken
//!   by Ironic's interface priority ([`INTERFACE_PRIORITY`]), then by the agent's order.
//! * Manual cleaning: the operator's steps in the operator's order, each matched with the
//!   agent's step of that interface and name (an interface left out is found in the agent's
//!   list, `deploy` first); unknown steps, unexpected and missing arguments are refused.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde_json::Value;

use crate::model::{CachedSteps, JsonMap, RequestedStep, Step};
use crate::steps::step_id;

/// Ironic's `CLEANING_INTERFACE_PRIORITY`: the valid interfaces of a clean step and, for
/// steps of equal priority, which interface goes first (highest first).
pub const INTERFACE_PRIORITY: &[(&str, i64)] = &[
    ("vendor", 7),
    ("power", 6),
    ("management", 5),
    ("firmware", 4),
    ("deploy", 3),
    ("bios", 2),
    ("raid", 1),
];

/// The interfaces whose clean steps are the agent's (Ironic's `agent` deploy and RAID
/// interfaces).
pub const AGENT_INTERFACES: &[&str] = &["deploy", "raid"];

/// Step names Ironic's conductor handles itself in manual cleaning (not supported here).
pub const FLOW_STEPS: &[&str] = &["power_on", "power_off", "reboot", "hold", "wait"];

/// Priority overrides of clean steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriorityOverrides {
    /// Priority of `deploy.erase_devices` (`None`: the agent's).
    pub erase_devices: Option<i64>,
    /// Priority of `deploy.erase_devices_metadata` (`None`: the agent's).
    pub erase_devices_metadata: Option<i64>,
    /// `interface.step` → priority, applied last.
    pub steps: BTreeMap<String, i64>,
}

/// The tie-break priority of `interface` (0 for interfaces Ironic does not know).
pub fn interface_priority(interface: &str) -> i64 {
    INTERFACE_PRIORITY
        .iter()
        .find(|(name, _)| *name == interface)
        .map_or(0, |(_, p)| *p)
}

/// Every clean step of the agent interfaces with the overrides applied, in Ironic's
/// gathering order (by interface, then the agent's order).
pub fn driver_steps(cached: Option<&CachedSteps>, overrides: &PriorityOverrides) -> Vec<Step> {
    let Some(cached) = cached else {
        return Vec::new();
    };
    let mut interfaces: Vec<&str> = AGENT_INTERFACES.to_vec();
    interfaces.sort_by_key(|i| std::cmp::Reverse(interface_priority(i)));
    let mut steps = Vec::new();
    for interface in interfaces {
        for step in cached.get(interface).into_iter().flatten() {
            // A step listed under another interface than its own is not this interface's.
            if step.interface != interface {
                continue;
            }
            let mut step = step.clone();
            if interface == "deploy" {
                let by_name = match step.step.as_str() {
                    "erase_devices" => overrides.erase_devices,
                    "erase_devices_metadata" => overrides.erase_devices_metadata,
                    _ => None,
                };
                if let Some(priority) = by_name {
                    step.priority = priority;
                }
            }
            if let Some(priority) = overrides.steps.get(&step_id(&step)) {
                step.priority = *priority;
            }
            steps.push(step);
        }
    }
    steps
}

/// The steps of automated cleaning: priority above 0, highest priority first, ties by
/// interface priority (a stable sort keeps the agent's order otherwise).
pub fn automated(cached: Option<&CachedSteps>, overrides: &PriorityOverrides) -> Vec<Step> {
    let mut steps: Vec<Step> = driver_steps(cached, overrides)
        .into_iter()
        .filter(|s| s.priority > 0)
        .collect();
    steps.sort_by_key(|s| std::cmp::Reverse((s.priority, interface_priority(&s.interface))));
    steps
}

/// The requested step as Ironic prints user steps in its errors.
fn describe(requested: &RequestedStep, interface: Option<&str>) -> String {
    let mut map = JsonMap::new();
    if let Some(interface) = interface.or(requested.interface.as_deref()) {
        map.insert("interface".into(), Value::String(interface.to_string()));
    }
    map.insert("step".into(), Value::String(requested.step.clone()));
    if let Some(args) = &requested.args {
        map.insert("args".into(), Value::Object(args.clone()));
    }
    Value::Object(map).to_string()
}

/// The steps of manual cleaning: each requested step matched with the agent's step, in the
/// requested order, as `{interface, step, [args], abortable, priority}` (Ironic copies
/// `abortable` and `priority` from the driver's step). All problems are reported at once,
/// joined by `; `.
pub fn manual(
    requested: &[RequestedStep],
    cached: Option<&CachedSteps>,
    overrides: &PriorityOverrides,
) -> Result<Vec<Step>, String> {
    let offered = driver_steps(cached, overrides);
    let mut errors = Vec::new();
    let mut steps = Vec::new();
    for want in requested {
        let found = match &want.interface {
            Some(interface) => offered
                .iter()
                .find(|s| s.interface == *interface && s.step == want.step),
            None => offered
                .iter()
                .find(|s| s.interface == "deploy" && s.step == want.step)
                .or_else(|| offered.iter().find(|s| s.step == want.step)),
        };
        let Some(driver) = found else {
            let names: Vec<String> = offered.iter().map(step_id).collect();
            errors.push(format!(
                "node does not support this clean step: {} (the agent offers {})",
                describe(want, None),
                if names.is_empty() {
                    "no clean steps".to_string()
                } else {
                    names.join(", ")
                }
            ));
            continue;
        };
        let shown = describe(want, Some(&driver.interface));
        let argsinfo = driver
            .extra
            .get("argsinfo")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let args = want.args.clone().unwrap_or_default();
        let unexpected: Vec<&str> = args
            .keys()
            .filter(|k| !argsinfo.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !unexpected.is_empty() {
            errors.push(format!(
                "clean step {shown} has these unexpected arguments: {}",
                unexpected.join(", ")
            ));
        }
        let missing: Vec<String> = argsinfo
            .iter()
            .filter(|(name, info)| {
                info.get("required").and_then(Value::as_bool) == Some(true)
                    && !args.contains_key(*name)
            })
            .map(
                |(name, info)| match info.get("description").and_then(Value::as_str) {
                    Some(description) if !description.is_empty() => {
                        format!("{name} ({description})")
                    }
                    _ => name.clone(),
                },
            )
            .collect();
        if !missing.is_empty() {
            errors.push(format!(
                "clean step {shown} is missing these required arguments: {}",
                missing.join(", ")
            ));
        }
        let mut extra = JsonMap::new();
        if let Some(args) = &want.args {
            extra.insert("args".into(), Value::Object(args.clone()));
        }
        extra.insert(
            "abortable".into(),
            driver
                .extra
                .get("abortable")
                .cloned()
                .unwrap_or(Value::Bool(false)),
        );
        steps.push(Step {
            interface: driver.interface.clone(),
            step: driver.step.clone(),
            priority: driver.priority,
            extra,
        });
    }
    if errors.is_empty() {
        Ok(steps)
    } else {
        Err(errors.join("; "))
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Splits `k=v,k2=[1,2],k3="a,b"` at the commas outside brackets, braces and strings.
fn split_args(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in text.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("unbalanced brackets in step arguments {text:?}"));
        }
    }
    if in_string || depth != 0 {
        return Err(format!(
            "unterminated string or bracket in step arguments {text:?}"
        ));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// Parses the step arguments after `:`; values are JSON when they parse, else strings.
fn parse_args(text: &str) -> Result<JsonMap, String> {
    let mut args = JsonMap::new();
    for part in split_args(text)? {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("step argument {part:?} is not KEY=VALUE"))?;
        let key = key.trim();
        if !is_identifier(key) {
            return Err(format!("invalid step argument name {key:?}"));
        }
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        if args.insert(key.to_string(), value).is_some() {
            return Err(format!("step argument {key:?} is given twice"));
        }
    }
    Ok(args)
}

/// Checks the interface and name of a requested step.
fn check(interface: Option<&str>, step: &str) -> Result<(), String> {
    if let Some(interface) = interface
        && !INTERFACE_PRIORITY
            .iter()
            .any(|(name, _)| *name == interface)
    {
        let known: Vec<&str> = INTERFACE_PRIORITY.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown interface {interface:?} (one of {})",
            known.join(", ")
        ));
    }
    if !is_identifier(step) {
        return Err(format!(
            "invalid step name {step:?}: letters, digits and _ only"
        ));
    }
    if FLOW_STEPS.contains(&step) {
        return Err(format!(
            "{step} is a conductor flow step, which the shim does not run"
        ));
    }
    Ok(())
}

impl FromStr for RequestedStep {
    type Err = String;

    /// `[INTERFACE.]NAME[:KEY=VALUE,...]` (values JSON when they parse, else strings), or a
    /// JSON object `{"interface": ..., "step": ..., "args": {...}}` as Ironic's API takes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.starts_with('{') {
            let value: JsonMap =
                serde_json::from_str(text).map_err(|e| format!("step {text}: {e}"))?;
            if let Some(key) = value
                .keys()
                .find(|k| !["interface", "step", "args"].contains(&k.as_str()))
            {
                return Err(format!("step {text}: unexpected key {key:?}"));
            }
            let interface = match value.get("interface") {
                None => None,
                Some(Value::String(i)) => Some(i.clone()),
                Some(other) => return Err(format!("step interface {other} is not a string")),
            };
            let Some(Value::String(step)) = value.get("step") else {
                return Err(format!("step {text}: \"step\" (a string) is required"));
            };
            let args = match value.get("args") {
                None => None,
                Some(Value::Object(args)) => Some(args.clone()),
                Some(other) => return Err(format!("step args {other} is not an object")),
            };
            check(interface.as_deref(), step)?;
            return Ok(RequestedStep {
                interface,
                step: step.clone(),
                args,
            });
        }
        let (head, args) = match text.split_once(':') {
            Some((head, args)) => (head, Some(args)),
            None => (text, None),
        };
        let (interface, step) = match head.split_once('.') {
            Some((interface, step)) => (Some(interface.to_string()), step),
            None => (None, head),
        };
        check(interface.as_deref(), step).map_err(|e| format!("step {text:?}: {e}"))?;
        let args = match args {
            None => None,
            Some(a) if a.trim().is_empty() => {
                return Err(format!("step {text:?}: no arguments after ':'"));
            }
            Some(a) => Some(parse_args(a).map_err(|e| format!("step {text:?}: {e}"))?),
        };
        Ok(RequestedStep {
            interface,
            step: step.to_string(),
            args,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cached(steps: Vec<Step>) -> CachedSteps {
        let mut c = CachedSteps::new();
        for s in steps {
            c.entry(s.interface.clone()).or_default().push(s);
        }
        c
    }

    fn ids(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| format!("{}:{}", step_id(s), s.priority))
            .collect()
    }

    fn agent_steps() -> CachedSteps {
        cached(vec![
            Step::new("deploy", "erase_devices", 10),
            Step::new("deploy", "erase_devices_metadata", 99),
            Step::new("deploy", "erase_devices_express", 0),
            Step::new("raid", "delete_configuration", 0),
            Step::new("raid", "create_configuration", 0),
            Step::new("bios", "apply_configuration", 50),
        ])
    }

    #[test]
    fn automated_runs_enabled_steps_by_priority() {
        let plan = automated(Some(&agent_steps()), &PriorityOverrides::default());
        assert_eq!(
            ids(&plan),
            [
                "deploy.erase_devices_metadata:99",
                "deploy.erase_devices:10"
            ],
            "bios steps are not the agent's"
        );
        assert!(automated(None, &PriorityOverrides::default()).is_empty());
    }

    #[test]
    fn ties_go_by_interface_priority_then_agent_order() {
        let c = cached(vec![
            Step::new("raid", "create_configuration", 50),
            Step::new("deploy", "b_second", 50),
            Step::new("deploy", "a_third", 50),
            Step::new("raid", "delete_configuration", 60),
        ]);
        assert_eq!(
            ids(&automated(Some(&c), &PriorityOverrides::default())),
            [
                "raid.delete_configuration:60",
                "deploy.b_second:50",
                "deploy.a_third:50",
                "raid.create_configuration:50"
            ]
        );
    }

    #[test]
    fn overrides_change_and_disable_steps() {
        let overrides = PriorityOverrides {
            erase_devices: Some(0),
            erase_devices_metadata: Some(5),
            steps: BTreeMap::from([
                ("raid.delete_configuration".to_string(), 20),
                ("deploy.erase_devices_metadata".to_string(), 7),
            ]),
        };
        let plan = automated(Some(&agent_steps()), &overrides);
        assert_eq!(
            ids(&plan),
            [
                "raid.delete_configuration:20",
                "deploy.erase_devices_metadata:7"
            ]
        );
        // The name overrides only touch the deploy interface.
        let c = cached(vec![Step::new("raid", "erase_devices", 3)]);
        let only_name = PriorityOverrides {
            erase_devices: Some(0),
            ..Default::default()
        };
        assert_eq!(
            ids(&automated(Some(&c), &only_name)),
            ["raid.erase_devices:3"]
        );
    }

    #[test]
    fn manual_keeps_the_given_order_and_args() {
        let mut with_args = Step::new("deploy", "clean_uefi_nvram", 0);
        with_args.extra.insert(
            "argsinfo".into(),
            json!({"match_patterns": {"description": "patterns", "required": false}}),
        );
        with_args.extra.insert("abortable".into(), json!(true));
        let mut c = agent_steps();
        c.get_mut("deploy").unwrap().push(with_args);
        let requested: Vec<RequestedStep> = [
            "erase_devices",
            "create_configuration",
            "deploy.clean_uefi_nvram:match_patterns=[\"a\",\"b\"]",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let plan = manual(&requested, Some(&c), &PriorityOverrides::default()).unwrap();
        assert_eq!(
            ids(&plan),
            [
                "deploy.erase_devices:10",
                "raid.create_configuration:0",
                "deploy.clean_uefi_nvram:0"
            ]
        );
        assert_eq!(
            serde_json::to_value(&plan[2]).unwrap(),
            json!({"interface": "deploy", "step": "clean_uefi_nvram", "priority": 0,
                   "args": {"match_patterns": ["a", "b"]}, "abortable": true})
        );
        assert_eq!(
            serde_json::to_value(&plan[0]).unwrap(),
            json!({"interface": "deploy", "step": "erase_devices", "priority": 10,
                   "abortable": false})
        );
    }

    #[test]
    fn manual_refuses_unknown_steps_and_bad_args() {
        let c = agent_steps();
        let err = manual(
            &["deploy.frobnicate".parse().unwrap()],
            Some(&c),
            &PriorityOverrides::default(),
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "node does not support this clean step: {\"interface\":\"deploy\",\"step\":\"frobnicate\"}"
            ),
            "{err}"
        );
        assert!(err.contains("deploy.erase_devices_metadata"), "{err}");
        let err = manual(
            &["bios.apply_configuration".parse().unwrap()],
            Some(&c),
            &PriorityOverrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("does not support"), "{err}");
        let err = manual(
            &[
                "erase_devices_metadata:force=true".parse().unwrap(),
                "nope".parse().unwrap(),
            ],
            Some(&c),
            &PriorityOverrides::default(),
        )
        .unwrap_err();
        assert!(
            err.contains("has these unexpected arguments: force; node does not support"),
            "{err}"
        );
        let mut needs = Step::new("deploy", "burnin_network", 0);
        needs.extra.insert(
            "argsinfo".into(),
            json!({"partner": {"description": "the other node", "required": true}}),
        );
        let err = manual(
            &["burnin_network".parse().unwrap()],
            Some(&cached(vec![needs])),
            &PriorityOverrides::default(),
        )
        .unwrap_err();
        assert!(
            err.ends_with("is missing these required arguments: partner (the other node)"),
            "{err}"
        );
    }

    #[test]
    fn parses_step_arguments() {
        let s: RequestedStep = "erase_devices_metadata".parse().unwrap();
        assert_eq!(
            s,
            RequestedStep {
                interface: None,
                step: "erase_devices_metadata".into(),
                args: None
            }
        );
        let s: RequestedStep = "raid.create_configuration:create_root_volume=false,n=3,name=x,list=[1, 2],obj={\"a\": \"b,c\"},q=\"x,y\""
            .parse()
            .unwrap();
        assert_eq!(s.interface.as_deref(), Some("raid"));
        assert_eq!(
            serde_json::Value::Object(s.args.unwrap()),
            json!({"create_root_volume": false, "n": 3, "name": "x", "list": [1, 2],
                   "obj": {"a": "b,c"}, "q": "x,y"})
        );
        let s: RequestedStep =
            r#"{"interface": "deploy", "step": "erase_devices", "args": {"x": 1}}"#
                .parse()
                .unwrap();
        assert_eq!(s.args.unwrap()["x"], json!(1));
        for bad in [
            "",
            "bogus.erase_devices",
            "deploy.",
            "erase devices",
            "erase_devices:",
            "erase_devices:novalue",
            "erase_devices:a=1,a=2",
            "erase_devices:=1",
            "erase_devices:a=[1,2",
            "reboot",
            r#"{"step": 3}"#,
            r#"{"step": "x", "priority": 3}"#,
            r#"{"interface": "deploy"}"#,
            "{not json",
        ] {
            assert!(bad.parse::<RequestedStep>().is_err(), "{bad:?} parsed");
        }
    }
}
