//! `rescue NODE --password PW`: store the rescue request ([`crate::rescue::request`]) and wait
//! until the agent's heartbeat has finalized it (node `rescue`) or it failed (`rescue failed`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::output::key_values;
use super::view::NodeView;
use super::{Cli, RescueArgs};
use crate::state::ProvisionState;

/// How often the node is read while waiting.
const REFRESH: Duration = Duration::from_millis(250);

pub(super) fn run(cli: &Cli, args: &RescueArgs) -> Result<()> {
    let mut store = cli.open_store()?;
    let node = crate::rescue::request(&mut store, &args.node, &args.password)
        .with_context(|| format!("requesting the rescue of node {}", args.node))?;
    let uuid = node.uuid;
    if !args.wait.no_wait {
        eprintln!(
            "node {uuid} is in rescue wait; waiting for its agent (the rescue ramdisk) to \
             heartbeat"
        );
        let deadline = Instant::now() + Duration::from_secs(args.wait.timeout);
        loop {
            let n = store
                .get_node(&uuid.to_string())
                .with_context(|| format!("reading node {uuid}"))?;
            match n.provision_state {
                ProvisionState::Rescue => break,
                ProvisionState::RescueWait => {}
                ProvisionState::RescueFailed => bail!(
                    "rescue of node {uuid} failed: {}",
                    n.last_error.as_deref().unwrap_or("no error recorded")
                ),
                other => bail!("node {uuid} left rescue wait: it is now {other}"),
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {} s waiting for the rescue of node {uuid} (still rescue \
                     wait); it goes on in the shim",
                    args.wait.timeout
                );
            }
            std::thread::sleep(REFRESH);
        }
    }
    let node = store.get_node(&uuid.to_string())?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&NodeView::load(&store, node)?)?
        );
    } else {
        print!(
            "{}",
            key_values(&[
                ("node".to_string(), node.uuid.to_string()),
                (
                    "provision_state".to_string(),
                    node.provision_state.to_string()
                ),
            ])
        );
    }
    Ok(())
}
