//! The deploy/clean steps the agent implements, offered under the generic manager's name
//! (as IPA offers them) through [`hardware_managers::generic::backend::StepBackend`].

use std::sync::{OnceLock, Weak};

use hardware_managers::generic::backend::StepBackend;
use hardware_managers::{HardwareError, HardwareResult, Step, StepContext, StepKind};
use serde_json::{Map, Value, json};

use super::inject;
use super::prepare::prepare_image;
use crate::clean;
use crate::context::AgentContext;
use crate::image::info::validate_image_info;

/// The agent's own steps. Bound to the agent context once it exists.
#[derive(Debug, Default)]
pub struct AgentSteps {
    ctx: OnceLock<Weak<AgentContext>>,
}

impl AgentSteps {
    /// Unbound; call [`AgentSteps::bind`] once the context is built.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds the steps to the agent context.
    pub fn bind(&self, ctx: &std::sync::Arc<AgentContext>) {
        let _ = self.ctx.set(std::sync::Arc::downgrade(ctx));
    }

    fn context(&self) -> HardwareResult<std::sync::Arc<AgentContext>> {
        self.ctx.get().and_then(Weak::upgrade).ok_or_else(|| {
            HardwareError::Configuration("agent steps used before start-up finished".into())
        })
    }
}

fn step(name: &str, priority: i64, abortable: bool) -> Step {
    let mut s = Step::new(name, "deploy", priority);
    if abortable {
        s.abortable = Some(true);
    }
    s
}

impl StepBackend for AgentSteps {
    fn install_device(
        &self,
        node: Option<&hardware_managers::Node>,
    ) -> HardwareResult<Option<String>> {
        Ok(self
            .ctx
            .get()
            .and_then(Weak::upgrade)
            .and_then(|ctx| clean::raid::install_device(&ctx, node)))
    }

    fn steps(&self, kind: StepKind) -> Vec<Step> {
        let mut own = match kind {
            StepKind::Deploy => vec![step("write_image", 0, false), self.inject_files_step()],
            StepKind::Clean => Vec::new(),
            StepKind::Service => vec![step("write_image", 0, false), self.inject_files_step()],
        };
        // The cleaning modules add theirs; a module's entry replaces a built-in one of the same name.
        for s in clean::erase::steps(kind)
            .into_iter()
            .chain(clean::burnin::steps(kind))
            .chain(clean::raid::steps(kind))
            .chain(clean::pstore::steps(kind))
            .chain(clean::nvram::steps(kind))
        {
            match own.iter_mut().find(|o| o.step == s.step) {
                Some(o) => *o = s,
                None => own.push(s),
            }
        }
        own
    }

    fn execute(
        &self,
        name: &str,
        step_ctx: &StepContext,
        args: &Map<String, Value>,
    ) -> HardwareResult<Value> {
        match name {
            "write_image" => self.write_image(args),
            "inject_files" => inject::run(self.context()?.as_ref(), step_ctx, args),
            other => {
                let ctx = self.context()?;
                let ctx = ctx.as_ref();
                for run in [
                    clean::erase::execute,
                    clean::burnin::execute,
                    clean::raid::execute,
                    clean::pstore::execute,
                    clean::nvram::execute,
                ] {
                    match run(ctx, other, step_ctx, args) {
                        Err(e) if e.is_incompatible() => continue,
                        done => return done,
                    }
                }
                Err(HardwareError::incompatible(other))
            }
        }
    }
}

impl AgentSteps {
    /// `inject_files`, with the priority from `ipa-inject-files-priority` (0 until the agent
    /// context is bound) and IPA's argsinfo.
    fn inject_files_step(&self) -> Step {
        let priority = self
            .ctx
            .get()
            .and_then(Weak::upgrade)
            .map(|c| inject::priority(&c.config.kernel))
            .unwrap_or(0);
        let mut s = step("inject_files", priority, false);
        s.argsinfo = Some(inject::argsinfo());
        s
    }

    /// `write_image`: IPA runs `standby.prepare_image` and returns its result.
    fn write_image(&self, args: &Map<String, Value>) -> HardwareResult<Value> {
        let ctx = self.context()?;
        let md5 = super::prepare::md5_enabled(&ctx);
        let raw_info = args.get("image_info").cloned().unwrap_or(Value::Null);
        let info = validate_image_info(&raw_info, md5).map_err(HardwareError::InvalidArgs)?;
        let configdrive = args
            .get("configdrive")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| info.configdrive.clone());
        let text = prepare_image(&ctx, &info, configdrive.as_deref())
            .map_err(|e| HardwareError::Ipa(e.to_ipa_error()))?;
        Ok(json!({ "result": format!("prepare_image: {text}") }))
    }
}
