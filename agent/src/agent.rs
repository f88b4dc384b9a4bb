//! The agent's life cycle: managers → inspection → lookup → API + heartbeats, until a rescue
//! or a lockdown stops them, or a signal ends the process (failing the running command first).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hardware_managers::generic::{GenericConfig, GenericHardwareManager};
use hardware_managers::vendor::cna::{CnaConfig, IntelCnaHardwareManager};
use hardware_managers::vendor::mlnx::MellanoxDeviceHardwareManager;
use hardware_managers::{Chain, HardwareManager};
use tracing::{error, info, warn};

use crate::api::{self, ApiState};
use crate::commands::{self, Executor};
use crate::conductor::client::AGENT_VERIFY_CA_VERSION;
use crate::conductor::lookup::LookupResponse;
use crate::conductor::{IronicClient, advertise, heartbeat, inspection, lookup};
use crate::config::{Config, PowerMode};
use crate::context::AgentContext;
use crate::deploy::Deployer;
use crate::deploy::steps::AgentSteps;
use crate::devices::Devices;
use crate::logbuf::LogBuffer;
use crate::power::{Power, RecordingPower, SystemPower};
use crate::shutdown::Shutdown;
use crate::state::AgentState;
use crate::stop::StopReason;
use crate::tls;

/// How long to wait for a NIC with a MAC before inspecting/looking up anyway.
const NIC_WAIT: Duration = Duration::from_secs(60);

/// Builds the hardware-manager chain: the generic manager, offering the agent's own steps
/// (working on this chain's devices and on `state`), plus every plug-in.
pub fn build_chain(config: &Config, state: &AgentState) -> anyhow::Result<Arc<Chain>> {
    let plugins =
        hardware_managers::plugin::discover(&config.hardware_managers_dir).with_context(|| {
            format!(
                "loading plug-in managers from {}",
                config.hardware_managers_dir.display()
            )
        })?;
    let chain = Chain::new_cyclic(|chain| {
        let devices = Devices::new(chain.clone(), config.allow_devices.clone());
        let steps = AgentSteps::with(Deployer::new(devices, config, state), state.raid.clone());
        let generic = GenericHardwareManager::new(GenericConfig {
            bootif: config.bootif.clone(),
            allowed_devices: config.allow_devices.clone(),
            step_backend: Some(Arc::new(steps)),
            collect_lldp: config.collect_lldp,
            lldp_timeout: config.lldp_timeout,
            ..GenericConfig::default()
        });
        let mut managers: Vec<Arc<dyn HardwareManager>> = vec![Arc::new(generic)];
        managers.extend(vendor_managers(config));
        managers.extend(plugins);
        managers
    })?;
    Ok(chain)
}

/// IPA's in-tree vendor managers (each joins the chain only on its hardware): Mellanox
/// InfiniBand addresses, and the Intel CNA manager stopping the i40e firmware LLDP agent when
/// `ipa-collect-lldp` is on.
fn vendor_managers(config: &Config) -> Vec<Arc<dyn HardwareManager>> {
    vec![
        Arc::new(MellanoxDeviceHardwareManager::new("/")),
        Arc::new(IntelCnaHardwareManager::new(CnaConfig {
            root: "/".into(),
            collect_lldp: config.collect_lldp,
            runner: None,
        })),
    ]
}

fn power_for(mode: &PowerMode) -> Arc<dyn Power> {
    match mode {
        PowerMode::System => Arc::new(SystemPower),
        PowerMode::Record(path) => Arc::new(RecordingPower::new(path)),
    }
}

/// Applies the lookup answer: the token, the node, the configuration.
/// Returns `false` when the agent must not serve (token handed out already and none held).
fn process_lookup(ctx: &AgentContext, response: &LookupResponse) -> bool {
    match response.config.agent_token.as_deref() {
        Some("******") => {
            if ctx.token().is_none() {
                error!(
                    "Ironic handed our agent token out before (\"******\") and we hold none: \
                     this agent process was restarted and can never be trusted again. Locking down: \
                     the API will not be served. Reboot the node into the ramdisk to recover."
                );
                return false;
            }
            info!("keeping the pre-supplied agent token");
        }
        Some(t) if t.len() >= 32 => {
            ctx.set_token(t.to_string());
            info!("agent token received from lookup");
        }
        Some(_) => warn!("ignoring an agent token shorter than 32 characters"),
        None => {}
    }
    ctx.set_node(response.node.clone());
    ctx.set_lookup_config(response.config.clone());
    true
}

/// Waits (bounded) until at least one NIC reports a MAC; returns the MACs.
async fn wait_for_macs(ctx: &Arc<AgentContext>) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + NIC_WAIT;
    loop {
        let c = ctx.clone();
        let macs = tokio::task::spawn_blocking(move || {
            c.chain.list_network_interfaces().map(|nics| {
                nics.into_iter()
                    .map(|n| n.mac_address)
                    .filter(|m| !m.is_empty())
                    .collect::<Vec<_>>()
            })
        })
        .await;
        match macs {
            Ok(Ok(m)) if !m.is_empty() => return m,
            Ok(Err(e)) => warn!(error = %e, "cannot list network interfaces"),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            warn!("no network interface with a MAC address after {NIC_WAIT:?}");
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// How long a shutdown waits for the running command to fail cleanly (an image download stops
/// at once and the write fails, wiping the partition-table areas; other commands may not stop).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the agent until SIGTERM or SIGINT, in whatever state it is. Then the running command,
/// if any, is asked to stop and waited for (at most [`SHUTDOWN_GRACE`]), and new commands are
/// refused.
pub async fn run(config: Config, logs: LogBuffer) -> anyhow::Result<()> {
    // Listening from the start, so that a signal ends the agent in every state.
    let signal = termination()?;
    let shutdown = Shutdown::default();
    let result = tokio::select! {
        r = serve(config, logs, shutdown.clone()) => r,
        name = signal => {
            info!(signal = name, "shutting down");
            Ok(())
        }
    };
    shutdown.request();
    if !shutdown.wait_idle(SHUTDOWN_GRACE).await {
        warn!(grace = ?SHUTDOWN_GRACE, "the running command did not stop in time; exiting anyway");
    }
    result
}

/// Resolves on SIGTERM or SIGINT (with the signal's name); the handlers are installed at once.
fn termination() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

/// The agent's life until a signal ends it (never returns `Ok` otherwise).
async fn serve(mut config: Config, logs: LogBuffer, shutdown: Shutdown) -> anyhow::Result<()> {
    info!(version = crate::AGENT_VERSION, "ironic-agent starting");
    if config.api_url_mdns {
        discover_api(&mut config).await?;
    }
    sync_clock(&config).await?;
    if !config.hardware_initialization_delay.is_zero() {
        tokio::time::sleep(config.hardware_initialization_delay).await;
    }
    let chain_config = config.clone();
    let state = AgentState {
        shutdown,
        ..AgentState::default()
    };
    let chain_state = state.clone();
    let chain = tokio::task::spawn_blocking(move || build_chain(&chain_config, &chain_state))
        .await
        .context("hardware manager set-up task")??;
    info!(chain = ?chain, "hardware managers loaded");
    wait_for_disks(&config, &chain).await;
    let power = power_for(&config.power);
    let ctx = Arc::new(AgentContext::with_state(config, chain, power, logs, state));
    let cfg = &ctx.config;

    if crate::commands::rescue::is_rescued(&cfg.rescue_root) {
        // As IPA: a rescued node's agent never serves again (a restart must not reopen the API
        // to the tenant's network), and it does not heartbeat.
        info!(
            marker = %crate::commands::rescue::marker_path(&cfg.rescue_root).display(),
            "rescue marker found: this node is rescued; not serving the API"
        );
        return std::future::pending().await;
    }

    let mut node_uuid = cfg.node_uuid.clone();
    let needs_network = !cfg.api_urls.is_empty() || !cfg.inspection_urls().is_empty();
    let macs = if needs_network {
        wait_for_macs(&ctx).await
    } else {
        Vec::new()
    };

    if !cfg.inspection_urls().is_empty() {
        match inspection::collect_with(&ctx, cfg.inspection_dhcp_all_interfaces).await {
            Ok(data) => match inspection::post(&ctx, &data).await {
                Ok(Some(uuid)) => node_uuid = Some(uuid),
                Ok(None) => warn!("inspection accepted but no node UUID returned"),
                Err(e) => error!(error = %e, "inspection failed; continuing with lookup"),
            },
            Err(e) => error!(error = %e, "inspection failed; continuing with lookup"),
        }
    }

    let client = if cfg.api_urls.is_empty() {
        info!("no ipa-api-url: no lookup and no heartbeats");
        None
    } else {
        let client = Arc::new(IronicClient::new(cfg)?);
        let response = lookup::lookup(
            &client,
            &macs,
            node_uuid.as_deref(),
            cfg.lookup_timeout,
            cfg.lookup_interval,
        )
        .await
        .context("looking up the node in Ironic")?;
        if !process_lookup(&ctx, &response) {
            // As IPA: never serve, never exit (a restart could not recover the token either).
            std::future::pending::<()>().await;
        }
        Some((client, response))
    };

    // Where the conductor calls us back.
    let advertise_host = match (&cfg.advertise_host, &client) {
        (Some(h), _) => Some(h.clone()),
        (None, Some((c, _))) => {
            let ip = match cfg.network_interface.as_deref() {
                Some(ifname) => nic_ipv4(&ctx, ifname).await,
                None => None,
            };
            let ip = match ip {
                Some(ip) => ip,
                None => {
                    advertise::find(&c.urls(), cfg.ip_lookup_attempts, cfg.ip_lookup_sleep).await?
                }
            };
            Some(ip.to_string())
        }
        (None, None) => None,
    };

    // Auto-TLS when Ironic supports agent_verify_ca.
    let mut cert = None;
    if let (Some((c, response)), Some(host)) = (&client, &advertise_host) {
        let wants_plain = cfg.advertise_protocol.as_deref() == Some("http");
        if cfg.auto_tls && !wants_plain && c.api_version().await >= AGENT_VERIFY_CA_VERSION {
            let ip: IpAddr = host.trim_matches(['[', ']']).parse().with_context(|| {
                format!("auto-TLS needs an IP address to advertise, got `{host}`")
            })?;
            let hostname = ctx
                .chain
                .dispatch("get_hostname", |m| m.get_hostname())
                .unwrap_or_default();
            let generated = tls::generate_cert(ip, &hostname)?;
            // TLS 1.3 only, unless the conductor asks for 1.2.
            let min = tls::server_min_version(response.config.tls_min_version.as_deref());
            let server = tls::server_config(&generated, min)?;
            info!(%ip, tls_min = %min, "auto-TLS certificate generated");
            cert = Some((generated, server));
        }
    }
    let scheme = if cert.is_some() { "https" } else { "http" };

    let listener = api::server::bind(cfg.listen, cfg.listen_explicit)
        .await
        .with_context(|| format!("binding the API to {}", cfg.listen))?;
    let bound = listener.local_addr()?;
    let advertise_port = cfg.advertise_port.unwrap_or(bound.port());
    println!("ironic-agent listening on {scheme}://{bound}");
    info!(address = %bound, scheme, "serving the agent API");

    let executor = Arc::new(Executor::new(commands::registry(), ctx.clone()));
    let app = api::router(ApiState { executor, scheme });
    let server = tokio::spawn(api::server::serve(
        listener,
        app,
        cert.as_ref().map(|(_, s)| s.clone()),
        ctx.stop.subscribe(),
    ));

    let heartbeats = match (client, advertise_host) {
        (Some((client, response)), Some(host)) => {
            let Some(uuid) = response.node.uuid.clone() else {
                bail!("lookup returned no node UUID")
            };
            let callback = advertise::callback_url(scheme, &host, advertise_port);
            info!(node = %uuid, callback_url = %callback, "starting heartbeats");
            Some(tokio::spawn(heartbeat::run(
                ctx.clone(),
                client,
                uuid,
                callback,
                cert.map(|(c, _)| c.pem),
                response.config.heartbeat_timeout,
            )))
        }
        _ => None,
    };

    let reason = ctx.stop.wait().await;
    // The server returns once the command that stopped it delivered its response.
    if let Err(e) = server.await {
        warn!(error = %e, "API server task ended abnormally");
    }
    if let Some(h) = heartbeats {
        h.abort();
    }
    after_stop(&ctx, reason).await;
    // As IPA: the process stays (a restarted agent could never get its token back), until a
    // signal ends it.
    std::future::pending().await
}

/// How long the NICs stay up after the API closed, for the last response to leave the machine.
const LOCKDOWN_SETTLE: Duration = Duration::from_secs(1);

/// What follows the API's stop: nothing more for a rescue (the network stays for the rescue
/// user); for a lockdown every network interface but loopback goes down. Never powers off.
async fn after_stop(ctx: &Arc<AgentContext>, reason: StopReason) {
    match reason {
        StopReason::Rescue => info!(
            "rescue finalized: API and heartbeats stopped; the rescue user takes over \
             (the process stays alive, serving nothing)"
        ),
        StopReason::Lockdown => {
            tokio::time::sleep(LOCKDOWN_SETTLE).await;
            let c = ctx.clone();
            match tokio::task::spawn_blocking(move || c.network.lockdown()).await {
                Ok(Ok(nics)) => info!(
                    interfaces = ?nics,
                    "system locked down: API closed, heartbeats stopped, network interfaces down"
                ),
                Ok(Err(e)) => error!(error = %e, "lockdown: the network interfaces stay up"),
                Err(e) => error!(error = %e, "lockdown task failed"),
            }
        }
    }
}

async fn nic_ipv4(ctx: &Arc<AgentContext>, ifname: &str) -> Option<IpAddr> {
    let c = ctx.clone();
    let name = ifname.to_string();
    tokio::task::spawn_blocking(move || {
        c.chain.list_network_interfaces().ok().and_then(|nics| {
            nics.into_iter()
                .find(|n| n.name == name)
                .and_then(|n| n.ipv4_address)
                .and_then(|a| a.parse().ok())
        })
    })
    .await
    .ok()
    .flatten()
}

/// `ipa-api-url=mdns`: the Ironic API from mDNS (service `baremetal`), as IPA; the
/// `inspection_callback_url` and `ntp_server` the service announces (IPA's default
/// `[mdns] allowed_overrides`) override the configuration. Not finding it is fatal, as in IPA.
async fn discover_api(config: &mut Config) -> anyhow::Result<()> {
    use crate::mdns;
    info!("looking for the Ironic API over mDNS");
    let endpoint = mdns::get_endpoint(mdns::BAREMETAL, &mdns::LookupOptions::default())
        .await
        .context("ipa-api-url=mdns: no Ironic API found over mDNS")?;
    info!(url = %endpoint.url, "Ironic API found over mDNS");
    config.api_urls = vec![endpoint.url.trim_end_matches('/').to_string()];
    for o in endpoint.overrides(Some(mdns::DEFAULT_ALLOWED_OVERRIDES)) {
        info!(option = %o.option, value = %o.value, "configuration from mDNS");
        match o.option.as_str() {
            "inspection_callback_url" => {
                config.inspection_callback_urls = vec![o.value.trim_end_matches('/').to_string()];
            }
            "ntp_server" => {
                config.ntp_server = o
                    .value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
            }
            other => warn!(option = other, "mDNS option not applied"),
        }
    }
    Ok(())
}

/// `ipa-ntp-server`: sets the clock before the first TLS connection, as IPA does first thing;
/// a failure is fatal only with `fail_if_clock_not_set`.
async fn sync_clock(config: &Config) -> anyhow::Result<()> {
    if config.ntp_server.is_empty() {
        return Ok(());
    }
    let servers = config.ntp_server.clone();
    let fail = config.fail_if_clock_not_set;
    let sample = tokio::task::spawn_blocking(move || {
        // IPA syncs the hardware clock only before a reboot or power-off (standby's sync).
        let clock = crate::ntp::SystemClock {
            sync_hardware_clock: false,
        };
        crate::ntp::sync_at_startup(&servers, crate::ntp::DEFAULT_TIMEOUT, fail, &clock)
    })
    .await
    .context("clock task")?
    .context("setting the clock from ipa-ntp-server (fail_if_clock_not_set)")?;
    if let Some(s) = sample {
        info!(server = %s.server, offset_ms = s.offset_nanos / 1_000_000, "clock set from NTP");
    }
    Ok(())
}

/// IPA's `wait_for_disks`: up to `ipa-disk-wait-attempts` looks, `ipa-disk-wait-delay` apart,
/// for a root device before inspection and lookup (storage controllers may still be probing).
async fn wait_for_disks(config: &Config, chain: &Arc<Chain>) {
    let (attempts, delay) = (config.disk_wait_attempts, config.disk_wait_delay);
    let chain = chain.clone();
    let waited = tokio::task::spawn_blocking(move || {
        crate::startup::wait_for_disks(attempts, delay, || {
            chain
                .dispatch("get_os_install_device", |m| m.get_os_install_device(None))
                .is_ok()
        })
    })
    .await;
    if let Err(e) = waited {
        warn!(error = %e, "disk wait task failed");
    }
}
