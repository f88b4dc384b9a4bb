//! `target_raid_config` as Ironic sends it, parsed and validated before anything is touched.
//!
//! Every problem is collected, so the operator sees all of them at once, e.g.
//! `Could not validate Software RAID config for <node>: the first logical disk must be RAID-1
//! (got "0"); logical disk 2: raid_level "7" is not supported (use 0, 1, 1+0, 5 or 6)`.

use std::fmt;

use serde_json::{Map, Value};

/// The levels the second logical disk may use (the first is always RAID-1).
const SECOND_LEVELS: &[RaidLevel] = &[
    RaidLevel::Raid0,
    RaidLevel::Raid1,
    RaidLevel::Raid10,
    RaidLevel::Raid5,
    RaidLevel::Raid6,
];

/// A software RAID level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaidLevel {
    /// Striping.
    Raid0,
    /// Mirroring.
    Raid1,
    /// Ironic's `1+0` (mdadm level 10).
    Raid10,
    /// Striping with parity.
    Raid5,
    /// Striping with double parity.
    Raid6,
}

impl RaidLevel {
    fn parse(text: &str) -> Option<RaidLevel> {
        Some(match text {
            "0" => RaidLevel::Raid0,
            "1" => RaidLevel::Raid1,
            "1+0" | "10" => RaidLevel::Raid10,
            "5" => RaidLevel::Raid5,
            "6" => RaidLevel::Raid6,
            _ => return None,
        })
    }

    /// The `--level` argument of `mdadm --create`.
    pub fn mdadm_level(self) -> &'static str {
        match self {
            RaidLevel::Raid0 => "0",
            RaidLevel::Raid1 => "1",
            RaidLevel::Raid10 => "10",
            RaidLevel::Raid5 => "5",
            RaidLevel::Raid6 => "6",
        }
    }

    /// The fewest member devices the level works with.
    pub fn min_devices(self) -> usize {
        match self {
            RaidLevel::Raid0 | RaidLevel::Raid1 | RaidLevel::Raid10 => 2,
            RaidLevel::Raid5 => 3,
            RaidLevel::Raid6 => 4,
        }
    }
}

impl fmt::Display for RaidLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RaidLevel::Raid10 => "1+0",
            other => other.mdadm_level(),
        })
    }
}

/// A logical disk's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// This many GiB.
    Gib(u64),
    /// The rest of the member disks (`"MAX"`).
    Max,
}

/// One software logical disk.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalDisk {
    /// Size.
    pub size: Size,
    /// RAID level.
    pub level: RaidLevel,
    /// `volume_name`: the md array's name (default `md<index>`).
    pub volume_name: Option<String>,
    /// `is_root_volume`.
    pub is_root_volume: Option<bool>,
    /// `physical_disks`: one device-hint object per member (absent: every disk).
    pub physical_disks: Option<Vec<Map<String, Value>>>,
}

/// A validated software RAID configuration (one or two logical disks).
#[derive(Debug, Clone, PartialEq)]
pub struct RaidConfig {
    /// The logical disks in Ironic's order.
    pub logical_disks: Vec<LogicalDisk>,
}

/// What parsing found.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// No logical disk asks for `controller: software`: nothing for the agent to do.
    NotSoftware,
    /// A software RAID configuration.
    Software(RaidConfig),
}

/// What validation needs to know about the machine and node.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// How many disks the machine has (RAID 5 needs 3, RAID 6 needs 4).
    pub disk_count: usize,
    /// Whether `properties.skip_block_devices` names RAID volumes (then every logical disk
    /// needs a `volume_name`).
    pub skip_list_names_volumes: bool,
}

/// Parses and validates `raid_config` (the node's `target_raid_config` or the
/// `apply_configuration` argument). All problems are reported together in one message.
pub fn parse(raid_config: &Value, facts: &Facts) -> Result<Parsed, String> {
    let Value::Object(obj) = raid_config else {
        return Err(format!(
            "the RAID configuration must be an object with `logical_disks`, got {}",
            kind_of(raid_config)
        ));
    };
    let disks = match obj.get("logical_disks") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err("RAID config contains no logical disks".to_string());
        }
        Some(other) => {
            return Err(format!(
                "`logical_disks` must be a list, got {}",
                kind_of(other)
            ));
        }
    };
    let software = |d: &Value| d.get("controller").and_then(Value::as_str) == Some("software");
    if !disks.iter().any(software) {
        return Ok(Parsed::NotSoftware);
    }
    let mut errors = Vec::new();
    if !(1..=2).contains(&disks.len()) {
        errors.push(format!(
            "software RAID takes one or two logical disks, got {}",
            disks.len()
        ));
    }
    let mut parsed = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        match logical_disk(d, i + 1) {
            Ok(ld) => parsed.push(ld),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if parsed.len() == disks.len() {
        check_combination(&parsed, facts, &mut errors);
    }
    if errors.is_empty() {
        Ok(Parsed::Software(RaidConfig {
            logical_disks: parsed,
        }))
    } else {
        Err(errors.join("; "))
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One logical disk; its problems prefixed with `logical disk <n>`.
fn logical_disk(d: &Value, n: usize) -> Result<LogicalDisk, Vec<String>> {
    let Value::Object(m) = d else {
        return Err(vec![format!(
            "logical disk {n} must be an object, got {}",
            kind_of(d)
        )]);
    };
    let mut errors = Vec::new();
    let mut err = |msg: String| errors.push(format!("logical disk {n}: {msg}"));
    if m.get("controller").and_then(Value::as_str) != Some("software") {
        err("every logical disk of a software RAID needs \"controller\": \"software\"".into());
    }
    let size = match m.get("size_gb") {
        Some(Value::String(s)) if s == "MAX" => Some(Size::Max),
        Some(Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(g) if g > 0 => Some(Size::Gib(g)),
            _ => {
                err(format!(
                    "size_gb must be a positive number of GiB or \"MAX\", got {s:?}"
                ));
                None
            }
        },
        Some(Value::Number(num)) => match num.as_u64() {
            Some(g) if g > 0 => Some(Size::Gib(g)),
            _ => {
                err(format!(
                    "size_gb must be a positive number of GiB or \"MAX\", got {num}"
                ));
                None
            }
        },
        None => {
            err("size_gb is missing (a number of GiB or \"MAX\")".into());
            None
        }
        Some(other) => {
            err(format!(
                "size_gb must be a positive number of GiB or \"MAX\", got {}",
                kind_of(other)
            ));
            None
        }
    };
    let level = match m.get("raid_level") {
        Some(Value::String(s)) => RaidLevel::parse(s).or_else(|| {
            err(format!(
                "raid_level {s:?} is not supported (use 0, 1, 1+0, 5 or 6)"
            ));
            None
        }),
        Some(Value::Number(num)) => RaidLevel::parse(&num.to_string()).or_else(|| {
            err(format!(
                "raid_level {num} is not supported (use 0, 1, 1+0, 5 or 6)"
            ));
            None
        }),
        None => {
            err("raid_level is missing".into());
            None
        }
        Some(other) => {
            err(format!(
                "raid_level must be a string, got {}",
                kind_of(other)
            ));
            None
        }
    };
    let volume_name = match m.get("volume_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if valid_volume_name(s) => Some(s.clone()),
        Some(Value::String(s)) => {
            err(format!(
                "volume_name {s:?} must be 1-32 characters of letters, digits, '-', '_' or '.'"
            ));
            None
        }
        Some(other) => {
            err(format!(
                "volume_name must be a string, got {}",
                kind_of(other)
            ));
            None
        }
    };
    let is_root_volume = match m.get("is_root_volume") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            err(format!(
                "is_root_volume must be true or false, got {}",
                kind_of(other)
            ));
            None
        }
    };
    let physical_disks = match m.get("physical_disks") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            if items.len() < 2 {
                err(
                    "physical_disks must list at least 2 disks, each as device hints \
                     (e.g. {\"name\": \"/dev/sda\"})"
                        .into(),
                );
            }
            let hints: Vec<Map<String, Value>> = items
                .iter()
                .filter_map(|i| i.as_object().cloned())
                .collect();
            if hints.len() != items.len() {
                err("physical_disks must be a list of device hints (objects)".into());
            }
            Some(hints)
        }
        Some(other) => {
            err(format!(
                "physical_disks must be a list of device hints, got {}",
                kind_of(other)
            ));
            None
        }
    };
    match (size, level, errors.is_empty()) {
        (Some(size), Some(level), true) => Ok(LogicalDisk {
            size,
            level,
            volume_name,
            is_root_volume,
            physical_disks,
        }),
        _ => Err(errors),
    }
}

/// mdadm array names: keep them to what `--name` and /dev/md/<name> accept.
fn valid_volume_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Rules across logical disks.
fn check_combination(disks: &[LogicalDisk], facts: &Facts, errors: &mut Vec<String>) {
    if let Some(first) = disks.first()
        && first.level != RaidLevel::Raid1
    {
        errors.push(format!(
            "the first logical disk must be RAID-1 (got \"{}\")",
            first.level
        ));
    }
    if let Some(second) = disks.get(1) {
        if !SECOND_LEVELS.contains(&second.level) {
            errors.push(format!("raid level {} is not supported", second.level));
        }
        if disks.iter().all(|d| d.size == Size::Max) {
            errors.push("only one logical disk may have size_gb \"MAX\"".into());
        }
    }
    for (i, d) in disks.iter().enumerate() {
        let members = d.physical_disks.as_ref().map_or(facts.disk_count, Vec::len);
        if members < d.level.min_devices() {
            errors.push(format!(
                "logical disk {}: RAID {} needs at least {} disks, {} {}",
                i + 1,
                d.level,
                d.level.min_devices(),
                if d.physical_disks.is_some() {
                    "physical_disks lists"
                } else {
                    "the machine has"
                },
                members
            ));
        }
    }
    let mut names = Vec::new();
    for d in disks {
        match &d.volume_name {
            Some(n) if names.contains(&n) => {
                errors.push(format!("duplicate volume_name {n:?}"));
            }
            Some(n) if n == "esp" => {
                errors.push(
                    "volume_name \"esp\" is reserved for the mirrored EFI system partition".into(),
                );
            }
            Some(n) => names.push(n),
            None if facts.skip_list_names_volumes => errors.push(
                "every logical disk needs a volume_name because properties.skip_block_devices \
                 names RAID volumes"
                    .into(),
            ),
            None => {}
        }
    }
    if disks
        .iter()
        .filter(|d| d.is_root_volume == Some(true))
        .count()
        > 1
    {
        errors.push("only one logical disk may be marked is_root_volume".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(n: usize) -> Facts {
        Facts {
            disk_count: n,
            skip_list_names_volumes: false,
        }
    }

    fn ok(v: Value) -> RaidConfig {
        match parse(&v, &facts(3)) {
            Ok(Parsed::Software(c)) => c,
            other => panic!("{v}: {other:?}"),
        }
    }

    fn err(v: Value, n: usize) -> String {
        match parse(&v, &facts(n)) {
            Err(e) => e,
            other => panic!("{v}: accepted as {other:?}"),
        }
    }

    #[test]
    fn ironic_example_parses() {
        let c = ok(json!({"logical_disks": [
            {"size_gb": 100, "raid_level": "1", "controller": "software", "volume_name": "root",
             "is_root_volume": true, "physical_disks": [{"name": "/dev/sda"}, {"name": "/dev/sdb"}]},
            {"size_gb": "MAX", "raid_level": "0", "controller": "software"}]}));
        assert_eq!(c.logical_disks.len(), 2);
        assert_eq!(c.logical_disks[0].size, Size::Gib(100));
        assert_eq!(c.logical_disks[0].level, RaidLevel::Raid1);
        assert_eq!(c.logical_disks[0].volume_name.as_deref(), Some("root"));
        assert_eq!(c.logical_disks[0].is_root_volume, Some(true));
        assert_eq!(c.logical_disks[1].size, Size::Max);
        assert_eq!(c.logical_disks[1].level, RaidLevel::Raid0);
        let c = ok(json!({"logical_disks": [
            {"size_gb": "10", "raid_level": "1", "controller": "software"},
            {"size_gb": "MAX", "raid_level": "1+0", "controller": "software"}]}));
        assert_eq!(c.logical_disks[1].level.mdadm_level(), "10");
    }

    #[test]
    fn hardware_raid_is_not_ours() {
        let v = json!({"logical_disks": [{"size_gb": 10, "raid_level": "5", "controller": "megaraid"}]});
        assert_eq!(parse(&v, &facts(2)), Ok(Parsed::NotSoftware));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = err(
            json!({"logical_disks": [
                {"size_gb": "MAX", "raid_level": "0", "controller": "software", "volume_name": "a"},
                {"size_gb": "MAX", "raid_level": "6", "controller": "software", "volume_name": "a"}]}),
            3,
        );
        assert!(
            e.contains("the first logical disk must be RAID-1 (got \"0\")"),
            "{e}"
        );
        assert!(
            e.contains("only one logical disk may have size_gb \"MAX\""),
            "{e}"
        );
        assert!(
            e.contains("RAID 6 needs at least 4 disks, the machine has 3"),
            "{e}"
        );
        assert!(e.contains("duplicate volume_name \"a\""), "{e}");
    }

    #[test]
    fn malformed_fields_get_clear_messages() {
        for (v, want) in [
            (json!({}), "RAID config contains no logical disks"),
            (json!([]), "must be an object"),
            (
                json!({"logical_disks": {}}),
                "`logical_disks` must be a list",
            ),
            (
                json!({"logical_disks": [{"size_gb": -1, "raid_level": "1", "controller": "software"}]}),
                "size_gb must be a positive number",
            ),
            (
                json!({"logical_disks": [{"size_gb": "big", "raid_level": "1", "controller": "software"}]}),
                "got \"big\"",
            ),
            (
                json!({"logical_disks": [{"size_gb": 1, "raid_level": "7", "controller": "software"}]}),
                "raid_level \"7\" is not supported",
            ),
            (
                json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "controller": "software",
                    "physical_disks": [{"name": "/dev/sda"}]}]}),
                "physical_disks must list at least 2 disks",
            ),
            (
                json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "controller": "software",
                    "physical_disks": ["/dev/sda", "/dev/sdb"]}]}),
                "must be a list of device hints (objects)",
            ),
            (
                json!({"logical_disks": [
                    {"size_gb": 1, "raid_level": "1", "controller": "software"},
                    {"size_gb": 1, "raid_level": "0", "controller": "hw"}]}),
                "logical disk 2: every logical disk of a software RAID needs",
            ),
            (
                json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "controller": "software",
                    "volume_name": "a b"}]}),
                "volume_name \"a b\" must be",
            ),
            (
                json!({"logical_disks": [
                    {"size_gb": 1, "raid_level": "1", "controller": "software", "is_root_volume": true},
                    {"size_gb": 1, "raid_level": "1", "controller": "software", "is_root_volume": true}]}),
                "only one logical disk may be marked is_root_volume",
            ),
            (
                json!({"logical_disks": [{"size_gb": 1, "raid_level": "1", "controller": "software"},
                    {"size_gb": 1, "raid_level": "1", "controller": "software"},
                    {"size_gb": 1, "raid_level": "1", "controller": "software"}]}),
                "one or two logical disks, got 3",
            ),
        ] {
            let e = err(v.clone(), 3);
            assert!(e.contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn raid5_needs_three_disks_and_volume_names_when_skip_list_names_volumes() {
        let v = json!({"logical_disks": [
            {"size_gb": 1, "raid_level": "1", "controller": "software"},
            {"size_gb": "MAX", "raid_level": "5", "controller": "software"}]});
        assert!(err(v.clone(), 2).contains("RAID 5 needs at least 3 disks, the machine has 2"));
        let f = Facts {
            disk_count: 3,
            skip_list_names_volumes: true,
        };
        let e = parse(&v, &f).err().unwrap_or_default();
        assert!(e.contains("needs a volume_name"), "{e}");
    }
}
