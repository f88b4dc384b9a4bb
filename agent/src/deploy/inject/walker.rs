//! The confined path walker: resolves paths inside a mounted filesystem as if it were `/`,
//! with one `*at` system call per component and symbolic links expanded by hand, so that no
//! link in the image can lead a write or delete outside it.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::fs::{File, Permissions};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

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

pub(super) fn file_kind(st: &libc::stat) -> Kind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        libc::S_IFLNK => Kind::Link,
        _ => Kind::Other,
    }
}

/// Resolves directories below `root` as a `chroot` would: each step is an `openat` of one
/// name with `O_NOFOLLOW` relative to the directory before it; links are read and expanded
/// here, `/` in a link target means `root`, and `..` stops at `root`.
pub(super) struct Walker<'r> {
    root: BorrowedFd<'r>,
    /// Open directories from `root` (exclusive) down, with their names.
    stack: Vec<(File, Vec<u8>)>,
    hops: u32,
}

impl<'r> Walker<'r> {
    pub(super) fn new(root: BorrowedFd<'r>) -> Self {
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
    pub(super) fn walk(
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
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => created_leaf = false,
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

// Thin wrappers over the `*at` system calls std does not offer.

pub(super) fn c_name(name: &[u8]) -> Result<CString, InjectError> {
    CString::new(name).map_err(|_| InjectError::Path("a file name contains a NUL byte".into()))
}

pub(super) fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens the root directory of a mount.
pub(super) fn open_root(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub(super) fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<libc::stat>> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated, `st` is writable memory for one `stat`, and `dir` is an
    // open descriptor borrowed for the duration of the call.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match cvt(rc) {
        // SAFETY: fstatat succeeded, so it initialised `st`.
        Ok(_) => Ok(Some(unsafe { st.assume_init() })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn open_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<File> {
    // SAFETY: `name` is NUL-terminated and `dir` is an open descriptor; the mode is passed as
    // the variadic `mode_t` argument openat expects (ignored without O_CREAT).
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Opens directory `name` in `dir`, refusing a symbolic link.
pub(super) fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    open_at(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// Opens regular file `name` in `dir` for writing, creating or truncating it; never follows a
/// symbolic link and never blocks on a FIFO.
pub(super) fn create_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    open_at(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NONBLOCK | libc::O_NOCTTY,
        DEFAULT_FILE_MODE,
    )
}

pub(super) fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `dir` is an open descriptor.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub(super) fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `dir` is an open descriptor; flags 0 removes a
    // non-directory entry (a symbolic link itself, never its target).
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

pub(super) fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; MAX_PATH + 1];
    // SAFETY: `name` is NUL-terminated, `dir` is an open descriptor and `buf` is writable for
    // `buf.len()` bytes.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast::<libc::c_char>(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}
