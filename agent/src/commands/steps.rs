//! `clean.*`, `deploy.*`, `service.*`: listing and executing steps through the chain.

use std::collections::BTreeMap;

use hardware_managers::{HardwareError, IpaClass, IpaError, Node, Port, StepContext, StepKind};
use serde_json::{Map, Value, json};

use super::registry::{Mode, Params, Registry};
use crate::context::AgentContext;
use crate::record::result::{CommandError, CommandOutput};

/// Registers `get_<kind>_steps` and `execute_<kind>_step` for clean, deploy and service.
pub fn register(r: &mut Registry) {
    for kind in [StepKind::Clean, StepKind::Deploy, StepKind::Service] {
        let ext = kind.as_str();
        r.register(
            ext,
            &format!("get_{ext}_steps"),
            Mode::Sync,
            Some(validate_node_ports),
            move |ctx, p| get_steps(ctx, kind, p),
        );
        r.register(
            ext,
            &format!("execute_{ext}_step"),
            Mode::Async,
            Some(validate_node_ports),
            move |ctx, p| execute_step(ctx, kind, p),
        );
    }
}

/// `node` must be an object and `ports` a list when given.
fn validate_node_ports(_: &AgentContext, p: &Params) -> Result<(), CommandError> {
    check_node_ports(p)
}

fn check_node_ports(p: &Params) -> Result<(), CommandError> {
    match p.get("node") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(_) => return Err(CommandError::invalid_params("'node' must be an object")),
    }
    match p.get("ports") {
        None | Some(Value::Null) | Some(Value::Array(_)) => Ok(()),
        Some(_) => Err(CommandError::invalid_params("'ports' must be a list")),
    }
}

fn step_context(
    ctx: &AgentContext,
    kind: StepKind,
    p: &Params,
) -> Result<StepContext, CommandError> {
    let node = match p.get("node") {
        Some(v @ Value::Object(_)) => serde_json::from_value::<Node>(v.clone())
            .map_err(|e| CommandError::invalid_params(format!("node: {e}")))?,
        _ => ctx.node().unwrap_or_default(),
    };
    let ports = match p.get("ports") {
        Some(v @ Value::Array(_)) => serde_json::from_value::<Vec<Port>>(v.clone())
            .map_err(|e| CommandError::invalid_params(format!("ports: {e}")))?,
        _ => Vec::new(),
    };
    if p.get("node").is_some_and(Value::is_object) {
        ctx.set_node(node.clone());
    }
    Ok(StepContext {
        kind: Some(kind),
        node,
        ports,
    })
}

fn get_steps(ctx: &AgentContext, kind: StepKind, p: Params) -> Result<CommandOutput, CommandError> {
    let sctx = step_context(ctx, kind, &p)?;
    let steps = ctx
        .chain
        .steps(kind, &sctx)
        .map_err(|e| CommandError::from_hardware(&e))?;
    let name = kind.as_str();
    Ok(CommandOutput::Json(json!({
        format!("{name}_steps"): steps,
        "hardware_manager_version": ctx.chain.versions(),
    })))
}

/// Python's repr of a `{str: str}` dict, as IPA puts into VersionMismatch details.
fn py_repr(map: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("'{}': '{}'", k.replace('\'', "\\'"), v.replace('\'', "\\'")))
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn check_versions(ctx: &AgentContext, provided: Option<&Value>) -> Result<(), CommandError> {
    let Some(provided) = provided.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let current = ctx.chain.versions();
    let theirs: BTreeMap<String, String> = match provided {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    if theirs != current {
        return Err(CommandError::version_mismatch(format!(
            "Current versions: {}, versions used by ironic: {}",
            py_repr(&current),
            py_repr(&theirs)
        )));
    }
    Ok(())
}

/// The class IPA wraps a step's non-REST exception into.
fn failure(kind: StepKind) -> IpaClass {
    match kind {
        StepKind::Clean => IpaClass::CleaningError,
        StepKind::Deploy => IpaClass::DeploymentError,
        StepKind::Service => IpaClass::ServicingError,
    }
}

/// A failed step as IPA's `execute_*_step` reports it: a `RESTError` is re-raised unchanged
/// (class, code, message and details); any other exception becomes the step kind's error with
/// `Unexpected exception performing <kind> step <step>. <PythonClass>: <text>`.
fn step_error(kind: StepKind, step_name: &str, e: &HardwareError) -> IpaError {
    match e.py_exception() {
        Some(exception) => IpaError::new(
            failure(kind),
            format!(
                "Unexpected exception performing {} step {step_name}. {exception}: {e}",
                kind.as_str()
            ),
        ),
        None => e.to_ipa_error(),
    }
}

fn execute_step(
    ctx: &AgentContext,
    kind: StepKind,
    p: Params,
) -> Result<CommandOutput, CommandError> {
    let name = kind.as_str();
    let step = match p.get("step") {
        Some(Value::Object(s)) => s.clone(),
        _ => {
            return Err(CommandError::execution(format!(
                "A {name} step must be given as an object"
            )));
        }
    };
    let Some(step_name) = step.get("step").and_then(Value::as_str).map(String::from) else {
        return Err(CommandError::execution(format!(
            "Malformed {name} step: no 'step' key in {}",
            Value::Object(step)
        )));
    };
    let sctx = step_context(ctx, kind, &p)?;
    check_versions(ctx, p.get(&format!("{name}_version")))?;

    let reserved = ["step", "node", "ports"];
    let mut args: Map<String, Value> = p
        .iter()
        .filter(|(k, _)| !reserved.contains(&k.as_str()) && **k != format!("{name}_version"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(Value::Object(step_args)) = step.get("args") {
        for (k, v) in step_args {
            args.insert(k.clone(), v.clone());
        }
    }
    tracing::info!(step = %step_name, kind = name, "executing step");
    let result = ctx
        .chain
        .execute_step(&step_name, &sctx, &args)
        .map_err(|e| CommandError::from(step_error(kind, &step_name, &e)))?;
    Ok(CommandOutput::Json(json!({
        format!("{name}_result"): result,
        format!("{name}_step"): Value::Object(step),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_errors_keep_rest_classes_and_wrap_the_others() {
        let timeout = HardwareError::ipa(IpaClass::ImageDownloadTimeoutError, "slow");
        let e = step_error(StepKind::Deploy, "write_image", &timeout);
        assert_eq!(
            (e.name(), e.code(), e.message(), e.details()),
            (
                "ImageDownloadTimeoutError",
                408,
                "Image download timeout",
                "slow"
            )
        );
        let io = HardwareError::io("reading /dev/sda", std::io::Error::other("EIO"));
        let e = step_error(StepKind::Clean, "erase_devices", &io);
        assert_eq!((e.name(), e.code()), ("CleaningError", 500));
        assert_eq!(
            e.details(),
            "Unexpected exception performing clean step erase_devices. OSError: \
             reading /dev/sda: EIO"
        );
        let e = step_error(
            StepKind::Service,
            "x",
            &HardwareError::MethodNotFound("x".into()),
        );
        assert_eq!(e.name(), "HardwareManagerMethodNotFound");
    }

    #[test]
    fn python_repr_matches_ipa_details() {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), "1".to_string());
        assert_eq!(py_repr(&m), "{'a': '1'}");
        assert_eq!(py_repr(&BTreeMap::new()), "{}");
    }

    #[test]
    fn node_and_ports_types_are_checked() {
        let mut p = Params::new();
        p.insert("node".into(), json!("x"));
        assert!(check_node_ports(&p).is_err());
        let mut p = Params::new();
        p.insert("ports".into(), json!({}));
        assert!(check_node_ports(&p).is_err());
        let mut p = Params::new();
        p.insert("node".into(), json!({"uuid": "u"}));
        p.insert("ports".into(), json!([]));
        assert!(check_node_ports(&p).is_ok());
    }
}
