//! The node store: one SQLite file (WAL mode, busy timeout) shared by `serve` and the CLI.
//!
//! Schema version 3 (`PRAGMA user_version`):
//! - `nodes(uuid PK, name UNIQUE NULL, provision_state, power_state, properties,
//!   instance_info, driver_info, driver_internal_info, inventory NULL, inspection_data NULL,
//!   last_error NULL, created_at, updated_at, target_provision_state NULL, clean_step NULL,
//!   target_raid_config, raid_config, disable_power_off)`; JSON columns hold text.
//! - `ports(uuid PK, node_uuid FK → nodes ON DELETE CASCADE, address UNIQUE, created_at)`.
//!
//! Version 1 lacked the four node columns after `updated_at`, version 2 `disable_power_off`;
//! opening such a file adds them (`ALTER TABLE`), keeping every node.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::mac;
use crate::model::{JsonMap, NewNode, Node, Port, validate_name};
use crate::state::ProvisionState;
use crate::timefmt;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 3;

/// How long a statement waits for another process holding the database lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA_V1: &str = "
CREATE TABLE nodes (
    uuid TEXT PRIMARY KEY NOT NULL,
    name TEXT UNIQUE,
    provision_state TEXT NOT NULL,
    power_state TEXT,
    properties TEXT NOT NULL DEFAULT '{}',
    instance_info TEXT NOT NULL DEFAULT '{}',
    driver_info TEXT NOT NULL DEFAULT '{}',
    driver_internal_info TEXT NOT NULL DEFAULT '{}',
    inventory TEXT,
    inspection_data TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE TABLE ports (
    uuid TEXT PRIMARY KEY NOT NULL,
    node_uuid TEXT NOT NULL REFERENCES nodes(uuid) ON DELETE CASCADE,
    address TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE INDEX ports_node_uuid ON ports(node_uuid);
";

/// Version 1 → 2: the target state, the current clean step and the RAID configurations.
const MIGRATE_V2: &str = "
ALTER TABLE nodes ADD COLUMN target_provision_state TEXT;
ALTER TABLE nodes ADD COLUMN clean_step TEXT;
ALTER TABLE nodes ADD COLUMN target_raid_config TEXT NOT NULL DEFAULT '{}';
ALTER TABLE nodes ADD COLUMN raid_config TEXT NOT NULL DEFAULT '{}';
";

/// Version 2 → 3: Ironic's `disable_power_off`.
const MIGRATE_V3: &str = "
ALTER TABLE nodes ADD COLUMN disable_power_off INTEGER NOT NULL DEFAULT 0;
";

const NODE_COLUMNS: &str = "uuid, name, provision_state, power_state, properties, instance_info, \
     driver_info, driver_internal_info, inventory, inspection_data, last_error, created_at, updated_at, \
     target_provision_state, clean_step, target_raid_config, raid_config, disable_power_off";

/// Errors of the node store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No node with this UUID or name.
    #[error("node {0} not found")]
    NodeNotFound(String),
    /// The name is taken.
    #[error("a node named {0:?} already exists")]
    DuplicateName(String),
    /// The UUID is taken.
    #[error("a node with UUID {0} already exists")]
    DuplicateUuid(Uuid),
    /// A port with this MAC address exists.
    #[error("MAC address {0} is already used by another port")]
    DuplicateMac(String),
    /// Not a MAC address.
    #[error("invalid MAC address {0:?}")]
    InvalidMac(String),
    /// The node name is not acceptable.
    #[error("{0}")]
    InvalidName(String),
    /// The given MAC addresses belong to ports of different nodes.
    #[error("ports with MAC addresses {0:?} belong to more than one node")]
    AmbiguousPorts(Vec<String>),
    /// The file was written by a newer build.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Version this build knows.
        supported: i64,
    },
    /// A stored value does not decode.
    #[error("corrupt {column} of node {node} in the database: {detail}")]
    Corrupt {
        /// Node UUID (as stored).
        node: String,
        /// Column name.
        column: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The database file cannot be opened or initialised.
    #[error("opening database {path}: {source}")]
    Open {
        /// Path of the file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Any other SQLite error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A value could not be encoded.
    #[error("encoding {0}: {1}")]
    Encode(&'static str, serde_json::Error),
    /// The blocking task running a store operation died.
    #[error("store task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Whether this is "node not found".
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NodeNotFound(_))
    }
}

/// The SQLite-backed store of nodes and ports.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path`: WAL mode, foreign keys on, a busy
    /// timeout so several processes can share the file, schema migrated to [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        Self::init(conn).map_err(|e| match e {
            StoreError::Sqlite(source) => open_err(source),
            other => other,
        })
    }

    /// Opens a private in-memory database (for tests).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            tx.execute_batch(SCHEMA_V1)?;
        }
        if version < 2 {
            tx.execute_batch(MIGRATE_V2)?;
        }
        if version < 3 {
            tx.execute_batch(MIGRATE_V3)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(Store { conn })
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Creates a node and its ports in one transaction.
    pub fn create_node(&mut self, new: NewNode) -> Result<Node, StoreError> {
        if let Some(name) = &new.name {
            validate_name(name).map_err(StoreError::InvalidName)?;
        }
        let macs = new
            .macs
            .iter()
            .map(|m| mac::normalize(m).ok_or_else(|| StoreError::InvalidMac(m.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let now = timefmt::now();
        let node = Node {
            uuid: new.uuid.unwrap_or_else(Uuid::new_v4),
            name: new.name,
            provision_state: new.provision_state,
            power_state: None,
            properties: new.properties,
            instance_info: new.instance_info,
            driver_info: new.driver_info,
            driver_internal_info: Default::default(),
            inventory: None,
            inspection_data: None,
            last_error: None,
            created_at: now,
            updated_at: None,
            target_provision_state: None,
            clean_step: None,
            target_raid_config: JsonMap::new(),
            raid_config: JsonMap::new(),
            disable_power_off: new.disable_power_off,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if node_by_uuid(&tx, node.uuid)?.is_some() {
            return Err(StoreError::DuplicateUuid(node.uuid));
        }
        if let Some(name) = &node.name
            && node_by_name(&tx, name)?.is_some()
        {
            return Err(StoreError::DuplicateName(name.clone()));
        }
        tx.execute(
            "INSERT INTO nodes (uuid, provision_state, created_at) VALUES (?1, ?2, ?3)",
            params![
                node.uuid.to_string(),
                node.provision_state.as_str(),
                timefmt::format(node.created_at),
            ],
        )?;
        write_node(&tx, &node)?;
        for address in macs {
            insert_port(&tx, node.uuid, &address)?;
        }
        tx.commit()?;
        Ok(node)
    }

    /// Finds a node by UUID or, if `ident` is not a UUID, by name.
    pub fn get_node(&self, ident: &str) -> Result<Node, StoreError> {
        let found = match Uuid::parse_str(ident) {
            Ok(uuid) => node_by_uuid(&self.conn, uuid)?,
            Err(_) => node_by_name(&self.conn, ident)?,
        };
        found.ok_or_else(|| StoreError::NodeNotFound(ident.to_string()))
    }

    /// Finds a node by UUID.
    pub fn node_by_uuid(&self, uuid: Uuid) -> Result<Option<Node>, StoreError> {
        node_by_uuid(&self.conn, uuid)
    }

    /// Finds a node by name.
    pub fn node_by_name(&self, name: &str) -> Result<Option<Node>, StoreError> {
        node_by_name(&self.conn, name)
    }

    /// Finds the node owning a port with any of these (normalised) MAC addresses.
    /// Ports of several different nodes are an error, as in Ironic.
    pub fn node_by_macs(&self, macs: &[String]) -> Result<Option<Node>, StoreError> {
        if macs.is_empty() {
            return Ok(None);
        }
        let placeholders = vec!["?"; macs.len()].join(", ");
        let mut stmt = self.conn.prepare(&format!(
            "SELECT DISTINCT node_uuid FROM ports WHERE address IN ({placeholders})"
        ))?;
        let uuids = stmt
            .query_map(rusqlite::params_from_iter(macs.iter()), |r| {
                r.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        match uuids.as_slice() {
            [] => Ok(None),
            [uuid] => {
                let uuid = parse_uuid(uuid, "ports.node_uuid")?;
                node_by_uuid(&self.conn, uuid)
            }
            _ => Err(StoreError::AmbiguousPorts(macs.to_vec())),
        }
    }

    /// Finds the node whose `driver_info` BMC address (`bmc_address`, `ipmi_address`,
    /// `redfish_address`, `idrac_address`; a URL's host counts) equals one of `addresses`.
    pub fn node_by_bmc_address(&self, addresses: &[String]) -> Result<Option<Node>, StoreError> {
        let wanted: Vec<String> = addresses.iter().map(|a| bmc_host(a)).collect();
        if wanted.is_empty() {
            return Ok(None);
        }
        for node in self.list_nodes()? {
            let matches = [
                "bmc_address",
                "ipmi_address",
                "redfish_address",
                "idrac_address",
            ]
            .iter()
            .filter_map(|key| node.driver_info.get(*key).and_then(|v| v.as_str()))
            .any(|addr| wanted.contains(&bmc_host(addr)));
            if matches {
                return Ok(Some(node));
            }
        }
        Ok(None)
    }

    /// All nodes, oldest first.
    pub fn list_nodes(&self) -> Result<Vec<Node>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {NODE_COLUMNS} FROM nodes ORDER BY created_at, uuid"
        ))?;
        let raw = stmt
            .query_map([], RawNode::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        raw.into_iter().map(RawNode::decode).collect()
    }

    /// The ports of a node, oldest first.
    pub fn ports(&self, node: Uuid) -> Result<Vec<Port>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT uuid, node_uuid, address, created_at FROM ports WHERE node_uuid = ?1 \
             ORDER BY created_at, address",
        )?;
        let raw = stmt
            .query_map([node.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        raw.into_iter()
            .map(|(uuid, node_uuid, address, created_at)| {
                Ok(Port {
                    uuid: parse_uuid(&uuid, "ports.uuid")?,
                    node_uuid: parse_uuid(&node_uuid, "ports.node_uuid")?,
                    address,
                    created_at: parse_time(&created_at, &uuid, "ports.created_at")?,
                })
            })
            .collect()
    }

    /// Adds a port to a node.
    pub fn add_port(&mut self, node: Uuid, address: &str) -> Result<Port, StoreError> {
        let address =
            mac::normalize(address).ok_or_else(|| StoreError::InvalidMac(address.to_string()))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if node_by_uuid(&tx, node)?.is_none() {
            return Err(StoreError::NodeNotFound(node.to_string()));
        }
        let port = insert_port(&tx, node, &address)?;
        tx.commit()?;
        Ok(port)
    }

    /// Deletes a node (by UUID or name) and, by cascade, its ports. Returns the deleted node.
    pub fn delete_node(&mut self, ident: &str) -> Result<Node, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let node = match Uuid::parse_str(ident) {
            Ok(uuid) => node_by_uuid(&tx, uuid)?,
            Err(_) => node_by_name(&tx, ident)?,
        }
        .ok_or_else(|| StoreError::NodeNotFound(ident.to_string()))?;
        tx.execute("DELETE FROM nodes WHERE uuid = ?1", [node.uuid.to_string()])?;
        tx.commit()?;
        Ok(node)
    }

    /// Reads the node `uuid`, lets `f` change it and writes it back, all in one immediate
    /// transaction (so concurrent writers in other processes cannot interleave). If `f`
    /// fails nothing is written. `updated_at` is set automatically.
    pub fn update_node<T, E, F>(&mut self, uuid: Uuid, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Node) -> Result<T, E>,
        E: From<StoreError>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let mut node =
            node_by_uuid(&tx, uuid)?.ok_or_else(|| StoreError::NodeNotFound(uuid.to_string()))?;
        let out = f(&mut node)?;
        node.updated_at = Some(timefmt::now());
        write_node(&tx, &node)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

/// A [`Store`] shared by async tasks; operations run on the blocking thread pool.
#[derive(Debug, Clone)]
pub struct SharedStore {
    inner: Arc<Mutex<Store>>,
}

impl SharedStore {
    /// Wraps a store.
    pub fn new(store: Store) -> SharedStore {
        SharedStore {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    /// Runs `f` with exclusive access to the store on a blocking thread.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Store) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut store = inner.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut store)
        })
        .await
        .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }
}

/// Reduces a BMC address or URL to its host (`https://[fd00::1]:443/x` → `fd00::1`).
pub fn bmc_host(address: &str) -> String {
    let rest = address
        .split_once("://")
        .map_or(address, |(_, rest)| rest)
        .trim();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(stripped) = authority.strip_prefix('[') {
        stripped.split(']').next().unwrap_or(stripped)
    } else if authority.matches(':').count() == 1 {
        authority.split(':').next().unwrap_or(authority)
    } else {
        authority
    };
    host.to_ascii_lowercase()
}

fn insert_port(conn: &Connection, node: Uuid, address: &str) -> Result<Port, StoreError> {
    let exists: Option<String> = conn
        .query_row(
            "SELECT uuid FROM ports WHERE address = ?1",
            [address],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::DuplicateMac(address.to_string()));
    }
    let port = Port {
        uuid: Uuid::new_v4(),
        node_uuid: node,
        address: address.to_string(),
        created_at: timefmt::now(),
    };
    conn.execute(
        "INSERT INTO ports (uuid, node_uuid, address, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            port.uuid.to_string(),
            node.to_string(),
            port.address,
            timefmt::format(port.created_at)
        ],
    )?;
    Ok(port)
}

fn write_node(conn: &Connection, node: &Node) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE nodes SET name = ?2, provision_state = ?3, power_state = ?4, properties = ?5, \
         instance_info = ?6, driver_info = ?7, driver_internal_info = ?8, inventory = ?9, \
         inspection_data = ?10, last_error = ?11, updated_at = ?12, target_provision_state = ?13, \
         clean_step = ?14, target_raid_config = ?15, raid_config = ?16, disable_power_off = ?17 \
         WHERE uuid = ?1",
        params![
            node.uuid.to_string(),
            node.name,
            node.provision_state.as_str(),
            encode_opt(&node.power_state, "power_state")?,
            encode(&node.properties, "properties")?,
            encode(&node.instance_info, "instance_info")?,
            encode(&node.driver_info, "driver_info")?,
            encode(&node.driver_internal_info, "driver_internal_info")?,
            encode_opt(&node.inventory, "inventory")?,
            encode_opt(&node.inspection_data, "inspection_data")?,
            node.last_error,
            node.updated_at.map(timefmt::format),
            node.target_provision_state.map(ProvisionState::as_str),
            encode_opt(&node.clean_step, "clean_step")?,
            encode(&node.target_raid_config, "target_raid_config")?,
            encode(&node.raid_config, "raid_config")?,
            node.disable_power_off,
        ],
    )?;
    Ok(())
}

fn node_by_uuid(conn: &Connection, uuid: Uuid) -> Result<Option<Node>, StoreError> {
    node_where(conn, "uuid", &uuid.to_string())
}

fn node_by_name(conn: &Connection, name: &str) -> Result<Option<Node>, StoreError> {
    node_where(conn, "name", name)
}

fn node_where(conn: &Connection, column: &str, value: &str) -> Result<Option<Node>, StoreError> {
    let raw = conn
        .query_row(
            &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE {column} = ?1"),
            [value],
            RawNode::from_row,
        )
        .optional()?;
    raw.map(RawNode::decode).transpose()
}

/// A node row as text, before decoding.
struct RawNode {
    uuid: String,
    name: Option<String>,
    provision_state: String,
    power_state: Option<String>,
    properties: String,
    instance_info: String,
    driver_info: String,
    driver_internal_info: String,
    inventory: Option<String>,
    inspection_data: Option<String>,
    last_error: Option<String>,
    created_at: String,
    updated_at: Option<String>,
    target_provision_state: Option<String>,
    clean_step: Option<String>,
    target_raid_config: String,
    raid_config: String,
    disable_power_off: bool,
}

impl RawNode {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawNode> {
        Ok(RawNode {
            uuid: r.get(0)?,
            name: r.get(1)?,
            provision_state: r.get(2)?,
            power_state: r.get(3)?,
            properties: r.get(4)?,
            instance_info: r.get(5)?,
            driver_info: r.get(6)?,
            driver_internal_info: r.get(7)?,
            inventory: r.get(8)?,
            inspection_data: r.get(9)?,
            last_error: r.get(10)?,
            created_at: r.get(11)?,
            updated_at: r.get(12)?,
            target_provision_state: r.get(13)?,
            clean_step: r.get(14)?,
            target_raid_config: r.get(15)?,
            raid_config: r.get(16)?,
            disable_power_off: r.get(17)?,
        })
    }

    fn decode(self) -> Result<Node, StoreError> {
        let id = self.uuid.as_str();
        Ok(Node {
            uuid: parse_uuid(id, "uuid")?,
            provision_state: self
                .provision_state
                .parse::<ProvisionState>()
                .map_err(|e| StoreError::Corrupt {
                    node: id.to_string(),
                    column: "provision_state",
                    detail: e.to_string(),
                })?,
            power_state: self
                .power_state
                .as_deref()
                .map(|s| decode(id, "power_state", s))
                .transpose()?,
            properties: decode(id, "properties", &self.properties)?,
            instance_info: decode(id, "instance_info", &self.instance_info)?,
            driver_info: decode(id, "driver_info", &self.driver_info)?,
            driver_internal_info: decode(id, "driver_internal_info", &self.driver_internal_info)?,
            inventory: self
                .inventory
                .as_deref()
                .map(|s| decode(id, "inventory", s))
                .transpose()?,
            inspection_data: self
                .inspection_data
                .as_deref()
                .map(|s| decode(id, "inspection_data", s))
                .transpose()?,
            created_at: parse_time(&self.created_at, id, "created_at")?,
            updated_at: self
                .updated_at
                .as_deref()
                .map(|s| parse_time(s, id, "updated_at"))
                .transpose()?,
            target_provision_state: self
                .target_provision_state
                .as_deref()
                .map(|s| {
                    s.parse::<ProvisionState>()
                        .map_err(|e| StoreError::Corrupt {
                            node: id.to_string(),
                            column: "target_provision_state",
                            detail: e.to_string(),
                        })
                })
                .transpose()?,
            clean_step: self
                .clean_step
                .as_deref()
                .map(|s| decode(id, "clean_step", s))
                .transpose()?,
            target_raid_config: decode(id, "target_raid_config", &self.target_raid_config)?,
            raid_config: decode(id, "raid_config", &self.raid_config)?,
            disable_power_off: self.disable_power_off,
            name: self.name,
            last_error: self.last_error,
        })
    }
}

fn decode<T: DeserializeOwned>(
    node: &str,
    column: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        node: node.to_string(),
        column,
        detail: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode(what, e))
}

fn encode_opt<T: Serialize>(
    value: &Option<T>,
    what: &'static str,
) -> Result<Option<String>, StoreError> {
    value.as_ref().map(|v| encode(v, what)).transpose()
}

fn parse_uuid(text: &str, column: &'static str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt {
        node: text.to_string(),
        column,
        detail: e.to_string(),
    })
}

fn parse_time(text: &str, node: &str, column: &'static str) -> Result<OffsetDateTime, StoreError> {
    timefmt::parse(text).map_err(|e| StoreError::Corrupt {
        node: node.to_string(),
        column,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn new_node(name: &str, macs: &[&str]) -> NewNode {
        NewNode {
            name: Some(name.to_string()),
            macs: macs.iter().map(|m| m.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn create_and_find() {
        let mut store = Store::open_in_memory().unwrap();
        let node = store
            .create_node(new_node("n1", &["02:FC:00:00:00:01", "02:fc:00:00:00:02"]))
            .unwrap();
        assert_eq!(store.get_node("n1").unwrap().uuid, node.uuid);
        assert_eq!(store.get_node(&node.uuid.to_string()).unwrap(), node);
        let by_mac = store
            .node_by_macs(&["02:fc:00:00:00:02".to_string()])
            .unwrap()
            .unwrap();
        assert_eq!(by_mac.uuid, node.uuid);
        assert!(
            store
                .node_by_macs(&["02:fc:00:00:00:09".to_string()])
                .unwrap()
                .is_none()
        );
        let ports = store.ports(node.uuid).unwrap();
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().any(|p| p.address == "02:fc:00:00:00:01"));
        let err = store.get_node("missing").unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.to_string(), "node missing not found");
    }

    #[test]
    fn rejects_duplicates_and_bad_input() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .create_node(new_node("n1", &["02:fc:00:00:00:01"]))
            .unwrap();
        assert!(matches!(
            store.create_node(new_node("n1", &[])),
            Err(StoreError::DuplicateName(_))
        ));
        assert!(matches!(
            store.create_node(new_node("n2", &["02:FC:00:00:00:01"])),
            Err(StoreError::DuplicateMac(_))
        ));
        assert!(matches!(
            store.create_node(new_node("n3", &["zz"])),
            Err(StoreError::InvalidMac(_))
        ));
        // Nothing half-created.
        assert_eq!(store.list_nodes().unwrap().len(), 1);
        let other = store
            .create_node(new_node("n4", &["02:fc:00:00:00:04"]))
            .unwrap();
        assert!(matches!(
            store.node_by_macs(&["02:fc:00:00:00:01".into(), "02:fc:00:00:00:04".into()]),
            Err(StoreError::AmbiguousPorts(_))
        ));
        store.add_port(other.uuid, "02:fc:00:00:00:05").unwrap();
        assert_eq!(store.ports(other.uuid).unwrap().len(), 2);
    }

    #[test]
    fn delete_cascades_to_ports() {
        let mut store = Store::open_in_memory().unwrap();
        let node = store
            .create_node(new_node("n1", &["02:fc:00:00:00:01"]))
            .unwrap();
        store.delete_node("n1").unwrap();
        assert!(store.ports(node.uuid).unwrap().is_empty());
        assert!(
            store
                .node_by_macs(&["02:fc:00:00:00:01".to_string()])
                .unwrap()
                .is_none()
        );
        assert!(store.delete_node("n1").unwrap_err().is_not_found());
        // The MAC is free again.
        store
            .create_node(new_node("n2", &["02:fc:00:00:00:01"]))
            .unwrap();
    }

    #[test]
    fn update_is_transactional() {
        let mut store = Store::open_in_memory().unwrap();
        let node = store.create_node(new_node("n1", &[])).unwrap();
        store
            .update_node(node.uuid, |n| {
                n.provision_state = ProvisionState::DeployWait;
                n.driver_internal_info.agent_url = Some("http://x:9999".into());
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let failed: Result<(), StoreError> = store.update_node(node.uuid, |n| {
            n.provision_state = ProvisionState::Active;
            Err(StoreError::Task("boom".into()))
        });
        assert!(failed.is_err());
        let node = store.get_node("n1").unwrap();
        assert_eq!(node.provision_state, ProvisionState::DeployWait);
        assert_eq!(
            node.driver_internal_info.agent_url.as_deref(),
            Some("http://x:9999")
        );
        assert!(node.updated_at.is_some());
    }

    #[test]
    fn reopen_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shim.sqlite");
        let uuid = {
            let mut store = Store::open(&path).unwrap();
            let mut new = new_node("persist", &["02:fc:00:00:00:01"]);
            new.properties = json!({"cpus": 4}).as_object().unwrap().clone();
            let node = store.create_node(new).unwrap();
            store
                .update_node(node.uuid, |n| {
                    n.inventory = Some(json!({"interfaces": []}));
                    Ok::<_, StoreError>(())
                })
                .unwrap();
            node.uuid
        };
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let node = store.get_node("persist").unwrap();
        assert_eq!(node.uuid, uuid);
        assert_eq!(node.properties["cpus"], json!(4));
        assert_eq!(node.inventory, Some(json!({"interfaces": []})));
        assert_eq!(store.ports(uuid).unwrap().len(), 1);
        // A second connection to the same file works concurrently.
        let other = Store::open(&path).unwrap();
        assert_eq!(other.list_nodes().unwrap().len(), 1);
    }

    #[test]
    fn migrates_version_1_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shim.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO nodes (uuid, name, provision_state, driver_internal_info, created_at) \
                 VALUES ('8c2e0381-7dd8-49bb-aea8-47445bf88872', 'old', 'manageable', \
                 '{\"agent_url\": \"http://x:9999\"}', '2026-01-02T03:04:05Z')",
                [],
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert!(!store.get_node("old").unwrap().disable_power_off);
        let node = store.get_node("old").unwrap();
        assert_eq!(node.provision_state, ProvisionState::Manageable);
        assert_eq!(
            node.driver_internal_info.agent_url.as_deref(),
            Some("http://x:9999")
        );
        assert!(node.target_provision_state.is_none() && node.clean_step.is_none());
        assert!(node.target_raid_config.is_empty() && node.raid_config.is_empty());
        let raid = json!({"logical_disks": [{"size_gb": "MAX", "raid_level": "1"}]});
        store
            .update_node(node.uuid, |n| {
                n.target_provision_state = Some(ProvisionState::Available);
                n.target_raid_config = raid.as_object().unwrap().clone();
                Ok::<_, StoreError>(())
            })
            .unwrap();
        drop(store);
        let node = Store::open(&path).unwrap().get_node("old").unwrap();
        assert_eq!(node.target_provision_state, Some(ProvisionState::Available));
        assert_eq!(
            node.target_raid_config["logical_disks"][0]["raid_level"],
            "1"
        );
    }

    #[test]
    fn disable_power_off_round_trips() {
        let mut store = Store::open_in_memory().unwrap();
        let node = store
            .create_node(NewNode {
                disable_power_off: true,
                ..new_node("keep-on", &[])
            })
            .unwrap();
        assert!(store.get_node("keep-on").unwrap().disable_power_off);
        store
            .update_node(node.uuid, |n| {
                n.disable_power_off = false;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert!(!store.get_node("keep-on").unwrap().disable_power_off);
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shim.sqlite");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn finds_by_bmc_address() {
        let mut store = Store::open_in_memory().unwrap();
        let mut new = new_node("bmc", &[]);
        new.driver_info = json!({"redfish_address": "https://192.0.2.200:8000/redfish/v1"})
            .as_object()
            .unwrap()
            .clone();
        let node = store.create_node(new).unwrap();
        let found = store
            .node_by_bmc_address(&["192.0.2.200".to_string()])
            .unwrap()
            .unwrap();
        assert_eq!(found.uuid, node.uuid);
        assert!(
            store
                .node_by_bmc_address(&["192.0.2.201".to_string()])
                .unwrap()
                .is_none()
        );
        assert_eq!(bmc_host("https://[fd00::1]:443/x"), "fd00::1");
        assert_eq!(bmc_host("fd00::1"), "fd00::1");
        assert_eq!(bmc_host("10.0.0.1:623"), "10.0.0.1");
    }
}
