//! `inject_walker`: the confined path walker of the `inject_files` step
//! (`deploy/inject/walker.rs`): `Walker::walk` (resolve, and create missing directories),
//! `write_file` and `delete_file`, on a small tree of directories, files and symbolic links
//! (absolute, relative, `..`, dangling, loops) built from the input in a scratch directory.
//!
//! Input: text lines, each one command (at most 64):
//! * tree: `d PATH` (directory), `f PATH` (file), `l PATH TARGET` (symbolic link); made with
//!   std only where every parent is a real directory, never through a link;
//! * walker: `w PATH` (write_file), `x PATH` (delete_file), `r PATH` (walk, no create),
//!   `c PATH` (walk with create, the last directory 0700).
//!
//! In a link target, `@S` stands for the absolute path of a sentinel directory beside the
//! root, `@B` for their common parent. PATHs are split on `/` into the components given to the
//! walker (which refuses empty, `.`, `..`).
//!
//! Checked: no panic; after every command the sentinel directory (a file and a subdirectory)
//! is unchanged, the scratch parent holds only `root` and `sentinel`, and the host has no
//! `/fzA`..`/fzE` (the names links may point at absolutely) it did not have before; a
//! `write_file` that succeeds has written its content to a regular file inside the root,
//! found by a walk of the root that never follows links.

#![no_main]

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use ironic_agent::deploy::inject::walker::{FileAttrs, Walker, delete_file, open_root, write_file};
use libfuzzer_sys::fuzz_target;

/// Names an absolute link target may use at the top level; `/fzA`..`/fzE` must never appear
/// on the host.
const HOST_NAMES: &[&str] = &["fzA", "fzB", "fzC", "fzD", "fzE"];
const MAX_COMMANDS: usize = 64;

struct Scratch {
    base: PathBuf,
    root: PathBuf,
    sentinel: PathBuf,
    /// Host names that already existed (not checked).
    preexisting: Vec<&'static str>,
}

fn scratch() -> &'static Scratch {
    static S: OnceLock<Scratch> = OnceLock::new();
    S.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let tmp = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        let base = tmp.join(format!("ironic-agent-fuzz-walker-{}", std::process::id()));
        let preexisting = HOST_NAMES
            .iter()
            .copied()
            .filter(|n| Path::new("/").join(n).symlink_metadata().is_ok())
            .collect();
        Scratch {
            root: base.join("root"),
            sentinel: base.join("sentinel"),
            base,
            preexisting,
        }
    })
}

/// Every entry below `dir` without following links: (relative path, kind, file content).
fn snapshot(dir: &Path) -> Vec<(PathBuf, char, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = p.symlink_metadata() else {
                continue;
            };
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_path_buf();
            if meta.file_type().is_symlink() {
                out.push((rel, 'l', Vec::new()));
            } else if meta.is_dir() {
                todo.push(p);
                out.push((rel, 'd', Vec::new()));
            } else if meta.is_file() {
                out.push((rel, 'f', fs::read(&p).unwrap_or_default()));
            } else {
                out.push((rel, 'o', Vec::new()));
            }
        }
    }
    out.sort();
    out
}

/// Whether `rel` (components) can be created with std without following a link: every parent
/// is a real directory inside the root.
fn plain_parent(root: &Path, comps: &[&str]) -> Option<PathBuf> {
    if comps.is_empty()
        || comps
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0'))
    {
        return None;
    }
    let mut p = root.to_path_buf();
    for c in &comps[..comps.len() - 1] {
        p.push(c);
        let meta = p.symlink_metadata().ok()?;
        if !meta.is_dir() || meta.file_type().is_symlink() {
            return None;
        }
    }
    Some(p.join(comps[comps.len() - 1]))
}

fn check_invariants(s: &Scratch, sentinel_before: &[(PathBuf, char, Vec<u8>)], what: &str) {
    assert_eq!(
        snapshot(&s.sentinel),
        sentinel_before,
        "the sentinel beside the root changed after {what}"
    );
    let mut names: Vec<String> = fs::read_dir(&s.base)
        .expect("reading the scratch directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["root", "sentinel"],
        "something appeared beside the root after {what}"
    );
    for n in HOST_NAMES {
        if !s.preexisting.contains(n) {
            assert!(
                Path::new("/").join(n).symlink_metadata().is_err(),
                "/{n} appeared on the host after {what}"
            );
        }
    }
}

fn run(s: &Scratch, text: &str) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // A fresh scratch directory per input, removed afterwards (left behind only on a crash).
    let _ = fs::remove_dir_all(&s.base);
    fs::create_dir_all(s.sentinel.join("sub")).expect("creating the sentinel");
    fs::write(s.sentinel.join("keep"), b"sentinel").expect("writing the sentinel");
    fs::create_dir(&s.root).expect("creating the root");
    let sentinel_before = snapshot(&s.sentinel);
    let base = s.base.display().to_string();
    let sentinel = s.sentinel.display().to_string();

    for line in text.lines().take(MAX_COMMANDS) {
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (path, target) = rest.split_once(' ').unwrap_or((rest, ""));
        let comps: Vec<&str> = path.split('/').collect();
        let owned: Vec<String> = comps.iter().map(|c| (*c).to_string()).collect();
        match cmd {
            "d" | "f" | "l" => {
                let Some(p) = plain_parent(&s.root, &comps) else {
                    continue;
                };
                if p.symlink_metadata().is_ok() {
                    continue;
                }
                let _ = match cmd {
                    "d" => fs::create_dir(&p),
                    "f" => fs::write(&p, b"tree"),
                    _ => symlink(target.replace("@S", &sentinel).replace("@B", &base), &p),
                };
            }
            "w" => {
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let body = format!("walker-write-{}-{n}", std::process::id());
                let attrs = FileAttrs {
                    dirmode: Some(0o700),
                    ..FileAttrs::default()
                };
                if write_file(&s.root, &owned, body.as_bytes(), attrs).is_ok() {
                    let inside = snapshot(&s.root)
                        .iter()
                        .any(|(_, kind, data)| *kind == 'f' && data == body.as_bytes());
                    assert!(
                        inside,
                        "write of {path:?} succeeded but not inside the root"
                    );
                }
            }
            "x" => {
                let _ = delete_file(&s.root, &owned);
            }
            "r" | "c" => {
                let Ok(root) = open_root(&s.root) else {
                    continue;
                };
                let mut w = Walker::new(root.as_fd());
                let create = (cmd == "c").then_some(Some(0o700));
                let _ = w.walk(comps.iter().map(|c| c.as_bytes().to_vec()), create);
            }
            _ => continue,
        }
        check_invariants(s, &sentinel_before, line);
    }
    // std's remove_dir_all never follows links.
    let _ = fs::remove_dir_all(&s.base);
}

fuzz_target!(|data: &[u8]| {
    let s = scratch();
    run(s, &String::from_utf8_lossy(data));
});
