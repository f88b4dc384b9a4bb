//! The agent's shared state: configuration, the hardware chain and what lookup taught us.
//!
//! The context is what the commands, the API and the conductor loops work with. It holds the
//! same state handles ([`AgentState`]) the agent's steps were built with, and imports nothing
//! above the state it holds: the steps, the deploy and the cleaning code never see it.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hardware_managers::{Chain, Node};
use tokio::sync::Notify;

use crate::config::Config;
use crate::config::lookup::LookupConfig;
use crate::devices::Devices;
use crate::image::Progress;
use crate::logbuf::LogBuffer;
use crate::power::Power;
use crate::state::AgentState;

/// State shared by the API, the executor, the commands and the heartbeat loop.
pub struct AgentContext {
    /// Effective configuration.
    pub config: Config,
    /// The hardware-manager chain.
    pub chain: Arc<Chain>,
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
    /// The node, the lookup `config`, progress, deploy and RAID state (shared with the steps).
    pub state: AgentState,
    /// Recent commands, for the log bundle.
    pub history: crate::record::history::CommandHistory,
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
    /// A context holding the pre-generated token from the configuration, if any, with fresh
    /// state.
    pub fn new(
        config: Config,
        chain: impl Into<Arc<Chain>>,
        power: Arc<dyn Power>,
        logs: LogBuffer,
    ) -> Self {
        Self::with_state(config, chain, power, logs, AgentState::default())
    }

    /// A context over `state`, the handles the chain's steps were built with.
    pub fn with_state(
        config: Config,
        chain: impl Into<Arc<Chain>>,
        power: Arc<dyn Power>,
        logs: LogBuffer,
        state: AgentState,
    ) -> Self {
        let started_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let token = config.agent_token.clone();
        let network = crate::network::for_mode(&config.network);
        AgentContext {
            config,
            chain: chain.into(),
            power,
            network,
            stop: crate::stop::StopSignal::default(),
            shutdown: state.shutdown.clone(),
            logs,
            started_at,
            heartbeat_now: Notify::new(),
            token: RwLock::new(token),
            state,
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
        self.state.node.get()
    }

    /// Caches `node`.
    pub fn set_node(&self, node: Node) {
        self.state.node.set(node);
    }

    /// The `config` part of the lookup response, once looked up.
    pub fn lookup_config(&self) -> Option<LookupConfig> {
        self.state.lookup.get()
    }

    /// Stores the lookup `config`.
    pub fn set_lookup_config(&self, config: LookupConfig) {
        self.state.lookup.set(config);
    }

    /// Whether the BMC fields must be left out of the inventory (`agent_skip_bmc_detect`).
    pub fn skip_bmc_detect(&self) -> bool {
        self.lookup_config()
            .map(|c| c.agent_skip_bmc_detect)
            .unwrap_or(false)
    }

    /// Starts progress reporting for the running command (one command runs at a time).
    pub fn start_progress(&self) -> Arc<Progress> {
        self.state.progress.start()
    }

    /// Ends progress reporting.
    pub fn clear_progress(&self) {
        self.state.progress.clear();
    }

    /// The running command's progress, if it reports any.
    pub fn progress(&self) -> Option<Arc<Progress>> {
        self.state.progress.get()
    }

    /// The block devices of this agent's chain, writable within `--allow-device`.
    pub fn devices(&self) -> Devices {
        Devices::new(
            Arc::downgrade(&self.chain),
            self.config.allow_devices.clone(),
        )
    }

    /// Asks the heartbeat loop for an early heartbeat (after an async command finished).
    pub fn force_heartbeat(&self) {
        self.heartbeat_now.notify_one();
    }
}
