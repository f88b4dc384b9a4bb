//! The confined path walker: resolves paths inside a mounted filesystem as if it were `/`,
//! with one `*at` system call per component and symbolic links expanded by hand, so that no
//! link in the image can lead a write or delete outside it.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::error::InjectError;
use super::validate::MAX_PATH;

/// Symbolic links followed while resolving one path (Linux's own limit).
pub(super) const MAX_SYMLINKS: u32 = 40;
/// Mode of directories and files this step creates when none is given.
pub(super) const DEFAULT_DIR_MODE: u32 = 0o755;
pub(super) const DEFAULT_FILE_MODE: u32 = 0o644;

// Resolving paths inside a filesystem

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
    Link,
    Other,
}

pub(super) fn file_kind(st: &FileStat) -> Kind {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => Kind::Dir,
        SFlag::S_IFREG => Kind::File,
        SFlag::S_IFLNK => Kind::Link,
        _ => Kind::Other,
    }
}

/// Resolves directories below `root` as a `chroot` would: each step is an `openat` of one
/// name with `O_NOFOLLOW` relative to the directory before it; links are read and expanded
/// here, `/` in a link target means `root`, and `..` stops at `root`.
pub struct Walker<'r> {
    root: BorrowedFd<'r>,
    /// Open directories from `root` (exclusive) down, with their names.
    stack: Vec<(File, Vec<u8>)>,
    hops: u32,
}

impl<'r> Walker<'r> {
    pub fn new(root: BorrowedFd<'r>) -> Self {
        Walker {
            root,
            stack: Vec::new(),
            hops: 0,
        }
    }

    /// The current directory.
    pub(super) fn cur(&self) -> BorrowedFd<'_> {
        self.stack
            .last()
            .map(|(f, _)| f.as_fd())
            .unwrap_or(self.root)
    }

    pub(super) fn back_to_root(&mut self) {
        self.stack.clear();
    }

    /// The current directory (and `name` in it) as a path inside the image, for messages.
    pub(super) fn shown(&self, name: Option<&[u8]>) -> String {
        let mut parts: Vec<&[u8]> = self.stack.iter().map(|(_, n)| n.as_slice()).collect();
        parts.extend(name);
        let joined: Vec<String> = parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        format!("/{}", joined.join("/"))
    }

    pub(super) fn hop(&mut self, at: &str) -> Result<(), InjectError> {
        self.hops += 1;
        if self.hops > MAX_SYMLINKS {
            return Err(InjectError::Path(format!(
                "too many levels of symbolic links at {at}"
            )));
        }
        Ok(())
    }

    /// Descends through `comps` from the current directory; true when every component
    /// resolved to a directory. With `create`, missing directories are made (mode 0755, or
    /// the given mode for the last one, as IPA's `dirmode`); without it a missing one ends the
    /// walk with `false`.
    pub fn walk(
        &mut self,
        comps: impl IntoIterator<Item = Vec<u8>>,
        create: Option<Option<u32>>,
    ) -> Result<bool, InjectError> {
        let mut pending: VecDeque<Vec<u8>> = comps.into_iter().collect();
        let mut created_leaf = false;
        while let Some(c) = pending.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    self.stack.pop();
                    created_leaf = false;
                    continue;
                }
                _ => {}
            }
            let at = self.shown(Some(&c));
            let name = c_name(&c)?;
            let st =
                stat_at(self.cur(), &name).map_err(InjectError::io(format!("inspecting {at}")))?;
            match st.as_ref().map(file_kind) {
                None => {
                    if create.is_none() {
                        return Ok(false);
                    }
                    match mkdir_at(self.cur(), &name, DEFAULT_DIR_MODE) {
                        Ok(()) => created_leaf = true,
                        Err(e) if e.raw_os_error() == Some(Errno::EEXIST as i32) => {
                            created_leaf = false
                        }
                        Err(e) => {
                            return Err(InjectError::io(format!("creating directory {at}"))(e));
                        }
                    }
                    let dir = open_dir_at(self.cur(), &name)
                        .map_err(InjectError::io(format!("opening directory {at}")))?;
                    if created_leaf {
                        dir.set_permissions(Permissions::from_mode(DEFAULT_DIR_MODE))
                            .map_err(InjectError::io(format!("changing the mode of {at}")))?;
                    }
                    self.stack.push((dir, c));
                }
                Some(Kind::Dir) => {
                    let dir = open_dir_at(self.cur(), &name)
                        .map_err(InjectError::io(format!("opening directory {at}")))?;
                    self.stack.push((dir, c));
                    created_leaf = false;
                }
                Some(Kind::Link) => {
                    self.hop(&at)?;
                    let target = readlink_at(self.cur(), &name)
                        .map_err(InjectError::io(format!("reading link {at}")))?;
                    if target.starts_with(b"/") {
                        self.back_to_root();
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        pending.push_front(part.to_vec());
                    }
                    created_leaf = false;
                }
                Some(Kind::File | Kind::Other) => {
                    return Err(InjectError::Path(format!(
                        "{at} exists in the image and is not a directory"
                    )));
                }
            }
        }
        if created_leaf
            && let Some(Some(mode)) = create
            && let Some((dir, _)) = self.stack.last()
        {
            dir.set_permissions(Permissions::from_mode(mode))
                .map_err(InjectError::io(format!(
                    "changing the mode of {}",
                    self.shown(None)
                )))?;
        }
        Ok(true)
    }
}

/// Ownership and permissions for [`write_file`]; `None` leaves a replaced file's as they are
/// (a new file gets 0644, new directories 0755 and the last of them `dirmode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileAttrs {
    /// Mode of the file.
    pub mode: Option<u32>,
    /// Mode of the leaf directory, when it is created.
    pub dirmode: Option<u32>,
    /// Owner ID.
    pub owner: Option<u32>,
    /// Group ID.
    pub group: Option<u32>,
}

/// Refuses components that are not single names (validation never produces them).
fn check_components(components: &[String]) -> Result<(), InjectError> {
    match components
        .iter()
        .find(|c| c.is_empty() || *c == "." || *c == ".." || c.contains(['/', '\0']))
    {
        Some(c) => Err(InjectError::Path(format!("invalid path component `{c}`"))),
        None => Ok(()),
    }
}

/// The root of a delete or write: `components` checked, `root_dir` opened, and the path split
/// into its parent directories and its final name.
fn open_target<'c>(
    root_dir: &Path,
    components: &'c [String],
) -> Result<(File, &'c String, Vec<Vec<u8>>), InjectError> {
    check_components(components)?;
    let root =
        open_root(root_dir).map_err(InjectError::io(format!("opening {}", root_dir.display())))?;
    let Some((name, parents)) = components.split_last() else {
        return Err(InjectError::Path("the path names no file".into()));
    };
    Ok((
        root,
        name,
        parents.iter().map(|c| c.as_bytes().to_vec()).collect(),
    ))
}

/// Deletes the file (or symbolic link itself) at `components` below the directory `root_dir`,
/// which is treated as `/`. A missing file or directory is not an error; a directory is.
/// Returns what happened, for the log.
pub fn delete_file(root_dir: &Path, components: &[String]) -> Result<String, InjectError> {
    let (root, name, parents) = open_target(root_dir, components)?;
    let mut w = Walker::new(root.as_fd());
    // Delete: a missing directory means there is nothing to delete.
    if !w.walk(parents, None)? {
        return Ok("already absent".into());
    }
    let at = w.shown(Some(name.as_bytes()));
    let cname = c_name(name.as_bytes())?;
    match unlink_at(w.cur(), &cname) {
        Ok(()) => Ok("deleted".into()),
        Err(e) if e.raw_os_error() == Some(Errno::ENOENT as i32) => Ok("already absent".into()),
        Err(e)
            if matches!(
                e.raw_os_error().map(Errno::from_raw),
                Some(Errno::EISDIR | Errno::EPERM)
            ) =>
        {
            Err(InjectError::Path(format!(
                "{at} is a directory; only files can be deleted"
            )))
        }
        Err(e) => Err(InjectError::io(format!("deleting {at}"))(e)),
    }
}

/// Writes `content` to the regular file at `components` below the directory `root_dir`, which is
/// treated as `/`: missing directories are created, links (also a final one) are followed
/// inside `root`, only a regular file is written. Returns what happened, for the log.
pub fn write_file(
    root_dir: &Path,
    components: &[String],
    content: &[u8],
    attrs: FileAttrs,
) -> Result<String, InjectError> {
    let (root, name, parents) = open_target(root_dir, components)?;
    let mut w = Walker::new(root.as_fd());

    if !w.walk(parents, Some(attrs.dirmode))? {
        return Err(InjectError::Path(
            "the directory could not be created".into(),
        ));
    }
    let mut name = name.as_bytes().to_vec();
    let existed = loop {
        let at = w.shown(Some(&name));
        let cname = c_name(&name)?;
        let Some(st) =
            stat_at(w.cur(), &cname).map_err(InjectError::io(format!("inspecting {at}")))?
        else {
            break false;
        };
        match file_kind(&st) {
            Kind::File => break true,
            Kind::Dir => return Err(InjectError::Path(format!("{at} is a directory"))),
            Kind::Other => {
                return Err(InjectError::Path(format!(
                    "{at} is not a regular file (a device, FIFO or socket); refusing to write it"
                )));
            }
            Kind::Link => {
                w.hop(&at)?;
                let target = readlink_at(w.cur(), &cname)
                    .map_err(InjectError::io(format!("reading link {at}")))?;
                if target.ends_with(b"/") {
                    return Err(InjectError::Path(format!(
                        "{at} is a symbolic link to a directory"
                    )));
                }
                if target.starts_with(b"/") {
                    w.back_to_root();
                }
                let mut comps: Vec<Vec<u8>> = target
                    .split(|b| *b == b'/')
                    .filter(|c| !c.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect();
                match comps.pop() {
                    Some(last) if last != b"." && last != b".." => {
                        if !w.walk(comps, None)? {
                            return Err(InjectError::Path(format!(
                                "{at} is a symbolic link into a directory missing from the image"
                            )));
                        }
                        name = last;
                    }
                    _ => {
                        return Err(InjectError::Path(format!(
                            "{at} is a symbolic link to a directory"
                        )));
                    }
                }
            }
        }
    };
    let at = w.shown(Some(&name));
    let mut file =
        create_at(w.cur(), &c_name(&name)?).map_err(InjectError::io(format!("opening {at}")))?;
    let meta = file
        .metadata()
        .map_err(InjectError::io(format!("inspecting {at}")))?;
    if !meta.file_type().is_file() {
        return Err(InjectError::Path(format!("{at} is not a regular file")));
    }
    file.write_all(content)
        .map_err(InjectError::io(format!("writing {at}")))?;
    // Ownership first: chown(2) clears set-id bits, which `mode` may ask for.
    if attrs.owner.is_some() || attrs.group.is_some() {
        std::os::unix::fs::fchown(&file, attrs.owner, attrs.group)
            .map_err(InjectError::io(format!("changing the owner of {at}")))?;
    }
    let mode = attrs.mode.or((!existed).then_some(DEFAULT_FILE_MODE));
    if let Some(m) = mode {
        file.set_permissions(Permissions::from_mode(m))
            .map_err(InjectError::io(format!("changing the mode of {at}")))?;
    }
    file.sync_all()
        .map_err(InjectError::io(format!("syncing {at}")))?;
    Ok(format!(
        "wrote {} bytes to {at}{}",
        content.len(),
        if existed { " (replaced)" } else { "" }
    ))
}

// Thin wrappers over nix's `*at` system calls (std does not offer them).

pub(super) fn c_name(name: &[u8]) -> Result<CString, InjectError> {
    CString::new(name).map_err(|_| InjectError::Path("a file name contains a NUL byte".into()))
}

/// Opens the root directory of a mount.
pub fn open_root(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub(super) fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<FileStat>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `openat` that never follows a final symbolic link and never leaks into a child.
pub(super) fn open_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: OFlag,
    mode: u32,
) -> io::Result<File> {
    let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let fd = openat(dir, name, flags, Mode::from_bits_truncate(mode))?;
    Ok(File::from(fd))
}

/// Opens directory `name` in `dir`, refusing a symbolic link.
pub(super) fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    open_at(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
}

/// Opens regular file `name` in `dir` for writing, creating or truncating it; never follows a
/// symbolic link and never blocks on a FIFO.
pub(super) fn create_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    open_at(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        DEFAULT_FILE_MODE,
    )
}

pub(super) fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    mkdirat(dir, name, Mode::from_bits_truncate(mode)).map_err(io::Error::from)
}

/// Removes a non-directory entry (a symbolic link itself, never its target).
pub(super) fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(io::Error::from)
}

/// The target of symbolic link `name` in `dir`; `ENAMETOOLONG` past [`MAX_PATH`] bytes.
pub(super) fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let target = readlinkat(dir, name)?.into_vec();
    if target.len() > MAX_PATH {
        return Err(Errno::ENAMETOOLONG.into());
    }
    Ok(target)
}
