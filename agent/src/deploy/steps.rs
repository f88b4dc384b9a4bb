//! The deploy/clean steps the agent implements, offered under the generic manager's name
//! (as IPA offers them) through [`hardware_managers::generic::backend::StepBackend`].

use std::sync::Arc;

use hardware_managers::generic::backend::StepBackend;
use hardware_managers::{HardwareError, HardwareResult, Step, StepContext, StepKind};
use serde_json::{Map, Value, json};

use super::inject;
use super::prepare::{DeployError, Deployer};
use crate::clean;
use crate::image::info::validate_image_info;
use crate::state::RaidState;

/// The agent's own steps, with the handles they work with: the deployer (devices, settings,
/// node, progress, deploy state) and the software-RAID state.
#[derive(Debug, Default)]
pub struct AgentSteps {
    deploy: Deployer,
    raid: Arc<RaidState>,
}

impl AgentSteps {
    /// Steps with no hardware behind them: they are listed (with default priorities), but
    /// running one that needs devices fails. For tests.
    pub fn new() -> Self {
        Self::default()
    }

    /// The steps working through `deploy` and `raid`.
    pub fn with(deploy: Deployer, raid: Arc<RaidState>) -> Self {
        AgentSteps { deploy, raid }
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
        Ok(clean::raid::install_device(&self.raid, node))
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
            "inject_files" => self.inject_files(step_ctx, args),
            other => {
                let devices = &self.deploy.devices;
                let runs: [&dyn Fn() -> HardwareResult<Value>; 5] = [
                    &|| clean::erase::execute(devices, other, step_ctx, args),
                    &|| clean::burnin::execute(devices, other, step_ctx, args),
                    &|| clean::raid::execute(devices, &self.raid, other, step_ctx, args),
                    &|| clean::pstore::execute(other, step_ctx, args),
                    &|| clean::nvram::execute(other, step_ctx, args),
                ];
                for run in runs {
                    match run() {
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
    /// `inject_files`, with the priority from `ipa-inject-files-priority` and IPA's argsinfo.
    fn inject_files_step(&self) -> Step {
        let priority = inject::priority(self.deploy.settings.kernel());
        let mut s = step("inject_files", priority, false);
        s.argsinfo = Some(inject::argsinfo());
        s
    }

    /// `inject_files`: node and ports from the step context, the install device from the
    /// hardware chain, TLS and retry settings from the deploy settings.
    fn inject_files(
        &self,
        step_ctx: &StepContext,
        args: &Map<String, Value>,
    ) -> HardwareResult<Value> {
        let opts = self.deploy.settings.download_options();
        let download = inject::DownloadSettings {
            insecure: opts.insecure,
            cafile: opts.cafile.clone(),
            tls_min: opts.tls_min_version.clone(),
            connect_timeout: opts.connection_timeout.min(inject::DOWNLOAD_TIMEOUT),
            timeout: inject::DOWNLOAD_TIMEOUT,
            retries: opts.retries,
            retry_interval: opts.retry_interval,
            max_bytes: inject::MAX_CONTENT_BYTES,
            shutdown: opts.shutdown.clone(),
        };
        let root_device = || self.deploy.install_device().map_err(hardware_error);
        let env = inject::Environment {
            root_device: &root_device,
            guard: self.deploy.devices.guard(),
            download,
        };
        inject::inject_files(&step_ctx.node, &step_ctx.ports, args, &env)
    }

    /// `write_image`: IPA runs `standby.prepare_image` and returns its result.
    fn write_image(&self, args: &Map<String, Value>) -> HardwareResult<Value> {
        let md5 = self.deploy.settings.md5_enabled();
        let raw_info = args.get("image_info").cloned().unwrap_or(Value::Null);
        let info = validate_image_info(&raw_info, md5).map_err(HardwareError::InvalidArgs)?;
        let configdrive = args
            .get("configdrive")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| info.configdrive.clone());
        let text = self
            .deploy
            .prepare_image(&info, configdrive.as_deref())
            .map_err(|e| HardwareError::Ipa(e.to_ipa_error()))?;
        Ok(json!({ "result": format!("prepare_image: {text}") }))
    }
}

/// A deploy failure as a step failure: the chain's own errors as they are, the rest with their
/// IPA class.
fn hardware_error(e: DeployError) -> HardwareError {
    match e {
        DeployError::Hardware(h) => h,
        other => HardwareError::Ipa(other.to_ipa_error()),
    }
}
