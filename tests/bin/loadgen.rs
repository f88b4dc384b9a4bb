//! `agent-loadgen`: waves of concurrent requests against an agent's API until its standard
//! input closes (or `--waves N` are done); prints the report as JSON. Used by
//! `agent/bench/load.py`.
//!
//! ```text
//! agent-loadgen --addr 127.0.0.1:9999 --token TOKEN [--concurrency 1000] [--waves N]
//! ```

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use e2e_tests::loadgen::{self, Load};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut token, mut concurrency, mut waves) = (None, None, 1000usize, None);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--addr" => addr = Some(value()?.parse().context("--addr")?),
            "--token" => token = Some(value()?),
            "--concurrency" => concurrency = value()?.parse().context("--concurrency")?,
            "--waves" => waves = Some(value()?.parse().context("--waves")?),
            other => bail!("unknown argument {other}"),
        }
    }
    let load = Load {
        addr: addr.context("--addr is required")?,
        token: token.context("--token is required")?,
        concurrency: concurrency.max(1),
        waves,
    };
    loadgen::raise_open_files();
    let stop = Arc::new(AtomicBool::new(false));
    if waves.is_none() {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            stop.store(true, Ordering::SeqCst);
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(loadgen::run(load, stop));
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
