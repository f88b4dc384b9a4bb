//! IPA's configuration files, found and layered as oslo.config does for the program
//! `ironic-python-agent`, plus `/etc/ironic-python-agent.d` (where Ironic's virtual-media ISO
//! puts `ironic-tls.conf`, and which DIB's unit passes as `--config-dir`).
//!
//! Without `--config-file`: the first of `~/ironic-python-agent.conf`,
//! `/etc/ironic-python-agent.conf` (oslo's search with no project name, which is how IPA calls
//! it). Without `--config-dir`: the first of `~/ironic-python-agent.conf.d/`,
//! `/etc/ironic-python-agent.conf.d/`, then `/etc/ironic-python-agent.d/`, each when it exists.
//! Then the `--config-file`s, then the `--config-dir`s (each dir's `*.conf`, sorted). A later
//! file overrides an earlier one; within a file the last assignment wins. Only `[DEFAULT]` is
//! read; unknown options there are reported and ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tracing::Level;

use super::cmdline::KernelParams;
use super::ini::{self, IniError};
use super::options::{self, NOT_SUPPORTED};
use crate::media::Notes;

/// oslo's program name for IPA.
pub const PROG: &str = "ironic-python-agent";

/// The directory Ironic's virtual-media ISO and DIB use for drop-in files.
pub const DROP_IN_DIR: &str = "etc/ironic-python-agent.d";

/// Errors reading configuration files: all fatal, as in IPA.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// A syntax error (`FILE:LINE: message`).
    #[error("{0}")]
    Syntax(#[from] IniError),
    /// An option's value is invalid.
    #[error("{}:{line}: [DEFAULT] {option}: {message}", file.display())]
    Value {
        /// The file.
        file: PathBuf,
        /// The line of the assignment.
        line: usize,
        /// The option.
        option: String,
        /// Why.
        message: String,
    },
    /// A `--config-file` that does not exist.
    #[error("config file {0} not found")]
    FileNotFound(PathBuf),
    /// A `--config-dir` that does not exist.
    #[error("config directory {0} not found")]
    DirNotFound(PathBuf),
    /// A file or directory that could not be read.
    #[error("reading {path}: {source}", path = path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where the default files and directories are searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRoots {
    /// The root under which `etc/...` is looked for (`/` normally).
    pub root: PathBuf,
    /// The home directory (`$HOME`), if any.
    pub home: Option<PathBuf>,
}

/// One option's value from a file. `Debug` leaves the value out (it may be the agent token).
#[derive(Clone, PartialEq, Eq)]
pub struct FileValue {
    /// The checked value.
    pub value: String,
    /// The file.
    pub file: PathBuf,
    /// The line.
    pub line: usize,
}

impl std::fmt::Debug for FileValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileValue")
            .field("file", &self.file)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// The options read from every file, the latest value of each. `Debug` shows secret values
/// (the agent token) as `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfValues {
    values: BTreeMap<&'static str, FileValue>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

impl std::fmt::Debug for ConfValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, v) in &self.values {
            let shown = if super::cmdline::is_secret(name) {
                "***"
            } else {
                v.value.as_str()
            };
            map.entry(
                name,
                &format_args!("{shown:?} ({}:{})", v.file.display(), v.line),
            );
        }
        map.finish()
    }
}

impl ConfValues {
    /// The value of option `name`, if a file set it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.value.as_str())
    }

    /// Where option `name` was set.
    pub fn origin(&self, name: &str) -> Option<&FileValue> {
        self.values.get(name)
    }

    /// Option `name` as a boolean (values were checked when read).
    pub fn get_bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(options::strict_bool)
    }

    /// Writes every option that has a kernel parameter over `kernel` (files win).
    pub fn merge_into(&self, kernel: &mut KernelParams) {
        for (name, v) in &self.values {
            if let Some(k) = options::find(name).and_then(|o| o.kernel) {
                kernel.set(k, &v.value);
            }
        }
    }

    /// Reads the `[DEFAULT]` options of `text` (the contents of `file`) over the values so far.
    pub fn apply(
        &mut self,
        file: &Path,
        text: &str,
        notes: &mut dyn Notes,
    ) -> Result<(), ConfError> {
        let parsed = ini::parse(file, text)?;
        for (section, _) in &parsed.sections {
            if section != "DEFAULT" {
                notes.note(
                    Level::DEBUG,
                    format!(
                        "{}: section [{section}] is not read by this agent",
                        file.display()
                    ),
                );
            }
        }
        for e in parsed.section("DEFAULT") {
            let Some(spec) = options::find(&e.key) else {
                let why = if NOT_SUPPORTED.contains(&e.key.as_str()) {
                    "is not supported by this agent"
                } else {
                    "is not an ironic-python-agent option"
                };
                notes.note(
                    Level::WARN,
                    format!(
                        "{}:{}: [DEFAULT] {} {why}; ignored",
                        file.display(),
                        e.line,
                        e.key
                    ),
                );
                continue;
            };
            let value = spec
                .kind
                .check(&e.value)
                .map_err(|message| ConfError::Value {
                    file: file.to_path_buf(),
                    line: e.line,
                    option: e.key.clone(),
                    message,
                })?;
            let shown = if super::cmdline::is_secret(spec.name) {
                "***"
            } else {
                value.as_str()
            };
            notes.note(
                Level::DEBUG,
                format!(
                    "{}:{}: [DEFAULT] {} = {shown}",
                    file.display(),
                    e.line,
                    spec.name
                ),
            );
            self.values.insert(
                spec.name,
                FileValue {
                    value,
                    file: file.to_path_buf(),
                    line: e.line,
                },
            );
        }
        self.files.push(file.to_path_buf());
        Ok(())
    }
}

/// The files to read, in order (see the module documentation). `explicit_files` and
/// `explicit_dirs` are the `--config-file` and `--config-dir` flags.
pub fn files_to_read(
    search: &SearchRoots,
    explicit_files: &[PathBuf],
    explicit_dirs: &[PathBuf],
) -> Result<Vec<PathBuf>, ConfError> {
    let mut bases: Vec<PathBuf> = search.home.iter().cloned().collect();
    bases.push(search.root.join("etc"));
    let first_existing = |name: &str, want_dir: bool| {
        bases
            .iter()
            .map(|b| b.join(name))
            .find(|p| if want_dir { p.is_dir() } else { p.exists() })
    };
    let mut out = Vec::new();
    if explicit_files.is_empty() {
        out.extend(first_existing(&format!("{PROG}.conf"), false));
    }
    if explicit_dirs.is_empty() {
        let defaults = first_existing(&format!("{PROG}.conf.d"), true)
            .into_iter()
            .chain(Some(search.root.join(DROP_IN_DIR)).filter(|d| d.is_dir()));
        for d in defaults {
            out.extend(dir_files(&d)?);
        }
    }
    for f in explicit_files {
        if !f.exists() {
            return Err(ConfError::FileNotFound(f.clone()));
        }
        out.push(f.clone());
    }
    for d in explicit_dirs {
        if !d.exists() {
            return Err(ConfError::DirNotFound(d.clone()));
        }
        out.extend(dir_files(d)?);
    }
    Ok(out)
}

/// A directory's `*.conf` files, sorted by name.
fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, ConfError> {
    let read = |source| ConfError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        let is_conf = path.extension().is_some_and(|e| e == "conf")
            && path.file_stem().is_some_and(|s| !s.is_empty());
        if is_conf && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads `files` in order into one set of values.
pub fn read_files(files: &[PathBuf], notes: &mut dyn Notes) -> Result<ConfValues, ConfError> {
    let mut values = ConfValues::default();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|source| ConfError::Read {
            path: f.clone(),
            source,
        })?;
        values.apply(f, &text, notes)?;
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) -> anyhow::Result<()> {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, text)?;
        Ok(())
    }

    #[test]
    fn search_order_as_oslo_plus_drop_in_dir() -> anyhow::Result<()> {
        let t = tempfile::tempdir()?;
        let root = t.path().join("root");
        let home = t.path().join("home");
        let search = SearchRoots {
            root: root.clone(),
            home: Some(home.clone()),
        };
        assert!(files_to_read(&search, &[], &[])?.is_empty());
        write(&root.join("etc/ironic-python-agent.conf"), "")?;
        write(&root.join("etc/ironic-python-agent.conf.d/b.conf"), "")?;
        write(&root.join("etc/ironic-python-agent.conf.d/a.conf"), "")?;
        write(&root.join("etc/ironic-python-agent.conf.d/skip.txt"), "")?;
        write(&root.join("etc/ironic-python-agent.d/ironic-tls.conf"), "")?;
        let got = files_to_read(&search, &[], &[])?;
        assert_eq!(
            got,
            vec![
                root.join("etc/ironic-python-agent.conf"),
                root.join("etc/ironic-python-agent.conf.d/a.conf"),
                root.join("etc/ironic-python-agent.conf.d/b.conf"),
                root.join("etc/ironic-python-agent.d/ironic-tls.conf"),
            ]
        );
        // The home directory's file is found first, and only one of them is read.
        write(&home.join("ironic-python-agent.conf"), "")?;
        assert_eq!(
            files_to_read(&search, &[], &[])?[0],
            home.join("ironic-python-agent.conf")
        );
        assert_eq!(files_to_read(&search, &[], &[])?.len(), 4);
        // --config-file replaces the default file, --config-dir the default dirs.
        let mine = t.path().join("mine.conf");
        write(&mine, "")?;
        let got = files_to_read(&search, std::slice::from_ref(&mine), &[])?;
        assert_eq!(
            got.first(),
            Some(&root.join("etc/ironic-python-agent.conf.d/a.conf"))
        );
        assert_eq!(got.last(), Some(&mine));
        let dir = t.path().join("dir");
        write(&dir.join("z.conf"), "")?;
        let got = files_to_read(&search, &[], std::slice::from_ref(&dir))?;
        assert_eq!(
            got,
            vec![home.join("ironic-python-agent.conf"), dir.join("z.conf")]
        );
        // Explicit paths must exist.
        let missing = t.path().join("missing");
        assert!(matches!(
            files_to_read(&search, std::slice::from_ref(&missing), &[]),
            Err(ConfError::FileNotFound(_))
        ));
        assert!(matches!(
            files_to_read(&search, &[], &[missing]),
            Err(ConfError::DirNotFound(_))
        ));
        Ok(())
    }

    #[test]
    fn later_files_override_and_unknown_options_are_reported() -> anyhow::Result<()> {
        let t = tempfile::tempdir()?;
        let a = t.path().join("a.conf");
        let b = t.path().join("b.conf");
        write(
            &a,
            "[DEFAULT]\napi_url = http://a:6385\ncafile = /a.crt\nbogus = 1\nlisten_tls = true\n\
             [mdns]\nuse_mdns = true\n",
        )?;
        write(&b, "[DEFAULT]\napi_url = http://b:6385\ninsecure = yes\n")?;
        let mut notes = Vec::new();
        let v = read_files(&[a.clone(), b.clone()], &mut notes)?;
        assert_eq!(v.get("api_url"), Some("http://b:6385"));
        assert_eq!(v.get("cafile"), Some("/a.crt"));
        assert_eq!(v.get("bogus"), None);
        assert_eq!(
            v.origin("api_url").map(|o| (&o.file, o.line)),
            Some((&b, 2))
        );
        assert_eq!(v.files, vec![a.clone(), b]);
        let warnings: Vec<&String> = notes
            .iter()
            .filter(|(l, _)| *l == Level::WARN)
            .map(|(_, m)| m)
            .collect();
        assert_eq!(warnings.len(), 2, "{notes:?}");
        assert!(warnings[0].contains(&format!("{}:4: [DEFAULT] bogus is not an", a.display())));
        assert!(warnings[1].contains("listen_tls is not supported"));
        let mut k = KernelParams::parse("ipa-api-url=http://k:1 ipa-insecure=0 other=x");
        v.merge_into(&mut k);
        assert_eq!(k.get("ipa-api-url"), Some("http://b:6385"));
        assert_eq!(k.get_bool("ipa-insecure"), Some(true));
        assert_eq!(k.get("other"), Some("x"));
        assert_eq!(
            k.get("cafile"),
            None,
            "file-only options stay out of the kernel map"
        );
        let mut secret = ConfValues::default();
        secret.apply(&a, "[DEFAULT]\nagent_token = tok-secret-0123\n", &mut notes)?;
        assert_eq!(secret.get("agent_token"), Some("tok-secret-0123"));
        let shown = format!("{secret:?} {notes:?}");
        assert!(
            !shown.contains("tok-secret") && shown.contains("***"),
            "{shown}"
        );
        Ok(())
    }

    #[test]
    fn bad_values_name_file_line_and_option() -> anyhow::Result<()> {
        let t = tempfile::tempdir()?;
        let a = t.path().join("a.conf");
        write(&a, "[DEFAULT]\n# c\nlookup_timeout = soon\n")?;
        let e = read_files(std::slice::from_ref(&a), &mut Vec::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            format!(
                "{}:3: [DEFAULT] lookup_timeout: `soon` is not an integer",
                a.display()
            )
        );
        write(&a, "[DEFAULT]\nbroken\n")?;
        let e = read_files(std::slice::from_ref(&a), &mut Vec::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with(&format!("{}:2: ", a.display())), "{e}");
        Ok(())
    }
}
