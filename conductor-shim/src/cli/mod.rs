//! The command-line interface.
//!
//! ```text
//! conductor-shim [--db PATH] [--json] serve [--listen ADDR] [--heartbeat-timeout SECS]
//!                [--no-require-tls] [--fast-track true|false] [--agent-tls-min 1.2|1.3]
//!                [--deploy-callback-timeout SECS] [--check-provision-state-interval SECS]
//!                [--images DIR] [--command-wait-interval SECS] [--command-wait-attempts N]
//!                [--erase-devices-priority N] [--erase-devices-metadata-priority N]
//!                [--clean-step-priority-override IFACE.STEP=N]...
//!                [--shred-random-overwrite-iterations N]
//!                [--shred-final-overwrite-with-zeros true|false]
//!                [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
//! conductor-shim pki --out DIR --ip IP [--ip IP]... [--client]
//! conductor-shim node create [--name N] [--uuid U] [--mac MAC]... [--state STATE]
//!                [--property k=v]... [--driver-info k=v]... [--instance-info k=v]...
//!                [--disable-power-off]
//! conductor-shim node list | show NODE | delete NODE | set-state NODE STATE [--reset-agent]
//! conductor-shim node manage NODE
//! conductor-shim node provide NODE [--no-wait] [--timeout SECS]
//! conductor-shim node set NODE [--target-raid-config JSON] [--property k=v]...
//!                [--driver-info k=v]... [--instance-info k=v]... [--disable-power-off true|false]
//! conductor-shim agent NODE COMMAND [--params JSON] [--wait]
//! conductor-shim commands NODE
//! conductor-shim deploy NODE --image URL [--checksum ALGO:HEX | --checksum-url URL]
//!                [--disk-format FMT] [--image-type whole-disk|partition] [--root-mb N]
//!                [--swap-mb N] [--ephemeral-mb N] [--boot-mode bios|uefi]
//!                [--disk-label gpt|msdos] [--configdrive FILE] [--root-hint k=v]...
//!                [--no-wait] [--timeout SECS]
//! conductor-shim clean NODE --step [IFACE.]NAME[:k=v,...]... [--no-wait] [--timeout SECS]
//! conductor-shim rescue NODE --password PW [--no-wait] [--timeout SECS]
//! ```
//!
//! HTTPS: `serve --tls-cert server.crt --tls-key server.key` serves the API over TLS 1.2/1.3
//! and prints `conductor-shim listening on https://ADDR`; agents then need
//! `ipa-api-url=https://ADDR` and the CA (`--cafile ca.crt`, IPA's `[DEFAULT]cafile`, or the
//! virtual-media `ironic-tls.conf`). With `--tls-client-ca ca.crt` every client must present
//! a certificate signed by that CA (mutual TLS); others fail the handshake. `pki` writes a lab
//! CA (`ca.crt`, `ca.key`), a server certificate for the given IPs and `localhost`
//! (`server.crt`, `server.key`) and with `--client` a client certificate (`client.crt`,
//! `client.key`); it never overwrites a file.

mod agent;
mod clean;
mod deploy;
mod node;
pub mod output;
pub mod progress;
mod rescue;
mod serve;
mod tls;
mod view;

pub use tls::{PkiArgs, ServeTlsArgs};

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args, Parser, Subcommand};
use serde_json::Value;
use uuid::Uuid;

use crate::agent_client::{AgentClientOptions, DEFAULT_MAX_ATTEMPTS, TlsMinVersion};
use crate::deploy::request::{BootMode, Checksum, DiskLabel, ImageType};
use crate::model::RequestedStep;
use crate::state::ProvisionState;
use crate::store::Store;

/// `conductor-shim`: a minimal Ironic-compatible conductor for ironic-agent.
#[derive(Debug, Parser)]
#[command(name = "conductor-shim", version, about)]
pub struct Cli {
    /// SQLite database file (shared safely between `serve` and other commands).
    #[arg(
        long,
        global = true,
        env = "CONDUCTOR_SHIM_DB",
        default_value = "./conductor-shim.sqlite"
    )]
    pub db: PathBuf,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Opens the node database named by `--db`.
    fn open_store(&self) -> anyhow::Result<Store> {
        Store::open(&self.db)
            .with_context(|| format!("opening node database {}", self.db.display()))
    }
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Ironic API subset agents call (lookup, heartbeat, continue_inspection).
    Serve(ServeArgs),
    /// Manage nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Send a command to a node's agent and print its result.
    Agent(AgentArgs),
    /// List the commands a node's agent has run (GET /v1/commands/).
    Commands(CommandsArgs),
    /// Show a node's last error and fetch its agent's log bundle
    /// (`log.collect_system_logs`) into a .tar.gz file.
    Logs(LogsArgs),
    /// Deploy an image on a node through its agent (needs `serve` running for the agent's
    /// heartbeats) and follow the deploy with a progress bar.
    Deploy(Box<DeployArgs>),
    /// Manual cleaning of a manageable node: run the given clean steps through its agent
    /// (needs `serve` running) and follow them until the node is manageable again.
    Clean(CleanArgs),
    /// Rescue an active node as Ironic does: the password's SHA-512 crypt hash goes to
    /// `instance_info`, the node to `rescue wait`; the agent started on it (the rescue
    /// ramdisk) is sent `rescue.finalize_rescue` on its first heartbeat (needs `serve`).
    Rescue(RescueArgs),
    /// Write a lab CA (`ca.crt`, `ca.key`), a server certificate signed by it for the given
    /// IPs and `localhost` (`server.crt`, `server.key`) and with `--client` a client
    /// certificate (`client.crt`, `client.key`), for `serve --tls-*` and the agent's `cafile`.
    Pki(PkiArgs),
}

/// `rescue` options.
#[derive(Debug, Args)]
pub struct RescueArgs {
    /// UUID or name.
    pub node: String,
    /// The password of the `rescue` user (only its crypt hash is stored).
    #[arg(long, env = "CONDUCTOR_SHIM_RESCUE_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// How to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6385")]
    pub listen: String,
    /// `heartbeat_timeout` handed to agents at lookup (seconds).
    #[arg(long, default_value_t = 300)]
    pub heartbeat_timeout: u64,
    /// Require https callback URLs (the default, like Ironic ≥ 26).
    #[arg(long, overrides_with = "no_require_tls")]
    pub require_tls: bool,
    /// Accept plain-http callback URLs.
    #[arg(long, overrides_with = "require_tls")]
    pub no_require_tls: bool,
    /// Fast-track: allow lookups in enroll/manageable/available/servicing/service hold.
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "true|false")]
    pub fast_track: bool,
    /// Largest accepted request body in bytes.
    #[arg(long, default_value_t = crate::api::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Serve the files of this directory at `GET /images/<name>` (with Range support).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Seconds between polls of a polled agent command (install_bootloader).
    #[arg(long, default_value_t = 6.0, value_name = "SECS")]
    pub command_wait_interval: f64,
    /// Polls of a polled agent command before it times out.
    #[arg(long, default_value_t = crate::deploy::DEFAULT_COMMAND_WAIT_ATTEMPTS, value_name = "N")]
    pub command_wait_attempts: u32,
    /// Seconds between polls of a locked-down agent (nodes with `disable_power_off`) until its
    /// API is gone.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub post_deploy_get_power_state_retry_interval: f64,
    /// Polls of a locked-down agent after the first one before the lockdown fails.
    #[arg(long, default_value_t = crate::lockdown::DEFAULT_POLL_RETRIES, value_name = "N")]
    pub post_deploy_get_power_state_retries: u32,
    /// Priority of the agent's `erase_devices` clean step (0 disables it; default: the
    /// agent's).
    #[arg(long, value_name = "N")]
    pub erase_devices_priority: Option<i64>,
    /// Priority of the agent's `erase_devices_metadata` clean step (0 disables it; default:
    /// the agent's).
    #[arg(long, value_name = "N")]
    pub erase_devices_metadata_priority: Option<i64>,
    /// Priority of any clean step, `interface.step=N` (repeatable; applied last).
    #[arg(
        long = "clean-step-priority-override",
        value_name = "IFACE.STEP=N",
        value_parser = PriorityOverride::parse
    )]
    pub clean_step_priority_overrides: Vec<PriorityOverride>,
    /// Random overwrite passes of `erase_devices` when it shreds.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub shred_random_overwrite_iterations: u32,
    /// Whether `erase_devices` writes zeros after shredding.
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "true|false")]
    pub shred_final_overwrite_with_zeros: bool,
    /// Let agents install GRUB from partition images (Ironic's
    /// `[agent]enable_bios_bootloader_install`, sent at lookup; off by default).
    #[arg(long)]
    pub enable_bios_bootloader_install: bool,
    /// Seconds a deploy waits for its agent in `wait call-back` (no heartbeat) before it
    /// fails (Ironic's `[conductor]deploy_callback_timeout`; 0 disables).
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    pub deploy_callback_timeout: u64,
    /// Seconds between two checks of the callback timeout (Ironic's
    /// `[conductor]check_provision_state_interval`; 0 disables).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub check_provision_state_interval: u64,
    /// When to fetch the agent's log bundle (Ironic's `[agent]deploy_logs_collect`): after a
    /// failed deploy/clean/service step, always, or never.
    #[arg(long, value_enum, default_value_t = crate::ramdisk_logs::CollectLogs::OnFailure)]
    pub deploy_logs_collect: crate::ramdisk_logs::CollectLogs,
    /// Directory of the collected bundles (Ironic's `[agent]deploy_logs_local_path`);
    /// default: `deploy-logs` beside the database.
    #[arg(long, value_name = "DIR")]
    pub deploy_logs_local_path: Option<PathBuf>,
    /// How to reach agents.
    #[command(flatten)]
    pub agent: AgentConnArgs,
    /// HTTPS.
    #[command(flatten)]
    pub tls: ServeTlsArgs,
}

/// `deploy` options.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// UUID or name.
    pub node: String,
    /// http(s) URL of the image (e.g. `http://HOST:6385/images/disk.raw` from `serve --images`).
    #[arg(long, value_name = "URL")]
    pub image: String,
    /// Image checksum: `sha256:HEX`, `sha512:HEX`, `md5:HEX`, ... .
    #[arg(long, value_name = "ALGO:HEX", conflicts_with = "checksum_url")]
    pub checksum: Option<Checksum>,
    /// URL of a checksum file (`SHA256SUMS` style) listing the image.
    #[arg(long, value_name = "URL")]
    pub checksum_url: Option<String>,
    /// Disk format (raw, qcow2, ...); guessed from the URL's file name when absent.
    #[arg(long, value_name = "FORMAT")]
    pub disk_format: Option<String>,
    /// Whole-disk image, or a root filesystem for the agent to partition around.
    #[arg(long, value_enum, default_value_t = ImageType::WholeDisk)]
    pub image_type: ImageType,
    /// Root partition size in MiB (partition images).
    #[arg(long, value_name = "N")]
    pub root_mb: Option<u64>,
    /// Swap partition size in MiB (partition images).
    #[arg(long, value_name = "N")]
    pub swap_mb: Option<u64>,
    /// Ephemeral partition size in MiB (partition images).
    #[arg(long, value_name = "N")]
    pub ephemeral_mb: Option<u64>,
    /// Boot mode (default: uefi, as Ironic).
    #[arg(long, value_enum)]
    pub boot_mode: Option<BootMode>,
    /// Partition table of partition images in BIOS mode (UEFI always uses gpt).
    #[arg(long, value_enum)]
    pub disk_label: Option<DiskLabel>,
    /// Config drive file (an ISO 9660 `config-2` image); sent gzip+base64 like Ironic.
    #[arg(long, value_name = "FILE")]
    pub configdrive: Option<PathBuf>,
    /// Root device hint (model, vendor, serial, size, wwn, name, rotational, hctl, by_path,
    /// ...); repeatable.
    #[arg(long = "root-hint", value_name = "KEY=VALUE")]
    pub root_hints: Vec<String>,
    /// Only store the request; do not wait for the deploy.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds (the deploy itself goes on).
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub timeout: u64,
    /// How to reach the agent for progress.
    #[command(flatten)]
    pub agent: AgentConnArgs,
}

/// `clean` options.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// UUID or name.
    pub node: String,
    /// A clean step, in order (repeatable): `[INTERFACE.]NAME[:KEY=VALUE,...]` (values are
    /// JSON when they parse, else strings; without an interface the agent's step of that
    /// name is used, `deploy` first), or a JSON object `{"interface", "step", "args"}`.
    #[arg(long = "step", value_name = "[IFACE.]NAME[:K=V,...]", required = true)]
    pub steps: Vec<RequestedStep>,
    /// How to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Waiting for cleaning.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Only store the request; do not wait for cleaning.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds (cleaning itself goes on).
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub timeout: u64,
}

/// `interface.step=N` of `--clean-step-priority-override`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityOverride {
    /// `interface.step`.
    pub step: String,
    /// The priority.
    pub priority: i64,
}

impl PriorityOverride {
    /// Parses `interface.step=N` (or Ironic's `interface.step:N`).
    pub fn parse(s: &str) -> Result<PriorityOverride, String> {
        let expected = || format!("expected INTERFACE.STEP=N, got {s:?}");
        let (step, priority) = s
            .split_once('=')
            .or_else(|| s.split_once(':'))
            .ok_or_else(expected)?;
        match step.split_once('.') {
            Some((interface, name)) if !interface.is_empty() && !name.is_empty() => {}
            _ => return Err(expected()),
        }
        let priority = priority
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| format!("priority in {s:?} must be a whole number ≥ 0"))?;
        Ok(PriorityOverride {
            step: step.to_string(),
            priority,
        })
    }
}

/// Options for reaching agents.
#[derive(Debug, Clone, Args)]
pub struct AgentConnArgs {
    /// Minimum TLS version for https agents.
    #[arg(long, default_value = "1.3", value_name = "1.2|1.3")]
    pub agent_tls_min: TlsMinVersion,
    /// Timeout of each request to an agent (seconds).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub agent_timeout: u64,
}

impl AgentConnArgs {
    /// The client options.
    pub fn options(&self) -> AgentClientOptions {
        AgentClientOptions {
            timeout: Duration::from_secs(self.agent_timeout.max(1)),
            tls_min: self.agent_tls_min,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// `node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Create a node (prints it).
    Create(CreateArgs),
    /// List nodes.
    List,
    /// Show a node, its agent session and inventory summary.
    Show {
        /// UUID or name.
        node: String,
    },
    /// Delete a node and its ports.
    Delete {
        /// UUID or name.
        node: String,
    },
    /// Set a node's provision state (clears cached steps and last_error).
    SetState {
        /// UUID or name.
        node: String,
        /// New state (`wait call-back`, `clean wait`, `manageable`, or DEPLOYWAIT, ...).
        state: ProvisionState,
        /// Also forget the agent session (token, callback URL, certificate), as Ironic does
        /// when it boots a new ramdisk.
        #[arg(long)]
        reset_agent: bool,
    },
    /// Move a node to manageable (from enroll, available, clean failed, inspect failed or
    /// adopt failed), as Ironic's `manage`.
    Manage {
        /// UUID or name.
        node: String,
    },
    /// Automated cleaning of a manageable node through its agent (needs `serve` running),
    /// ending available; follows the cleaning until it ends.
    Provide(ProvideArgs),
    /// Change a node's fields (not while it is cleaning, deploying or servicing).
    Set(SetArgs),
}

/// `node provide` options.
#[derive(Debug, Args)]
pub struct ProvideArgs {
    /// UUID or name.
    pub node: String,
    /// How to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `node set` options.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// UUID or name.
    pub node: String,
    /// `target_raid_config` as JSON (`{"logical_disks": [...]}`; `{}` clears it), read by
    /// the agent's `raid.create_configuration`.
    #[arg(long, value_name = "JSON")]
    pub target_raid_config: Option<String>,
    /// `properties`, `driver_info` and `instance_info` entries.
    #[command(flatten)]
    pub fields: NodeFields,
    /// Never power the node off (Ironic's `disable_power_off`): deploys end with the agent's
    /// `system.lockdown` instead of `standby.power_off`.
    #[arg(long, action = ArgAction::Set, value_name = "true|false")]
    pub disable_power_off: Option<bool>,
}

/// Entries of a node's `properties`, `driver_info` and `instance_info`.
#[derive(Debug, Args)]
pub struct NodeFields {
    /// `properties` entry; the value is JSON if it parses, else a string (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<KeyValue>,
    /// `driver_info` entry (repeatable).
    #[arg(long = "driver-info", value_name = "KEY=VALUE")]
    pub driver_info: Vec<KeyValue>,
    /// `instance_info` entry (repeatable).
    #[arg(long = "instance-info", value_name = "KEY=VALUE")]
    pub instance_info: Vec<KeyValue>,
}

/// `node create` options.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Unique name.
    #[arg(long)]
    pub name: Option<String>,
    /// UUID (generated if absent).
    #[arg(long)]
    pub uuid: Option<Uuid>,
    /// MAC address of a port (repeatable).
    #[arg(long = "mac", value_name = "MAC")]
    pub macs: Vec<String>,
    /// Initial provision state.
    #[arg(long, default_value = "enroll")]
    pub state: ProvisionState,
    /// Never power the node off (Ironic's `disable_power_off`).
    #[arg(long)]
    pub disable_power_off: bool,
    /// `properties`, `driver_info` and `instance_info` entries.
    #[command(flatten)]
    pub fields: NodeFields,
}

/// `agent` options.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// UUID or name.
    pub node: String,
    /// Command name, `extension.command` (e.g. `poll.get_hardware_info`).
    pub command: String,
    /// Command params as a JSON object.
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// Ask the agent to answer only when the command has finished.
    #[arg(long)]
    pub wait: bool,
    /// How to reach the agent.
    #[command(flatten)]
    pub agent: AgentConnArgs,
}

/// `logs` options.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// UUID or name.
    pub node: String,
    /// Where to write the bundle (default: `<node>-logs.tar.gz` in the current directory).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Directory of the bundles `serve` collected on failures (default: `deploy-logs` beside
    /// the database); they are listed too.
    #[arg(long, value_name = "DIR")]
    pub deploy_logs_local_path: Option<PathBuf>,
    /// How to reach the agent.
    #[command(flatten)]
    pub agent: AgentConnArgs,
}

/// `commands` options.
#[derive(Debug, Args)]
pub struct CommandsArgs {
    /// UUID or name.
    pub node: String,
    /// How to reach the agent.
    #[command(flatten)]
    pub agent: AgentConnArgs,
}

/// A `KEY=VALUE` argument; the value is JSON when it parses as JSON, else a string.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Value,
}

impl FromStr for KeyValue {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
        if key.is_empty() {
            return Err(format!("empty key in {s:?}"));
        }
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        Ok(KeyValue {
            key: key.to_string(),
            value,
        })
    }
}

/// Runs the CLI with the process arguments; returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve(_)));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve(args) => serve::run(&cli, args),
        Command::Node(cmd) => node::run(&cli, cmd),
        Command::Agent(args) => agent::run_command(&cli, args),
        Command::Commands(args) => agent::list_commands(&cli, args),
        Command::Logs(args) => agent::fetch_logs(&cli, args),
        Command::Deploy(args) => deploy::run(&cli, args),
        Command::Clean(args) => clean::run_clean(&cli, args),
        Command::Rescue(args) => rescue::run(&cli, args),
        Command::Pki(args) => tls::run_pki(&cli, args),
    }
}

fn init_logging(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: a log file (tests grep it) gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use serde_json::json;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_key_values() {
        let kv: KeyValue = "cpus=4".parse().unwrap();
        assert_eq!(kv.value, json!(4));
        let kv: KeyValue = "root_device={\"name\": \"/dev/sda\"}".parse().unwrap();
        assert_eq!(kv.value, json!({"name": "/dev/sda"}));
        let kv: KeyValue = "bmc_address=192.0.2.1".parse().unwrap();
        assert_eq!(kv.value, json!("192.0.2.1"));
        assert!("novalue".parse::<KeyValue>().is_err());
        assert!("=x".parse::<KeyValue>().is_err());
    }

    #[test]
    fn serve_flags() {
        let cli = Cli::try_parse_from(["cs", "serve", "--no-require-tls", "--fast-track", "false"])
            .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert!(args.no_require_tls && !args.fast_track);
        let cli = Cli::try_parse_from(["cs", "--json", "node", "set-state", "n", "wait call-back"])
            .unwrap();
        assert!(cli.json);
        let cli = Cli::try_parse_from(["cs", "node", "list", "--db", "/tmp/x"]).unwrap();
        assert_eq!(cli.db, PathBuf::from("/tmp/x"));
        let cli = Cli::try_parse_from(["cs", "serve", "--images", "/srv/img"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.images, Some(PathBuf::from("/srv/img")));
        assert_eq!(args.command_wait_attempts, 100);
    }

    #[test]
    fn clean_flags() {
        let cli = Cli::try_parse_from([
            "cs",
            "clean",
            "n1",
            "--step",
            "erase_devices_metadata",
            "--step",
            "raid.create_configuration:create_root_volume=false",
            "--no-wait",
        ])
        .unwrap();
        let Command::Clean(args) = cli.command else {
            panic!("not clean")
        };
        assert_eq!(args.steps.len(), 2);
        assert_eq!(args.steps[1].interface.as_deref(), Some("raid"));
        assert!(args.wait.no_wait);
        assert_eq!(args.wait.timeout, 3600);
        assert!(
            Cli::try_parse_from(["cs", "clean", "n1"]).is_err(),
            "--step required"
        );
        let err = Cli::try_parse_from(["cs", "clean", "n1", "--step", "bad.step"]).unwrap_err();
        assert!(err.to_string().contains("unknown interface"), "{err}");
        let cli = Cli::try_parse_from(["cs", "node", "provide", "n1", "--timeout", "5"]).unwrap();
        let Command::Node(NodeCommand::Provide(args)) = cli.command else {
            panic!("not provide")
        };
        assert_eq!(args.wait.timeout, 5);
        let cli = Cli::try_parse_from([
            "cs",
            "serve",
            "--erase-devices-priority",
            "0",
            "--clean-step-priority-override",
            "raid.delete_configuration=20",
            "--shred-final-overwrite-with-zeros",
            "false",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.erase_devices_priority, Some(0));
        assert_eq!(
            args.clean_step_priority_overrides,
            [PriorityOverride {
                step: "raid.delete_configuration".into(),
                priority: 20
            }]
        );
        assert!(!args.shred_final_overwrite_with_zeros);
        for bad in ["x=1", "raid.x", "raid.x=-1", ".x=1", "raid.x=a"] {
            assert!(PriorityOverride::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deploy_flags() {
        let sha = "a".repeat(64);
        let cli = Cli::try_parse_from([
            "cs",
            "deploy",
            "n1",
            "--image",
            "http://h/img.raw",
            "--checksum",
            &format!("sha256:{sha}"),
            "--image-type",
            "partition",
            "--root-mb",
            "100",
            "--boot-mode",
            "bios",
            "--disk-label",
            "msdos",
            "--root-hint",
            "size=10",
            "--root-hint",
            "name=/dev/vda",
            "--no-wait",
        ])
        .unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(args.image_type, ImageType::Partition);
        assert_eq!(args.boot_mode, Some(BootMode::Bios));
        assert_eq!(args.root_hints.len(), 2);
        assert!(args.no_wait);
        assert!(
            Cli::try_parse_from([
                "cs",
                "deploy",
                "n1",
                "--image",
                "http://h/i",
                "--checksum",
                &format!("sha256:{sha}"),
                "--checksum-url",
                "http://h/SUMS"
            ])
            .is_err(),
            "--checksum and --checksum-url conflict"
        );
        assert!(
            Cli::try_parse_from([
                "cs",
                "deploy",
                "n1",
                "--image",
                "http://h/i",
                "--checksum",
                "x"
            ])
            .is_err()
        );
    }
}
