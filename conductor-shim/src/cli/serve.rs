//! `serve`: runs the API (HTTP, or HTTPS with `--tls-cert`/`--tls-key`) until SIGTERM or
//! Ctrl-C.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use super::{Cli, ServeArgs};
use crate::api::{self, AppState, ServerConfig};
use crate::clean::{CleanOptions, EraseSettings, PriorityOverrides};
use crate::deploy::DeployOptions;
use crate::store::SharedStore;
use crate::tls::TlsListener;

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `--deploy-logs-local-path`, else `deploy-logs` beside the database.
pub(super) fn deploy_logs_dir(cli: &Cli, args: &ServeArgs) -> std::path::PathBuf {
    args.deploy_logs_local_path.clone().unwrap_or_else(|| {
        cli.db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .join("deploy-logs")
    })
}

pub(super) fn run(cli: &Cli, args: &ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(cli, args))
}

async fn serve(cli: &Cli, args: &ServeArgs) -> Result<()> {
    if let Some(dir) = &args.images {
        anyhow::ensure!(dir.is_dir(), "--images {}: not a directory", dir.display());
    }
    // Bad certificate files fail before anything listens.
    let tls = args
        .tls
        .files()
        .map(|files| crate::tls::server_config(&files))
        .transpose()
        .context("setting up HTTPS")?;
    let store = cli.open_store()?;
    let config = ServerConfig {
        heartbeat_timeout: args.heartbeat_timeout,
        require_tls: !args.no_require_tls,
        fast_track: args.fast_track,
        restrict_lookup: true,
        max_body_bytes: args.max_body_bytes,
        agent: args.agent.options(),
        deploy: DeployOptions {
            command_wait_interval: Duration::from_secs_f64(args.command_wait_interval.max(0.01)),
            command_wait_attempts: args.command_wait_attempts.max(1),
            lockdown_poll_interval: Duration::from_secs_f64(
                args.post_deploy_get_power_state_retry_interval
                    .clamp(0.01, 3600.0),
            ),
            lockdown_poll_retries: args.post_deploy_get_power_state_retries,
        },
        clean: clean_options(args),
        images_dir: args.images.clone(),
        enable_bios_bootloader_install: args.enable_bios_bootloader_install,
        ramdisk_logs: crate::ramdisk_logs::RamdiskLogs {
            collect: args.deploy_logs_collect,
            dir: Some(deploy_logs_dir(cli, args)),
        },
        https: tls.is_some(),
    };
    tracing::info!(?config, db = %cli.db.display(), https = tls.is_some(), mutual_tls = args.tls.tls_client_ca.is_some(), "starting");
    let state = AppState::new(SharedStore::new(store), config);
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "conductor-shim listening on {scheme}://{addr}")?;
        if let Some(dir) = &args.images {
            writeln!(
                stdout,
                "serving images from {} at {scheme}://{addr}/images/",
                dir.display()
            )?;
        }
        stdout.flush()?;
    }
    // Ends with the runtime, when `serve` returns.
    tokio::spawn(crate::timeouts::run(
        state.store.clone(),
        state.conductor.locks().clone(),
        timeout_options(args),
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = stop_rx.await;
    };
    let mut server = match tls {
        None => tokio::spawn(api::serve(listener, state, stopped)),
        Some(tls) => {
            let listener = TlsListener::new(listener, tls).context("starting the TLS listener")?;
            tokio::spawn(api::serve(listener, state, stopped))
        }
    };
    tokio::select! {
        finished = &mut server => {
            return finished.context("server task failed")?.context("serving");
        }
        signal = shutdown_signal() => {
            signal?;
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(finished) => finished.context("server task failed")?.context("serving"),
        Err(_) => {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
            Ok(())
        }
    }
}

/// The callback timeout settings from the `serve` flags (0 disables).
fn timeout_options(args: &ServeArgs) -> crate::timeouts::TimeoutOptions {
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    crate::timeouts::TimeoutOptions {
        deploy_callback_timeout: secs(args.deploy_callback_timeout),
        check_interval: secs(args.check_provision_state_interval),
    }
}

/// The cleaning settings from the `serve` flags.
fn clean_options(args: &ServeArgs) -> CleanOptions {
    CleanOptions {
        priorities: PriorityOverrides {
            erase_devices: args.erase_devices_priority,
            erase_devices_metadata: args.erase_devices_metadata_priority,
            steps: args
                .clean_step_priority_overrides
                .iter()
                .map(|o| (o.step.clone(), o.priority))
                .collect(),
        },
        erase: EraseSettings {
            shred_random_overwrite_iterations: args.shred_random_overwrite_iterations,
            shred_final_overwrite_with_zeros: args.shred_final_overwrite_with_zeros,
            ..EraseSettings::default()
        },
        ..CleanOptions::default()
    }
}

async fn shutdown_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        ctrl_c = tokio::signal::ctrl_c() => ctrl_c.context("waiting for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}
