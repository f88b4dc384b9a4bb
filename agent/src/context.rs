//! The agent's shared state: configuration, the hardware chain and what lookup taught us.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hardware_managers::{Chain, Node};
use tokio::sync::Notify;

use crate::conductor::lookup::LookupConfig;
use crate::config::Config;
use crate::image::Progress;
use crate::logbuf::LogBuffer;
use crate::power::Power;

/// State shared by the API, the executor, the commands and the heartbeat loop.
pub struct AgentContext {
    /// Effective configuration.
    pub config: Config,
    /// The hardware-manager chain.
    pub chain: Chain,
    /// How power actions are carried out.
    pub power: Arc<dyn Power>,
    /// How `system.lockdown` takes the network interfaces down (from `config.network`).
    pub network: Arc<dyn crate::network::Network>,
    /// Set by `rescue.finalize_rescue` / `system.lockdown`: the API and heartbeats stop.
    pub stop: crate::stop::StopSignal,
    /// Set on SIGTERM/SIGINT: the running command's download stops and it fails cleanly.
    pub shutdown: crate::shutdown::Shutdown,
    /// In-memory copy of the agent's own log.
    pub logs: LogBuffer,
    /// Process start, seconds since the epoch (`/v1/status.started_at`).
    pub started_at: f64,
    /// Wakes the heartbeat loop after an async command finished.
    pub heartbeat_now: Notify,
    token: RwLock<Option<String>>,
    node: RwLock<Option<Node>>,
    lookup_config: RwLock<Option<LookupConfig>>,
    progress: RwLock<Option<Arc<Progress>>>,
    /// What the last deploy left (partition UUIDs).
    pub deploy: crate::deploy::DeployState,
    /// The software RAID this agent created (its root volume).
    pub raid: crate::clean::raid::RaidState,
    /// Recent commands, for the log bundle.
    pub history: crate::commands::history::CommandHistory,
}

impl std::fmt::Debug for AgentContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("AgentContext")
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

impl AgentContext {
    /// A context holding the pre-generated token from the configuration, if any.
    pub fn new(config: Config, chain: Chain, power: Arc<dyn Power>, logs: LogBuffer) -> Self {
        let started_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let token = config.agent_token.clone();
        let network = crate::network::for_mode(&config.network);
        AgentContext {
            config,
            chain,
            power,
            network,
            stop: crate::stop::StopSignal::default(),
            shutdown: crate::shutdown::Shutdown::default(),
            logs,
            started_at,
            heartbeat_now: Notify::new(),
            token: RwLock::new(token),
            node: RwLock::new(None),
            lookup_config: RwLock::new(None),
            progress: RwLock::new(None),
            deploy: crate::deploy::DeployState::default(),
            raid: crate::clean::raid::RaidState::default(),
            history: Default::default(),
        }
    }

    /// The agent token currently held.
    pub fn token(&self) -> Option<String> {
        self.token.read().map(|t| t.clone()).unwrap_or(None)
    }

    /// Adopts `token` (from lookup).
    pub fn set_token(&self, token: String) {
        if let Ok(mut t) = self.token.write() {
            *t = Some(token);
        }
    }

    /// The node cached from lookup or the latest command.
    pub fn node(&self) -> Option<Node> {
        self.node.read().map(|n| n.clone()).unwrap_or(None)
    }

    /// Caches `node`.
    pub fn set_node(&self, node: Node) {
        if let Ok(mut n) = self.node.write() {
            *n = Some(node);
        }
    }

    /// The `config` part of the lookup response, once looked up.
    pub fn lookup_config(&self) -> Option<LookupConfig> {
        self.lookup_config.read().map(|c| c.clone()).unwrap_or(None)
    }

    /// Stores the lookup `config`.
    pub fn set_lookup_config(&self, config: LookupConfig) {
        if let Ok(mut c) = self.lookup_config.write() {
            *c = Some(config);
        }
    }

    /// Whether the BMC fields must be left out of the inventory (`agent_skip_bmc_detect`).
    pub fn skip_bmc_detect(&self) -> bool {
        self.lookup_config()
            .map(|c| c.agent_skip_bmc_detect)
            .unwrap_or(false)
    }

    /// Starts progress reporting for the running command (one command runs at a time).
    pub fn start_progress(&self) -> Arc<Progress> {
        let p = Arc::new(Progress::new());
        if let Ok(mut slot) = self.progress.write() {
            *slot = Some(p.clone());
        }
        p
    }

    /// Ends progress reporting.
    pub fn clear_progress(&self) {
        if let Ok(mut slot) = self.progress.write() {
            *slot = None;
        }
    }

    /// The running command's progress, if it reports any.
    pub fn progress(&self) -> Option<Arc<Progress>> {
        self.progress.read().map(|p| p.clone()).unwrap_or(None)
    }

    /// Asks the heartbeat loop for an early heartbeat (after an async command finished).
    pub fn force_heartbeat(&self) {
        self.heartbeat_now.notify_one();
    }
}
