//! `numa-topology`: RAM, CPU cores with their thread siblings and NICs per NUMA node, as IPA
//! 13's `numa_inspector.collect_numa_topology_info` reads them from
//! `/sys/devices/system/node/node<N>` and `/sys/class/net/<nic>/device/numa_node`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pyfmt;

/// `numa_topology` (IPA's key order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaTopology {
    /// Memory per node.
    pub ram: Vec<NumaRam>,
    /// One entry per (node, core id).
    pub cpus: Vec<NumaCpu>,
    /// NICs with a `device/numa_node`.
    pub nics: Vec<NumaNic>,
}

/// `ram[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaRam {
    /// The node number.
    pub numa_node: i64,
    /// `MemTotal` of the node's `meminfo`, in kB.
    pub size_kb: i64,
}

/// `cpus[]` (IPA's key order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaCpu {
    /// The logical CPUs (`cpuN`) sharing this core, in discovery order.
    pub thread_siblings: Vec<i64>,
    /// `topology/core_id`.
    pub cpu: i64,
    /// The node number.
    pub numa_node: i64,
}

/// `nics[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaNic {
    /// Interface name.
    pub name: String,
    /// `device/numa_node` (`-1` when the platform has no NUMA information).
    pub numa_node: i64,
}

/// Why no `numa_topology` is posted.
#[derive(Debug, thiserror::Error)]
pub enum NumaError {
    /// IPA logs a warning and posts no `numa_topology` (no failure): no node directory, or a
    /// malformed node (its `IncompatibleNumaFormatError`).
    #[error("{0}")]
    Skipped(String),
    /// An error IPA does not catch: the collector fails with this text.
    #[error("{0}")]
    Failed(String),
}

/// Collects `numa_topology` under `root`.
///
/// # Errors
/// [`NumaError::Skipped`] where IPA only warns, [`NumaError::Failed`] where its collector
/// raises.
pub fn collect(root: &Path) -> Result<NumaTopology, NumaError> {
    // IPA's paths end with a slash; its messages show them so.
    let node_path = root.join("sys/devices/system/node/");
    let nic_path = root.join("sys/class/net/");
    if !node_path.is_dir() {
        return Err(NumaError::Skipped(format!(
            "Failed to get list of NUMA nodes, NUMA node path does not exist: {}",
            node_path.display()
        )));
    }
    let entries =
        fs::read_dir(&node_path).map_err(|e| NumaError::Failed(pyfmt::os_error(&e, &node_path)))?;
    let mut nodes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = node_path.join(&name);
        if path.is_dir() && name.starts_with("node") {
            nodes.push(path);
        }
    }
    Ok(NumaTopology {
        ram: memory(&nodes)?,
        cpus: cores(&nodes)?,
        nics: nics(&nic_path)?,
    })
}

fn incompatible(msg: String) -> NumaError {
    NumaError::Skipped(msg)
}

/// `int(basename[4:])` of a `node<N>` directory.
fn node_id(dir: &Path) -> Result<i64, NumaError> {
    let base = dir
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    base.get(4..).and_then(pyfmt::int).ok_or_else(|| {
        incompatible(format!(
            "Failed to get NUMA node id for {}: invalid literal for int() with base 10: {}",
            dir.display(),
            pyfmt::repr_str(base.get(4..).unwrap_or(""))
        ))
    })
}

fn memory(nodes: &[PathBuf]) -> Result<Vec<NumaRam>, NumaError> {
    let mut ram = Vec::new();
    for dir in nodes {
        let numa_node = node_id(dir)?;
        let meminfo = dir.join("meminfo");
        let text = fs::read_to_string(&meminfo).map_err(|e| {
            incompatible(format!(
                "Failed to get memory information for {}: {}",
                dir.display(),
                pyfmt::os_error(&e, &meminfo)
            ))
        })?;
        let line = text
            .split_inclusive('\n')
            .find(|l| l.contains("MemTotal"))
            .ok_or_else(|| {
                incompatible(format!(
                    "Memory information is not available for {}",
                    dir.display()
                ))
            })?;
        let size_kb = line
            .split(':')
            .nth(1)
            .and_then(|v| quantity_kb(pyfmt::strip(v)))
            .ok_or_else(|| {
                incompatible(format!(
                    "Failed to get memory information for {}: {}",
                    dir.display(),
                    pyfmt::strip(line)
                ))
            })?;
        ram.push(NumaRam { numa_node, size_kb });
    }
    Ok(ram)
}

/// IPA's `int(UNIT_CONVERTER(value).to_base_units().magnitude)` for the values `meminfo`
/// holds: a number followed by units among `kB`/`KB` (×1), `MB` (×1024), `GB` (×1048576);
/// no text at all is pint's 1.
fn quantity_kb(value: &str) -> Option<i64> {
    let mut words = value.split_whitespace();
    let Some(first) = words.next() else {
        return Some(1);
    };
    let mut magnitude: f64 = match first.parse::<f64>() {
        Ok(n)
            if first
                .bytes()
                .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b)) =>
        {
            n
        }
        _ => unit(first)?,
    };
    for w in words {
        magnitude *= unit(w)?;
    }
    magnitude.is_finite().then_some(magnitude.trunc() as i64)
}

fn unit(word: &str) -> Option<f64> {
    match word {
        "kB" | "KB" => Some(1.0),
        "MB" => Some(1024.0),
        "GB" => Some(1_048_576.0),
        _ => None,
    }
}

fn cores(nodes: &[PathBuf]) -> Result<Vec<NumaCpu>, NumaError> {
    let mut cpus: Vec<NumaCpu> = Vec::new();
    for dir in nodes {
        let numa_node = node_id(dir)?;
        let entries = fs::read_dir(dir).map_err(|e| {
            incompatible(format!(
                "Failed to get list of threads for {}: {}",
                dir.display(),
                pyfmt::os_error(&e, dir)
            ))
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !dir.join(&name).is_dir() || !name.starts_with("cpu") {
                continue;
            }
            let thread = pyfmt::int(&name[3..]).ok_or_else(|| {
                incompatible(format!(
                    "Failed to get cores information for {}: invalid literal for int() with base 10: {}",
                    dir.display(),
                    pyfmt::repr_str(&name[3..])
                ))
            })?;
            let core_path = dir.join(&name).join("topology/core_id");
            let core = fs::read_to_string(&core_path)
                .ok()
                .and_then(|t| pyfmt::int(&t))
                .ok_or_else(|| {
                    incompatible(format!(
                        "Failed to gather cpu_id for thread{name} NUMA node {}",
                        dir.display()
                    ))
                })?;
            match cpus
                .iter_mut()
                .find(|c| c.numa_node == numa_node && c.cpu == core)
            {
                Some(c) => {
                    if !c.thread_siblings.contains(&thread) {
                        c.thread_siblings.push(thread);
                    }
                }
                None => cpus.push(NumaCpu {
                    thread_siblings: vec![thread],
                    cpu: core,
                    numa_node,
                }),
            }
        }
    }
    Ok(cpus)
}

fn nics(nic_path: &Path) -> Result<Vec<NumaNic>, NumaError> {
    if !nic_path.is_dir() {
        return Err(incompatible(format!(
            "Failed to get list of NIC's, NIC device path does not exist: {}",
            nic_path.display()
        )));
    }
    let entries =
        fs::read_dir(nic_path).map_err(|e| NumaError::Failed(pyfmt::os_error(&e, nic_path)))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = nic_path.join(&name).join("device/numa_node");
        if !file.is_file() {
            continue;
        }
        let numa_node = fs::read_to_string(&file)
            .ok()
            .and_then(|t| pyfmt::int(&t))
            .ok_or_else(|| incompatible(format!("Failed to gather NIC's for NUMA node {name}")))?;
        out.push(NumaNic { name, numa_node });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Two nodes, two cores each with two threads; one NIC per node, one virtual NIC.
    fn tree(root: &Path) {
        let nodes = root.join("sys/devices/system/node");
        for n in 0..2 {
            let node = nodes.join(format!("node{n}"));
            write(
                &node.join("meminfo"),
                &format!(
                    "Node {n} MemTotal:       {} kB\nNode {n} MemFree:        1000 kB\n",
                    16_000_000 + n
                ),
            );
            write(&node.join("cpulist"), "0-3\n");
            for t in 0..4 {
                let cpu = n * 4 + t;
                write(
                    &node.join(format!("cpu{cpu}/topology/core_id")),
                    &format!("{}\n", t % 2),
                );
            }
        }
        write(&nodes.join("possible"), "0-1\n");
        fs::create_dir_all(nodes.join("power")).unwrap();
        let net = root.join("sys/class/net");
        write(&net.join("eno1/device/numa_node"), "0\n");
        write(&net.join("eno2/device/numa_node"), "1\n");
        fs::create_dir_all(net.join("lo")).unwrap();
    }

    fn sorted(mut t: NumaTopology) -> NumaTopology {
        t.ram.sort_by_key(|r| r.numa_node);
        t.cpus.sort_by_key(|c| (c.numa_node, c.cpu));
        for c in &mut t.cpus {
            c.thread_siblings.sort();
        }
        t.nics.sort_by(|a, b| a.name.cmp(&b.name));
        t
    }

    #[test]
    fn topology_of_a_two_node_machine() {
        let root = tempfile::tempdir().unwrap();
        tree(root.path());
        let t = sorted(collect(root.path()).unwrap());
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({
                "ram": [{"numa_node": 0, "size_kb": 16000000}, {"numa_node": 1, "size_kb": 16000001}],
                "cpus": [
                    {"thread_siblings": [0, 2], "cpu": 0, "numa_node": 0},
                    {"thread_siblings": [1, 3], "cpu": 1, "numa_node": 0},
                    {"thread_siblings": [4, 6], "cpu": 0, "numa_node": 1},
                    {"thread_siblings": [5, 7], "cpu": 1, "numa_node": 1},
                ],
                "nics": [{"name": "eno1", "numa_node": 0}, {"name": "eno2", "numa_node": 1}],
            })
        );
    }

    #[test]
    fn malformed_trees_are_skipped_as_ipa() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(collect(root.path()), Err(NumaError::Skipped(_))));
        tree(root.path());
        write(
            &root.path().join("sys/devices/system/node/node1/meminfo"),
            "Node 1 MemFree: 1 kB\n",
        );
        let err = collect(root.path()).unwrap_err();
        assert!(
            matches!(err, NumaError::Skipped(ref m) if m.contains("Memory information is not available")),
            "{err}"
        );
    }

    #[test]
    fn meminfo_quantities_as_pint() {
        assert_eq!(quantity_kb("123 kB"), Some(123));
        assert_eq!(quantity_kb("123"), Some(123));
        assert_eq!(quantity_kb("1 MB"), Some(1024));
        assert_eq!(quantity_kb("2 GB"), Some(2_097_152));
        assert_eq!(quantity_kb("12.7 kB"), Some(12));
        assert_eq!(quantity_kb(""), Some(1));
        assert_eq!(quantity_kb("1 TB"), None);
        assert_eq!(quantity_kb("abc"), None);
    }
}
