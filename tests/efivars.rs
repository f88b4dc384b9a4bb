//! Read the UEFI variables a VM left in its EDK2 variable-store flash image (the writable copy of
//! `OVMF_VARS_4M.fd` or `AAVMF_VARS.fd` given to QEMU as the second pflash unit), so that a test
//! can check, once QEMU has exited, the boot entries the guest's `efibootmgr` created.
//!
//! Layout, from EDK2's `MdePkg/Include/Pi/PiFirmwareVolume.h` and
//! `MdeModulePkg/Include/Guid/VariableFormat.h` (all integers little-endian):
//!
//! * a firmware volume header (`EFI_FIRMWARE_VOLUME_HEADER`): its signature `_FVH` is at byte 40
//!   and its `HeaderLength` (u16) at byte 48; the variable store starts `HeaderLength` bytes after
//!   the start of the volume;
//! * the variable store header (`VARIABLE_STORE_HEADER`, 28 bytes): signature GUID
//!   (`EFI_AUTHENTICATED_VARIABLE_GUID` or `EFI_VARIABLE_GUID`, which selects the variable header
//!   format), `Size` u32 (header included), `Format` u8 (0x5A once formatted), `State` u8,
//!   6 reserved bytes;
//! * the variables, each header starting on a 4-byte boundary (`HEADER_ALIGNMENT`): `StartId`
//!   u16 (0x55AA), `State` u8, reserved u8, `Attributes` u32, then for the authenticated format
//!   `MonotonicCount` u64, `TimeStamp` (16 bytes) and `PubKeyIndex` u32, then `NameSize` u32,
//!   `DataSize` u32 and `VendorGuid`; the UTF-16LE NUL-terminated name follows, then the data
//!   right after it (no padding in between: EDK2's `GET_PAD_SIZE` aligns to 1 byte except on
//!   Itanium), then erased bytes up to the next 4-byte boundary. The first header whose `StartId`
//!   is not 0x55AA (0xFFFF: erased flash) ends the list.
//!
//! EDK2 never rewrites a variable in place: it appends the new copy and clears bits of the old
//! one's `State` (`VAR_ADDED` 0x3F, then `& VAR_IN_DELETED_TRANSITION` 0xFE gives 0x3E, then
//! `& VAR_DELETED` 0xFD gives 0x3C). As in EDK2's `FindVariableEx`, a variable is live when its
//! state is exactly `VAR_ADDED`, or when it is `VAR_ADDED & VAR_IN_DELETED_TRANSITION` and no
//! `VAR_ADDED` copy with the same name and GUID exists (an update interrupted half-way).
//!
//! Debian's pristine `AAVMF_VARS.fd` is all zeros: the aarch64 firmware formats the store on its
//! first boot, so only a file a VM has run with holds a store; [`parse_store`] says "blank" then.
//!
//! GUIDs are handled as text in canonical lower-case form
//! (`8be4df61-93ca-11d2-aa0d-00e098032b8c`), decoded from the EFI binary layout (first three
//! fields little-endian, the last eight bytes in order).

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail, ensure};

/// `EFI_GLOBAL_VARIABLE`: the vendor GUID of `Boot####`, `BootOrder` and the other standard
/// variables.
pub const EFI_GLOBAL_VARIABLE_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// Signature of a variable store whose variables carry authenticated headers (what OVMF and
/// AAVMF use).
pub const EFI_AUTHENTICATED_VARIABLE_GUID: &str = "aaf32c78-947b-439a-a180-2e144ec37792";
/// Signature of a variable store with the older, non-authenticated variable headers.
pub const EFI_VARIABLE_GUID: &str = "ddcf3616-3275-4164-98b6-fe85707ffe7d";

/// Offset of the `_FVH` signature in a firmware volume header.
const FV_SIGNATURE_OFFSET: usize = 40;
/// Offset of the `HeaderLength` field in a firmware volume header.
const FV_HEADER_LENGTH_OFFSET: usize = 48;
/// Size of the fixed part of a firmware volume header (before its block map).
const FV_FIXED_HEADER_LEN: usize = 56;
/// Size of `VARIABLE_STORE_HEADER`.
const STORE_HEADER_LEN: usize = 28;
/// `VARIABLE_STORE_FORMATTED`.
const VARIABLE_STORE_FORMATTED: u8 = 0x5a;
/// `VARIABLE_DATA`: the `StartId` of every variable header.
const VARIABLE_START_ID: u16 = 0x55aa;
/// `VAR_ADDED`: the state of a live variable.
const VAR_ADDED: u8 = 0x3f;
/// `VAR_IN_DELETED_TRANSITION`: cleared bits while a newer copy is being written.
const VAR_IN_DELETED_TRANSITION: u8 = 0xfe;
/// Size of `AUTHENTICATED_VARIABLE_HEADER`.
const AUTH_VARIABLE_HEADER_LEN: usize = 60;
/// Size of `VARIABLE_HEADER`.
const VARIABLE_HEADER_LEN: usize = 32;

/// `LOAD_OPTION_ACTIVE`: attribute bit of an enabled boot entry.
const LOAD_OPTION_ACTIVE: u32 = 0x1;

/// One UEFI variable read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The variable's name (`Boot0000`, `BootOrder`, …).
    pub name: String,
    /// The vendor GUID, canonical lower-case text (`8be4df61-93ca-11d2-aa0d-00e098032b8c`).
    pub guid: String,
    /// `EFI_VARIABLE_*` attribute bits (0x7 = non-volatile, boot-service and runtime access).
    pub attributes: u32,
    /// The variable's value.
    pub data: Vec<u8>,
}

/// A `Boot####` variable decoded as an `EFI_LOAD_OPTION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// The `####` of `Boot####`.
    pub number: u16,
    /// `LOAD_OPTION_ACTIVE` is set (efibootmgr marks such entries with `*`).
    pub active: bool,
    /// The entry's description (what `efibootmgr` lists as its label).
    pub description: String,
    /// The device path as text, nodes joined with `/`, e.g.
    /// `HD(1,GPT,<guid>,0x800,0x18000)/File(\EFI\debian\grubx64.efi)`; instances of a
    /// multi-instance path are separated by `,`, and a malformed path ends with `…` after what
    /// could be read.
    pub device_path: String,
    /// The nodes of [`BootEntry::device_path`] (end-of-instance nodes included, the final end
    /// node not).
    pub nodes: Vec<DevicePathNode>,
    /// Whatever follows the device path in the load option (often empty).
    pub optional_data: Vec<u8>,
}

/// One node of an EFI device path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePathNode {
    /// The node type (1 hardware, 2 ACPI, 3 messaging, 4 media, 5 BIOS boot, 0x7f end).
    pub node_type: u8,
    /// The node sub-type.
    pub sub_type: u8,
    /// The node's bytes after its 4-byte header.
    pub data: Vec<u8>,
}

/// Reads a variable-store flash image and returns its live variables, in store order.
pub fn read_store(path: &Path) -> anyhow::Result<Vec<Variable>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_store(&bytes).with_context(|| format!("parsing UEFI variable store {}", path.display()))
}

/// Finds the EDK2 variable store in a flash image and returns its live variables, in store order
/// (deleted copies and half-written headers left out).
pub fn parse_store(bytes: &[u8]) -> anyhow::Result<Vec<Variable>> {
    let walk = walk_store(bytes)?;
    let live = walk
        .records
        .iter()
        .filter(|(_, state, var)| {
            *state == VAR_ADDED
                || (*state == VAR_ADDED & VAR_IN_DELETED_TRANSITION
                    && !walk.records.iter().any(|(_, s, other)| {
                        *s == VAR_ADDED && other.name == var.name && other.guid == var.guid
                    }))
        })
        .map(|(_, _, var)| var.clone())
        .collect();
    Ok(live)
}

/// Where the variable store's free space is in a flash image: from the end of the last variable
/// to the end of the store (erased flash, 0xFF bytes, where EDK2 appends the next variable).
pub fn free_space(bytes: &[u8]) -> anyhow::Result<std::ops::Range<usize>> {
    let walk = walk_store(bytes)?;
    Ok(walk.free..walk.end)
}

/// The `Boot####` variables under [`EFI_GLOBAL_VARIABLE_GUID`], decoded and sorted by number.
/// A variable that is not a well-formed `EFI_LOAD_OPTION` is left out (use
/// [`parse_load_option`] to see why); of two live copies of one name, the first is kept.
pub fn boot_entries(vars: &[Variable]) -> Vec<BootEntry> {
    let mut entries: Vec<BootEntry> = Vec::new();
    for var in vars.iter().filter(|v| v.guid == EFI_GLOBAL_VARIABLE_GUID) {
        let Some(number) = boot_number(&var.name) else {
            continue;
        };
        if entries.iter().any(|e| e.number == number) {
            continue;
        }
        if let Ok(entry) = parse_load_option(number, &var.data) {
            entries.push(entry);
        }
    }
    entries.sort_by_key(|e| e.number);
    entries
}

/// `BootOrder` under [`EFI_GLOBAL_VARIABLE_GUID`] (an array of little-endian u16), `None` when
/// the variable does not exist; a trailing odd byte is ignored.
pub fn boot_order(vars: &[Variable]) -> Option<Vec<u16>> {
    let var = vars
        .iter()
        .find(|v| v.name == "BootOrder" && v.guid == EFI_GLOBAL_VARIABLE_GUID)?;
    Some(
        var.data
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}

/// Reads a variable-store flash image and returns its boot entries (sorted by number) and the
/// boot order (empty when there is no `BootOrder`).
pub fn read_boot_entries(path: &Path) -> anyhow::Result<(Vec<BootEntry>, Vec<u16>)> {
    let vars = read_store(path)?;
    Ok((boot_entries(&vars), boot_order(&vars).unwrap_or_default()))
}

/// Decodes an `EFI_LOAD_OPTION` (the value of `Boot####` number `number`): attributes u32,
/// `FilePathListLength` u16, NUL-terminated UTF-16LE description, the device path, then optional
/// data. Fails when the description has no terminator or the device path overruns the value;
/// malformed nodes inside the device path end its text with `…` instead.
pub fn parse_load_option(number: u16, data: &[u8]) -> anyhow::Result<BootEntry> {
    let attributes = le_u32(data, 0).context("load option shorter than its 6-byte header")?;
    let path_len = usize::from(le_u16(data, 4).context("load option shorter than its header")?);
    let mut units = Vec::new();
    let mut pos = 6;
    loop {
        let unit = le_u16(data, pos).context("load option description has no NUL terminator")?;
        pos += 2;
        if unit == 0 {
            break;
        }
        units.push(unit);
    }
    let path_end = pos
        .checked_add(path_len)
        .filter(|end| *end <= data.len())
        .with_context(|| {
            format!(
                "load option device path ({path_len} bytes at {pos}) overruns its {} bytes",
                data.len()
            )
        })?;
    let path = data.get(pos..path_end).unwrap_or_default();
    let (nodes, complete) = device_path_nodes(path);
    Ok(BootEntry {
        number,
        active: attributes & LOAD_OPTION_ACTIVE != 0,
        description: String::from_utf16_lossy(&units),
        device_path: render_nodes(&nodes, complete),
        nodes,
        optional_data: data.get(path_end..).unwrap_or_default().to_vec(),
    })
}

/// Splits a device path into its nodes, up to the end-of-path node (type 0x7f, sub-type 0xff).
/// The flag is false when the path is malformed (a node shorter than 4 bytes or longer than what
/// is left, or no end node): the nodes are those read before the fault.
pub fn device_path_nodes(bytes: &[u8]) -> (Vec<DevicePathNode>, bool) {
    let mut nodes = Vec::new();
    let mut rest = bytes;
    loop {
        let (Some(&node_type), Some(&sub_type), Some(len)) =
            (rest.first(), rest.get(1), le_u16(rest, 2))
        else {
            return (nodes, false);
        };
        let len = usize::from(len);
        if len < 4 || len > rest.len() {
            return (nodes, false);
        }
        if node_type == 0x7f && sub_type == 0xff {
            return (nodes, true);
        }
        let (node, tail) = rest.split_at(len);
        nodes.push(DevicePathNode {
            node_type,
            sub_type,
            data: node.get(4..).unwrap_or_default().to_vec(),
        });
        rest = tail;
    }
}

/// Renders a device path as text (see [`BootEntry::device_path`]).
pub fn device_path_text(bytes: &[u8]) -> String {
    let (nodes, complete) = device_path_nodes(bytes);
    render_nodes(&nodes, complete)
}

fn render_nodes(nodes: &[DevicePathNode], complete: bool) -> String {
    let mut out = String::new();
    for node in nodes {
        if node.is_instance_end() {
            out.push(',');
            continue;
        }
        if !out.is_empty() && !out.ends_with(',') {
            out.push('/');
        }
        out.push_str(&node.to_string());
    }
    if !complete {
        if !out.is_empty() && !out.ends_with(',') {
            out.push('/');
        }
        out.push('…');
    }
    out
}

impl DevicePathNode {
    fn is_instance_end(&self) -> bool {
        self.node_type == 0x7f && self.sub_type == 0x01
    }

    /// The GPT partition GUID of a hard-drive media node (type 4 sub-type 1, signature type 2).
    pub fn gpt_partition_guid(&self) -> Option<String> {
        let d = &self.data;
        if (self.node_type, self.sub_type) != (4, 1) || d.len() < 38 || d.get(37) != Some(&2) {
            return None;
        }
        guid_at(d, 20)
    }

    /// The path of a file-path media node (type 4 sub-type 4).
    pub fn file_path(&self) -> Option<String> {
        ((self.node_type, self.sub_type) == (4, 4)).then(|| utf16z(&self.data))
    }

    fn text(&self) -> Option<String> {
        let d = &self.data;
        Some(match (self.node_type, self.sub_type) {
            // PCI_DEVICE_PATH: function, then device.
            (1, 1) if d.len() == 2 => format!("Pci(0x{:x},0x{:x})", d[1], d[0]),
            // ACPI_HID_DEVICE_PATH: HID, UID.
            (2, 1) if d.len() == 8 => {
                let hid = le_u32(d, 0)?;
                let uid = le_u32(d, 4)?;
                // EISA_PNP_ID(0x0A03) (PCI) and EISA_PNP_ID(0x0A08) (PCI Express) root bridges.
                if hid == 0x0a03_41d0 || hid == 0x0a08_41d0 {
                    format!("PciRoot(0x{uid:x})")
                } else {
                    format!("Acpi(0x{hid:08x},0x{uid:x})")
                }
            }
            // SCSI_DEVICE_PATH: target, LUN.
            (3, 2) if d.len() == 4 => format!("Scsi(0x{:x},0x{:x})", le_u16(d, 0)?, le_u16(d, 2)?),
            // MAC_ADDR_DEVICE_PATH: 32-byte address, interface type (6 bytes for 0 and 1).
            (3, 11) if d.len() == 33 => {
                let if_type = d[32];
                let len = if if_type <= 1 { 6 } else { 32 };
                format!("MAC({},0x{if_type:x})", hex(d.get(..len)?))
            }
            // SATA_DEVICE_PATH: HBA port, port multiplier port, LUN.
            (3, 18) if d.len() == 6 => format!(
                "Sata(0x{:x},0x{:x},0x{:x})",
                le_u16(d, 0)?,
                le_u16(d, 2)?,
                le_u16(d, 4)?
            ),
            // NVME_NAMESPACE_DEVICE_PATH: namespace id, EUI-64 (printed most significant first).
            (3, 23) if d.len() == 12 => {
                let eui: Vec<String> = d
                    .get(4..12)?
                    .iter()
                    .rev()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("NVMe(0x{:x},{})", le_u32(d, 0)?, eui.join("-"))
            }
            // HARDDRIVE_DEVICE_PATH: number, start, size, signature, MBR type, signature type.
            (4, 1) if d.len() == 38 => {
                let number = le_u32(d, 0)?;
                let start = le_u64(d, 4)?;
                let size = le_u64(d, 12)?;
                let signature = match d[37] {
                    1 => format!("MBR,0x{:08x}", le_u32(d, 20)?),
                    2 => format!("GPT,{}", guid_at(d, 20)?),
                    other => format!("{other},0"),
                };
                format!("HD({number},{signature},0x{start:x},0x{size:x})")
            }
            // FILEPATH_DEVICE_PATH: NUL-terminated UTF-16LE path.
            (4, 4) => format!("File({})", utf16z(d)),
            // MEDIA_FW_VOL_FILEPATH_DEVICE_PATH and MEDIA_FW_VOL_DEVICE_PATH: a GUID.
            (4, 6) if d.len() == 16 => format!("FvFile({})", guid_at(d, 0)?),
            (4, 7) if d.len() == 16 => format!("Fv({})", guid_at(d, 0)?),
            _ => return None,
        })
    }
}

impl fmt::Display for DevicePathNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text() {
            Some(text) => f.write_str(&text),
            None => write!(
                f,
                "Path({},{},{})",
                self.node_type,
                self.sub_type,
                hex(&self.data)
            ),
        }
    }
}

impl BootEntry {
    /// The GPT partition GUID (lower-case canonical text) of the entry's hard-drive node.
    pub fn partition_guid(&self) -> Option<String> {
        self.nodes
            .iter()
            .find_map(DevicePathNode::gpt_partition_guid)
    }

    /// The file path (`\EFI\debian\grubx64.efi`) of the entry's file-path node(s): several
    /// consecutive nodes are joined the way EDK2 does, with one `\` between them.
    pub fn file(&self) -> Option<String> {
        let mut parts = self.nodes.iter().filter_map(DevicePathNode::file_path);
        let mut path = parts.next()?;
        for part in parts {
            match (path.ends_with('\\'), part.starts_with('\\')) {
                (true, true) => path.push_str(part.get(1..).unwrap_or_default()),
                (false, false) => {
                    path.push('\\');
                    path.push_str(&part);
                }
                _ => path.push_str(&part),
            }
        }
        Some(path)
    }
}

impl fmt::Display for BootEntry {
    /// Like a line of `efibootmgr -v`: `Boot0000* Marker OS`, a tab, `HD(…)/File(…)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Boot{:04X}{} {}\t{}",
            self.number,
            if self.active { "*" } else { " " },
            self.description,
            self.device_path
        )?;
        if !self.optional_data.is_empty() {
            write!(f, " [{} bytes of optional data]", self.optional_data.len())?;
        }
        Ok(())
    }
}

/// `Boot####` → `####`.
fn boot_number(name: &str) -> Option<u16> {
    let digits = name.strip_prefix("Boot")?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// Every variable record of the store, whatever its state.
struct StoreWalk {
    /// `(offset of the header in the image, State, variable)` in store order.
    records: Vec<(usize, u8, Variable)>,
    /// Offset in the image of the first byte after the last variable (free space, 0xFF when
    /// erased).
    free: usize,
    /// Offset in the image of the end of the variable store.
    end: usize,
}

/// Locates the variable store: `(offset of VARIABLE_STORE_HEADER, authenticated format)`.
fn find_store(bytes: &[u8]) -> anyhow::Result<(usize, bool)> {
    let mut from = FV_SIGNATURE_OFFSET;
    while let Some(found) = bytes
        .get(from..)
        .and_then(|rest| rest.windows(4).position(|w| w == b"_FVH"))
    {
        let signature = from + found;
        from = signature + 1;
        let fv = signature - FV_SIGNATURE_OFFSET;
        let Some(header_len) = le_u16(bytes, fv + FV_HEADER_LENGTH_OFFSET) else {
            continue;
        };
        let header_len = usize::from(header_len);
        if header_len < FV_FIXED_HEADER_LEN {
            continue;
        }
        let store = fv + header_len;
        match guid_at(bytes, store).as_deref() {
            Some(EFI_AUTHENTICATED_VARIABLE_GUID) => return Ok((store, true)),
            Some(EFI_VARIABLE_GUID) => return Ok((store, false)),
            _ => {}
        }
    }
    if let Some(&first) = bytes.first()
        && bytes.iter().all(|&b| b == first)
        && (first == 0 || first == 0xff)
    {
        bail!(
            "blank variable store ({} bytes, all 0x{first:02x}): not formatted yet (the firmware \
             formats it on its first boot)",
            bytes.len()
        );
    }
    bail!(
        "no EDK2 firmware volume (\"_FVH\") followed by a variable store header in {} bytes",
        bytes.len()
    )
}

fn walk_store(bytes: &[u8]) -> anyhow::Result<StoreWalk> {
    let (store, authenticated) = find_store(bytes)?;
    let size = le_u32(bytes, store + 16).context("truncated variable store header")?;
    let format = *bytes
        .get(store + 20)
        .context("truncated variable store header")?;
    ensure!(
        format == VARIABLE_STORE_FORMATTED,
        "variable store at {store:#x} is not formatted (format 0x{format:02x})"
    );
    let size = usize::try_from(size).context("variable store size")?;
    ensure!(
        size >= STORE_HEADER_LEN,
        "variable store at {store:#x} has an impossible size {size}"
    );
    // A truncated image is read as far as it goes.
    let end = store.saturating_add(size).min(bytes.len());
    let (header_len, name_size_at) = if authenticated {
        (AUTH_VARIABLE_HEADER_LEN, 36)
    } else {
        (VARIABLE_HEADER_LEN, 8)
    };
    let mut records = Vec::new();
    let mut pos = align4(store + STORE_HEADER_LEN);
    loop {
        let header = match pos.checked_add(header_len) {
            Some(header_end) if header_end <= end => bytes.get(pos..header_end),
            _ => None,
        };
        let Some(header) = header else {
            break;
        };
        if le_u16(header, 0) != Some(VARIABLE_START_ID) {
            break;
        }
        let state = header[2];
        let attributes = le_u32(header, 4).context("variable header")?;
        let name_size = le_u32(header, name_size_at).context("variable header")?;
        let data_size = le_u32(header, name_size_at + 4).context("variable header")?;
        let guid = guid_at(header, name_size_at + 8).context("variable header")?;
        let name_start = pos + header_len;
        let name_end = usize::try_from(name_size)
            .ok()
            .and_then(|n| name_start.checked_add(n));
        // No padding between name and data: EDK2's `GET_PAD_SIZE` uses `ALIGNMENT` 1 outside
        // Itanium; only headers are aligned.
        let data_start = name_end;
        let data_end = data_start.and_then(|start| {
            usize::try_from(data_size)
                .ok()
                .and_then(|n| start.checked_add(n))
        });
        let (Some(name_end), Some(data_start), Some(data_end)) = (name_end, data_start, data_end)
        else {
            bail!("variable at {pos:#x}: sizes overflow");
        };
        ensure!(
            data_end <= end,
            "variable at {pos:#x} (name {name_size} bytes, data {data_size} bytes) overruns the \
             store end {end:#x}"
        );
        let name = utf16z(bytes.get(name_start..name_end).unwrap_or_default());
        let data = bytes.get(data_start..data_end).unwrap_or_default().to_vec();
        records.push((
            pos,
            state,
            Variable {
                name,
                guid,
                attributes,
                data,
            },
        ));
        pos = align4(data_end);
    }
    Ok(StoreWalk {
        records,
        free: pos.min(end),
        end,
    })
}

fn align4(offset: usize) -> usize {
    offset.saturating_add(3) & !3
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The EFI GUID at `at` as canonical lower-case text.
fn guid_at(bytes: &[u8], at: usize) -> Option<String> {
    let b = bytes.get(at..at.checked_add(16)?)?;
    Some(format!(
        "{:08x}-{:04x}-{:04x}-{}-{}",
        le_u32(b, 0)?,
        le_u16(b, 4)?,
        le_u16(b, 6)?,
        hex(b.get(8..10)?),
        hex(b.get(10..16)?)
    ))
}

/// UTF-16LE up to the first NUL (or the end), invalid units replaced.
fn utf16z(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
    const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";
    const VAR_DELETED: u8 = 0xfd;
    /// `EFI_SYSTEM_NV_DATA_FV_GUID`, the file-system GUID of OVMF's variable volume.
    const NV_DATA_FV_GUID: &str = "fff12b8d-7696-4c8b-a985-2747075b4f50";
    const MARKER_PARTITION: &str = "0f7a9d3c-52b1-4c8e-9a2f-6d1e3b4c5a69";
    const MARKER_FILE: &str = r"\EFI\marker\grubx64.efi";
    /// NV | BS | RT.
    const NV_BS_RT: u32 = 0x7;

    /// Canonical GUID text → EFI binary layout.
    fn guid_bytes(text: &str) -> anyhow::Result<[u8; 16]> {
        let hexits: String = text.chars().filter(|c| *c != '-').collect();
        ensure!(hexits.len() == 32, "bad GUID {text}");
        let mut raw = [0u8; 16];
        for (i, byte) in raw.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hexits.get(2 * i..2 * i + 2).context("GUID")?, 16)?;
        }
        // The first three fields are stored little-endian.
        raw[..4].reverse();
        raw[4..6].reverse();
        raw[6..8].reverse();
        Ok(raw)
    }

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect()
    }

    fn pad4(bytes: &mut Vec<u8>) {
        while !bytes.len().is_multiple_of(4) {
            bytes.push(0xff);
        }
    }

    /// One authenticated variable record, padded to the next header boundary.
    fn auth_var(name: &str, guid: &str, state: u8, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let name = utf16(name);
        let mut out = Vec::new();
        out.extend(VARIABLE_START_ID.to_le_bytes());
        out.push(state);
        out.push(0);
        out.extend(NV_BS_RT.to_le_bytes());
        out.extend(0u64.to_le_bytes()); // MonotonicCount
        out.extend([0u8; 16]); // TimeStamp
        out.extend(0u32.to_le_bytes()); // PubKeyIndex
        out.extend(u32::try_from(name.len())?.to_le_bytes());
        out.extend(u32::try_from(data.len())?.to_le_bytes());
        out.extend(guid_bytes(guid)?);
        assert_eq!(out.len(), AUTH_VARIABLE_HEADER_LEN);
        out.extend(&name);
        out.extend(data);
        pad4(&mut out);
        Ok(out)
    }

    fn node(node_type: u8, sub_type: u8, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut out = vec![node_type, sub_type];
        out.extend(u16::try_from(data.len() + 4)?.to_le_bytes());
        out.extend(data);
        Ok(out)
    }

    fn hd_node(number: u32, start: u64, size: u64, guid: &str) -> anyhow::Result<Vec<u8>> {
        let mut data = Vec::new();
        data.extend(number.to_le_bytes());
        data.extend(start.to_le_bytes());
        data.extend(size.to_le_bytes());
        data.extend(guid_bytes(guid)?);
        data.extend([2, 2]); // MBRType: GPT, SignatureType: GUID
        node(4, 1, &data)
    }

    /// The `EFI_LOAD_OPTION` of the marker entry.
    fn marker_load_option(optional: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut path = hd_node(1, 0x800, 0x18000, MARKER_PARTITION)?;
        path.extend(node(4, 4, &utf16(MARKER_FILE))?);
        path.extend(node(0x7f, 0xff, &[])?);
        let mut out = Vec::new();
        out.extend(LOAD_OPTION_ACTIVE.to_le_bytes());
        out.extend(u16::try_from(path.len())?.to_le_bytes());
        out.extend(utf16("Marker OS"));
        out.extend(path);
        out.extend(optional);
        Ok(out)
    }

    /// The synthesized variables: live `Boot0000`, deleted `Boot0001`, live `BootOrder`.
    fn marker_variables() -> anyhow::Result<Vec<u8>> {
        let mut out = auth_var(
            "Boot0000",
            EFI_GLOBAL_VARIABLE_GUID,
            VAR_ADDED,
            &marker_load_option(b"opt\0")?,
        )?;
        let deleted = VAR_ADDED & VAR_IN_DELETED_TRANSITION & VAR_DELETED;
        assert_eq!(deleted, 0x3c);
        out.extend(auth_var(
            "Boot0001",
            EFI_GLOBAL_VARIABLE_GUID,
            deleted,
            &marker_load_option(&[])?,
        )?);
        out.extend(auth_var(
            "BootOrder",
            EFI_GLOBAL_VARIABLE_GUID,
            VAR_ADDED,
            &[0, 0, 3, 0],
        )?);
        Ok(out)
    }

    /// A firmware volume holding an authenticated variable store of `store_size` bytes (header
    /// included) that starts with `variables`, the rest erased (0xFF).
    fn synthesized_store(variables: &[u8], store_size: usize) -> anyhow::Result<Vec<u8>> {
        const HEADER_LEN: usize = 0x48;
        let fv_len = HEADER_LEN + store_size;
        let mut fv = vec![0u8; 16]; // ZeroVector
        fv.extend(guid_bytes(NV_DATA_FV_GUID)?);
        fv.extend(u64::try_from(fv_len)?.to_le_bytes());
        fv.extend(b"_FVH");
        fv.extend(0x0004_feffu32.to_le_bytes()); // Attributes, as in OVMF
        fv.extend(u16::try_from(HEADER_LEN)?.to_le_bytes());
        fv.extend(0u16.to_le_bytes()); // Checksum, fixed below
        fv.extend(0u16.to_le_bytes()); // ExtHeaderOffset
        fv.push(0); // Reserved
        fv.push(2); // Revision
        fv.extend(u32::try_from(fv_len / 0x10)?.to_le_bytes()); // BlockMap[0].NumBlocks
        fv.extend(0x10u32.to_le_bytes()); // BlockMap[0].Length
        fv.extend([0u8; 8]); // BlockMap terminator
        assert_eq!(fv.len(), HEADER_LEN);
        let sum = fv.chunks_exact(2).fold(0u16, |acc, c| {
            acc.wrapping_add(u16::from_le_bytes([c[0], c[1]]))
        });
        fv[50..52].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());

        fv.extend(guid_bytes(EFI_AUTHENTICATED_VARIABLE_GUID)?);
        fv.extend(u32::try_from(store_size)?.to_le_bytes());
        fv.extend([VARIABLE_STORE_FORMATTED, 0xfe, 0, 0, 0, 0, 0, 0]);
        fv.extend(variables);
        ensure!(fv.len() <= fv_len, "variables do not fit");
        fv.resize(fv_len, 0xff);
        Ok(fv)
    }

    fn read_firmware_file(path: &str, package: &str) -> anyhow::Result<Vec<u8>> {
        std::fs::read(path).with_context(|| {
            format!("{path} is missing or unreadable: install the Debian package `{package}`")
        })
    }

    #[test]
    fn pristine_ovmf_store_parses() -> anyhow::Result<()> {
        let bytes = read_firmware_file(OVMF_VARS, "ovmf")?;
        let free = free_space(&bytes)?;
        let vars = parse_store(&bytes)?;
        let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        eprintln!("{OVMF_VARS}: free space {free:#x?}, variables {names:?}");
        assert!(!free.is_empty());
        assert_eq!(boot_entries(&vars), Vec::new());
        Ok(())
    }

    #[test]
    fn pristine_aavmf_store_is_blank_or_parses() -> anyhow::Result<()> {
        let bytes = read_firmware_file(AAVMF_VARS, "qemu-efi-aarch64")?;
        assert_eq!(
            bytes.len(),
            64 << 20,
            "AAVMF variable files are 64 MiB flash images"
        );
        if bytes.iter().all(|&b| b == 0) {
            // Debian ships it blank: AAVMF formats the store on first boot.
            let err = format!(
                "{:#}",
                parse_store(&bytes).err().context("blank store parsed")?
            );
            assert!(err.contains("blank variable store"), "{err}");
            eprintln!("{AAVMF_VARS}: blank (all zeros), as expected: {err}");
        } else {
            let vars = parse_store(&bytes)?;
            let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
            eprintln!("{AAVMF_VARS}: variables {names:?}");
        }
        Ok(())
    }

    /// The Secure Boot variants hold a formatted store with enrolled keys: real stores with real
    /// variables, for both architectures.
    #[test]
    fn secure_boot_stores_parse() -> anyhow::Result<()> {
        for (path, package) in [
            ("/usr/share/OVMF/OVMF_VARS_4M.ms.fd", "ovmf"),
            ("/usr/share/AAVMF/AAVMF_VARS.ms.fd", "qemu-efi-aarch64"),
        ] {
            let vars = parse_store(&read_firmware_file(path, package)?)?;
            let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
            eprintln!("{path}: variables {names:?}");
            for key in ["PK", "KEK", "db", "dbx"] {
                assert!(names.contains(&key), "{path}: no {key} in {names:?}");
            }
            // Every Boot#### the firmware wrote decodes, with a well-formed device path.
            let boot_vars = names.iter().filter(|n| boot_number(n).is_some()).count();
            let entries = boot_entries(&vars);
            for entry in &entries {
                eprintln!("{path}: {entry}");
                assert!(!entry.device_path.contains('…'), "{path}: {entry}");
            }
            assert_eq!(entries.len(), boot_vars, "{path}");
            // Debian's images carry no BootOrder: the firmware rebuilds it on first boot.
            eprintln!("{path}: BootOrder {:?}", boot_order(&vars));
            let ui = entries
                .iter()
                .find(|e| e.description == "UiApp")
                .with_context(|| format!("{path}: no UiApp entry"))?;
            assert!(
                ui.device_path.starts_with("Fv(") && ui.device_path.contains("/FvFile("),
                "{path}: {ui}"
            );
        }
        Ok(())
    }

    #[test]
    fn synthesized_store_decodes() -> anyhow::Result<()> {
        let bytes = synthesized_store(&marker_variables()?, 0x4000)?;
        let vars = parse_store(&bytes)?;
        let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["Boot0000", "BootOrder"]);
        assert!(vars.iter().all(|v| v.guid == EFI_GLOBAL_VARIABLE_GUID));
        assert!(vars.iter().all(|v| v.attributes == NV_BS_RT));
        assert_eq!(boot_order(&vars), Some(vec![0x0000, 0x0003]));

        let entries = boot_entries(&vars);
        let path = format!("HD(1,GPT,{MARKER_PARTITION},0x800,0x18000)/File({MARKER_FILE})");
        let [entry] = entries.as_slice() else {
            panic!("expected one entry, got {entries:?}");
        };
        assert_eq!(entry.number, 0);
        assert!(entry.active);
        assert_eq!(entry.description, "Marker OS");
        assert_eq!(entry.device_path, path);
        assert_eq!(entry.optional_data, b"opt\0");
        assert_eq!(entry.partition_guid().as_deref(), Some(MARKER_PARTITION));
        assert_eq!(entry.file().as_deref(), Some(MARKER_FILE));
        assert_eq!(entry.nodes.len(), 2);
        assert_eq!(
            entry.to_string(),
            format!("Boot0000* Marker OS\t{path} [4 bytes of optional data]")
        );

        let dir = tempfile::tempdir()?;
        let file = dir.path().join("vars.fd");
        std::fs::write(&file, &bytes)?;
        let (entries_from_file, order) = read_boot_entries(&file)?;
        assert_eq!(entries_from_file, entries);
        assert_eq!(order, [0, 3]);
        Ok(())
    }

    #[test]
    fn non_authenticated_store_decodes() -> anyhow::Result<()> {
        let mut bytes = synthesized_store(&[], 0x1000)?;
        let store = 0x48;
        bytes[store..store + 16].copy_from_slice(&guid_bytes(EFI_VARIABLE_GUID)?);
        let name = utf16("Timeout");
        let mut var = Vec::new();
        var.extend(VARIABLE_START_ID.to_le_bytes());
        var.extend([VAR_ADDED, 0]);
        var.extend(NV_BS_RT.to_le_bytes());
        var.extend(u32::try_from(name.len())?.to_le_bytes());
        var.extend(2u32.to_le_bytes());
        var.extend(guid_bytes(EFI_GLOBAL_VARIABLE_GUID)?);
        var.extend(&name);
        var.extend([5, 0]);
        let at = align4(store + STORE_HEADER_LEN);
        bytes[at..at + var.len()].copy_from_slice(&var);
        let vars = parse_store(&bytes)?;
        assert_eq!(
            vars,
            [Variable {
                name: "Timeout".into(),
                guid: EFI_GLOBAL_VARIABLE_GUID.into(),
                attributes: NV_BS_RT,
                data: vec![5, 0],
            }]
        );
        Ok(())
    }

    /// An update interrupted half-way leaves the old copy in transition (0x3E): it stays the live
    /// one until the new copy is complete (0x3F), and is hidden once it is.
    #[test]
    fn in_deleted_transition_copies() -> anyhow::Result<()> {
        let in_transition = VAR_ADDED & VAR_IN_DELETED_TRANSITION;
        assert_eq!(in_transition, 0x3e);
        let old = auth_var(
            "BootOrder",
            EFI_GLOBAL_VARIABLE_GUID,
            in_transition,
            &[1, 0],
        )?;
        let header_only = auth_var("BootOrder", EFI_GLOBAL_VARIABLE_GUID, 0x7f, &[2, 0])?;
        let new = auth_var("BootOrder", EFI_GLOBAL_VARIABLE_GUID, VAR_ADDED, &[2, 0])?;

        let interrupted = synthesized_store(&[old.clone(), header_only].concat(), 0x1000)?;
        assert_eq!(boot_order(&parse_store(&interrupted)?), Some(vec![1]));

        let done = synthesized_store(&[old, new].concat(), 0x1000)?;
        let vars = parse_store(&done)?;
        assert_eq!(vars.len(), 1);
        assert_eq!(boot_order(&vars), Some(vec![2]));
        Ok(())
    }

    /// The synthesized records, appended to the real stores the way EDK2 updates variables (the
    /// old copies of `Boot0000` and `BootOrder` marked deleted, the new ones written into the
    /// erased space after the last variable), are found there: the layout matches what the
    /// firmware reads and writes.
    #[test]
    fn synthesized_variables_in_real_stores() -> anyhow::Result<()> {
        for (path, package) in [
            (OVMF_VARS, "ovmf"),
            ("/usr/share/AAVMF/AAVMF_VARS.ms.fd", "qemu-efi-aarch64"),
        ] {
            let mut bytes = read_firmware_file(path, package)?;
            let before = parse_store(&bytes)?;
            let walk = walk_store(&bytes)?;
            let mut replaced = 0;
            for (offset, state, var) in &walk.records {
                if *state == VAR_ADDED
                    && var.guid == EFI_GLOBAL_VARIABLE_GUID
                    && (var.name == "Boot0000" || var.name == "BootOrder")
                {
                    bytes[offset + 2] = VAR_ADDED & VAR_IN_DELETED_TRANSITION & VAR_DELETED;
                    replaced += 1;
                }
            }
            let region = marker_variables()?;
            let free = free_space(&bytes)?;
            let at = free.start..free.start + region.len();
            ensure!(
                free.len() >= region.len()
                    && bytes
                        .get(at.clone())
                        .is_some_and(|b| b.iter().all(|&b| b == 0xff)),
                "{path}: no erased space for {} bytes in {free:#x?}",
                region.len(),
            );
            bytes[at].copy_from_slice(&region);

            let vars = parse_store(&bytes)?;
            assert_eq!(vars.len(), before.len() + 2 - replaced, "{path}");
            let entries = boot_entries(&vars);
            let entry = entries
                .iter()
                .find(|e| e.number == 0)
                .with_context(|| format!("{path}: Boot0000 not found"))?;
            assert_eq!(entry.description, "Marker OS", "{path}");
            assert_eq!(entry.partition_guid().as_deref(), Some(MARKER_PARTITION));
            assert_eq!(entry.file().as_deref(), Some(MARKER_FILE));
            assert_eq!(boot_order(&vars), Some(vec![0, 3]), "{path}");
            // The store's own Boot0001 (if any) is still there; the deleted synthesized one is not.
            let own_boot0001 = boot_entries(&before).into_iter().find(|e| e.number == 1);
            assert_eq!(
                entries.iter().find(|e| e.number == 1),
                own_boot0001.as_ref()
            );
        }
        Ok(())
    }

    #[test]
    fn device_path_nodes_render() -> anyhow::Result<()> {
        let mut path = node(2, 1, &[0xd0, 0x41, 0x03, 0x0a, 0, 0, 0, 0])?;
        path.extend(node(1, 1, &[0x0, 0x3])?);
        let mut mac = vec![0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        mac.resize(32, 0);
        mac.push(1);
        path.extend(node(3, 11, &mac)?);
        path.extend(node(0x7f, 0x01, &[])?);
        path.extend(node(2, 1, &[0xd0, 0x41, 0x01, 0x05, 1, 0, 0, 0])?);
        path.extend(node(4, 7, &guid_bytes(NV_DATA_FV_GUID)?)?);
        path.extend(node(4, 6, &guid_bytes(EFI_VARIABLE_GUID)?)?);
        let mut mbr = Vec::new();
        mbr.extend(2u32.to_le_bytes());
        mbr.extend(2048u64.to_le_bytes());
        mbr.extend(4096u64.to_le_bytes());
        mbr.extend(0xdead_beefu32.to_le_bytes());
        mbr.extend([0u8; 12]);
        mbr.extend([1, 1]);
        path.extend(node(4, 1, &mbr)?);
        path.extend(node(3, 2, &[1, 0, 2, 0])?);
        path.extend(node(3, 18, &[0, 0, 0xff, 0xff, 0, 0])?);
        path.extend(node(3, 23, &[1, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])?);
        path.extend(node(5, 1, &[0xab, 0xcd])?);
        path.extend(node(1, 1, &[0x0])?); // wrong length: generic rendering
        path.extend(node(0x7f, 0xff, &[])?);
        path.extend(node(1, 1, &[0x0, 0x9])?); // after the end: ignored
        assert_eq!(
            device_path_text(&path),
            format!(
                "PciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,0x1),Acpi(0x050141d0,0x1)/\
                 Fv({NV_DATA_FV_GUID})/FvFile({EFI_VARIABLE_GUID})/\
                 HD(2,MBR,0xdeadbeef,0x800,0x1000)/Scsi(0x1,0x2)/Sata(0x0,0xffff,0x0)/\
                 NVMe(0x1,01-02-03-04-05-06-07-08)/Path(5,1,abcd)/Path(1,1,00)"
            )
        );
        Ok(())
    }

    #[test]
    fn malformed_device_paths_stop() -> anyhow::Result<()> {
        let pci = node(1, 1, &[0, 3])?;
        // Node length 0 would never advance; 2 is shorter than a node header.
        for bad_len in [0u8, 2] {
            let path = [pci.clone(), vec![1, 1, bad_len, 0, 0, 0]].concat();
            assert_eq!(device_path_text(&path), "Pci(0x3,0x0)/…");
        }
        // Longer than what is left.
        let path = [pci.clone(), vec![4, 4, 0x40, 0]].concat();
        assert_eq!(device_path_text(&path), "Pci(0x3,0x0)/…");
        // No end node.
        assert_eq!(device_path_text(&pci), "Pci(0x3,0x0)/…");
        assert_eq!(device_path_text(&[]), "…");
        Ok(())
    }

    #[test]
    fn truncated_inputs_never_panic() -> anyhow::Result<()> {
        let bytes = synthesized_store(&marker_variables()?, 0x400)?;
        let mut complete = 0;
        for len in 0..=bytes.len() {
            if let Ok(vars) = parse_store(&bytes[..len]) {
                let _ = boot_entries(&vars);
                let _ = boot_order(&vars);
                complete += 1;
            }
        }
        assert!(complete > 0);
        // The full image decodes; a cut through a variable is an error, not a short variable.
        assert!(parse_store(&bytes).is_ok());
        assert!(parse_store(&bytes[..0x48 + 28 + 70]).is_err());

        let option = marker_load_option(b"xy")?;
        for len in 0..=option.len() {
            let _ = parse_load_option(0, &option[..len]);
            let _ = device_path_text(&option[..len]);
        }
        Ok(())
    }

    /// A small xorshift generator: deterministic garbage without extra dependencies.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next().to_le_bytes()[0]).collect()
        }
    }

    #[test]
    fn garbage_never_panics() -> anyhow::Result<()> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let good = synthesized_store(&marker_variables()?, 0x400)?;
        let header = &good[..0x48 + STORE_HEADER_LEN];
        for round in 0..3000 {
            let len = rng.below(1200);
            let input = match round % 4 {
                // Pure garbage.
                0 => rng.bytes(len),
                // A valid volume and store header followed by garbage.
                1 => [header, &rng.bytes(len)].concat(),
                // The good image with a few bytes changed.
                2 => {
                    let mut mutated = good.clone();
                    for _ in 0..1 + rng.below(8) {
                        let at = rng.below(mutated.len());
                        mutated[at] = rng.bytes(1)[0];
                    }
                    mutated
                }
                // Garbage with "_FVH" planted where a volume header would have it.
                _ => {
                    let mut planted = rng.bytes(len.max(64));
                    planted[40..44].copy_from_slice(b"_FVH");
                    planted
                }
            };
            if let Ok(vars) = parse_store(&input) {
                let _ = boot_entries(&vars);
                let _ = boot_order(&vars);
            }
            let option = rng.bytes(len % 200);
            let _ = parse_load_option(0, &option);
            let _ = device_path_text(&option);
        }
        Ok(())
    }
}
