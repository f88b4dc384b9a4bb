//! `ironic-agent`: the deploy agent binary.

use std::process::ExitCode;

use clap::Parser;
use ironic_agent::config::{AgentCommand, Config, EarlyLog, Flags};
use ironic_agent::logbuf::{LogBuffer, TeeWriter};
use tracing_subscriber::EnvFilter;

/// How much of its own log the agent keeps in memory for the log bundle.
const LOG_BUFFER_BYTES: usize = 4 * 1024 * 1024;

fn main() -> ExitCode {
    let flags = Flags::parse();
    let mut early = EarlyLog::default();
    let config = match Config::load(&flags, &mut early) {
        Ok(c) => c,
        Err(e) => {
            early.print_stderr();
            eprintln!("ironic-agent: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let logs = LogBuffer::new(LOG_BUFFER_BYTES);
    let default_level = if config.debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("IRONIC_AGENT_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default_level},hyper=info,reqwest=info,rustls=info"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(TeeWriter::new(logs.clone()))
        .with_ansi(false)
        .init();
    early.emit();
    if let Some(AgentCommand::NetworkSetup(args)) = &flags.command {
        return network_setup(&config, &flags, args);
    }
    ironic_agent::limits::raise_open_files();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ironic-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(ironic_agent::agent::run(config, logs));
    // A command that did not stop within the grace period is not waited for again.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `ironic-agent network-setup`: one `dhcp IFACE` line on stdout per interface left to DHCP.
fn network_setup(
    config: &Config,
    flags: &Flags,
    args: &ironic_agent::config::NetworkSetupArgs,
) -> ExitCode {
    use std::io::Write;
    let opts = ironic_agent::netsetup::Options {
        record: args.record.clone(),
        state: args.state.clone(),
        root: flags.etc_root.clone(),
        sys: flags.sys_root.clone(),
        roots: ironic_agent::media::BlockRoots {
            sys: flags.sys_root.clone(),
            dev: flags.dev_root.clone(),
            allow_loop: flags.vmedia_allow_loop,
        },
    };
    let report = ironic_agent::netsetup::run(config, &opts);
    let mut out = std::io::stdout().lock();
    for iface in &report.dhcp {
        if writeln!(out, "dhcp {iface}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
