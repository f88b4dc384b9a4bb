use std::collections::HashMap;

use std::os::unix::fs::symlink;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hardware_managers::StepKind;
use hardware_managers::generic::backend::StepBackend as _;
use serde_json::json;

use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hardware_managers::guard::DiskGuard;

use super::apply::*;
use super::fetch::*;
use super::mount::*;
use super::template::*;
use super::validate::*;
use super::*;
use crate::disk::table::{PartitionKind, PartitionSpec, TableKind};
use crate::disk::{blockdev, table};
use crate::testutil::LoopDevice;

const NODE_UUID: &str = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";

fn node(props: Value) -> Node {
    Node {
        uuid: Some(NODE_UUID.into()),
        properties: match props {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        ..Node::default()
    }
}

fn ports() -> Vec<Port> {
    vec![
        Port {
            address: Some("52:54:00:12:34:56".into()),
            uuid: Some("port-a".into()),
            extra: Map::new(),
        },
        Port {
            address: Some("52:54:00:ab:cd:ef".into()),
            uuid: Some("port-b".into()),
            extra: Map::new(),
        },
    ]
}

fn args(files: Value) -> Map<String, Value> {
    Map::from_iter([("files".to_string(), files)])
}

fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

fn unique() -> String {
    format!("inject-test-{:016x}", rand::random::<u64>())
}

fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A spec as validation would build it, for the resolver tests.
fn spec(path: &str) -> anyhow::Result<FileSpec> {
    Ok(FileSpec {
        label: "files[0]".into(),
        path: path.into(),
        components: path_components(path).map_err(anyhow::Error::msg)?,
        partition: None,
        action: Action::Inline(Vec::new()),
        mode: None,
        dirmode: None,
        owner: None,
        group: None,
    })
}

/// Every entry below `dir` (relative paths) with the contents of the files.
fn snapshot(dir: &Path) -> anyhow::Result<Vec<(String, Option<Vec<u8>>)>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            let meta = p.symlink_metadata()?;
            let rel = p.strip_prefix(dir)?.display().to_string();
            if meta.is_dir() {
                todo.push(p);
                out.push((rel, None));
            } else {
                out.push((rel, Some(std::fs::read(&p)?)));
            }
        }
    }
    out.sort();
    Ok(out)
}

mod disk;
mod validation;
mod walker;
