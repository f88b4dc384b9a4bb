//! `rescue.finalize_rescue`: leaves the rescue password's crypt hash for the ramdisk, marks the
//! node rescued and stops serving (IPA's `serve_api = False`).
//!
//! Ironic sends `{"rescue_password": <SHA-512 crypt hash>, "hashed": true}`; an old conductor
//! may send the plain password (`hashed` false), which is hashed here with SHA-256 crypt and a
//! random salt, as IPA does. The hash goes to `<root>/etc/ipa-rescue-config/ipa-rescue-password`
//! (mode 0600, no newline, as IPA writes it), then `<root>/etc/.rescued` is created; the
//! ramdisk turns the hash into the `rescue` user. The password and its hash are never logged,
//! never echoed in an error and never part of the command result (`null`).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};
use tracing::{info, warn};

use super::registry::{Mode, Params, Registry};
use crate::context::AgentContext;
use crate::record::result::{CommandError, CommandOutput};
use crate::stop::StopReason;

/// The password file, relative to the rescue root (IPA's `PASSWORD_FILE`).
pub const PASSWORD_FILE: &str = "etc/ipa-rescue-config/ipa-rescue-password";

/// The "this node is rescued" marker, relative to the rescue root.
pub const MARKER_FILE: &str = "etc/.rescued";

/// `<root>/etc/ipa-rescue-config/ipa-rescue-password`.
pub fn password_path(root: &Path) -> PathBuf {
    root.join(PASSWORD_FILE)
}

/// `<root>/etc/.rescued`.
pub fn marker_path(root: &Path) -> PathBuf {
    root.join(MARKER_FILE)
}

/// Whether the node was rescued (the marker exists): the agent must not serve then.
pub fn is_rescued(root: &Path) -> bool {
    marker_path(root).exists()
}

/// Registers `rescue.finalize_rescue`.
pub fn register(r: &mut Registry) {
    r.register(
        "rescue",
        "finalize_rescue",
        Mode::Sync,
        Some(validate),
        finalize_rescue,
    );
}

/// The parameters of `finalize_rescue`. `Debug` never shows the password.
struct FinalizeParams {
    password: String,
    hashed: bool,
}

impl fmt::Debug for FinalizeParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FinalizeParams")
            .field("password", &"******")
            .field("hashed", &self.hashed)
            .finish()
    }
}

impl FinalizeParams {
    /// Reads `rescue_password` (string) and `hashed` (bool); a JSON `null` counts as absent.
    /// The messages name the parameter and the problem, never the value.
    fn parse(p: &Params) -> Result<FinalizeParams, String> {
        let password = match p.get("rescue_password") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("rescue_password must be a string".into()),
        };
        let hashed = match p.get("hashed") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("hashed must be a boolean".into()),
        };
        if password.is_empty() {
            // IPA would write an empty password (a rescue user without one); Ironic never
            // sends one, so refuse it.
            return Err("rescue_password must not be empty".into());
        }
        if hashed && !password.chars().all(|c| c.is_ascii_graphic() && c != ':') {
            // It becomes a field of /etc/shadow.
            return Err(
                "rescue_password (hashed) may only contain printable ASCII characters other \
                 than ':'"
                    .into(),
            );
        }
        Ok(FinalizeParams { password, hashed })
    }
}

fn validate(_ctx: &AgentContext, p: &Params) -> Result<(), CommandError> {
    FinalizeParams::parse(p)
        .map(|_| ())
        .map_err(CommandError::invalid_params)
}

/// Errors of the crypt helpers.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// The hash could not be computed.
    #[error("computing the crypt hash failed: {0}")]
    Hash(String),
}

/// The SHA-256 crypt hash (`$5$rounds=5000$<16 salt characters>$<hash>`) of `password` with a
/// random salt, as IPA's `crypt_password(password, crypt_mksalt('SHA-256'))`.
pub fn hash_password(password: &str) -> Result<String, CryptError> {
    let salt: [u8; 12] = rand::random();
    ShaCrypt::SHA256
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.as_str().to_string())
        .map_err(|e| CryptError::Hash(e.to_string()))
}

/// Whether `password` matches the SHA-256 or SHA-512 crypt `hash` (`$5$...`, `$6$...`).
pub fn verify_password(password: &str, hash: &str) -> bool {
    ShaCrypt::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Writes `line` to `path` with mode 0600 (through a temporary file renamed over it), creating
/// the directory.
fn write_secret(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // An older file of that name may have other permissions.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(line.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

fn finalize_rescue(ctx: &AgentContext, p: Params) -> Result<CommandOutput, CommandError> {
    let params = FinalizeParams::parse(&p).map_err(CommandError::invalid_params)?;
    drop(p);
    let root = &ctx.config.rescue_root;
    let path = password_path(root);
    info!(file = %path.display(), hashed_by_conductor = params.hashed,
          "writing the rescue password hash");
    let line = if params.hashed {
        params.password
    } else {
        hash_password(&params.password).map_err(|e| CommandError::execution(e.to_string()))?
    };
    write_secret(&path, &line).map_err(|e| {
        CommandError::execution(format!(
            "Rescue Operation failed when writing the hashed rescue password to the password \
             file {}. Error {e}",
            path.display()
        ))
    })?;
    let marker = marker_path(root);
    if let Err(e) = std::fs::File::create(&marker) {
        warn!(file = %marker.display(), error = %e, "failed to create the rescue state marker");
    }
    info!("rescue finalized: the API stops after this answer and heartbeats end");
    ctx.stop.request(StopReason::Rescue);
    Ok(CommandOutput::Json(Value::Null))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Params {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn parameters_are_typed_and_never_echoed() {
        let ok = FinalizeParams::parse(&params(json!({"rescue_password": "pw"})));
        assert!(matches!(ok, Ok(FinalizeParams { hashed: false, .. })));
        assert!(format!("{ok:?}").contains("******") && !format!("{ok:?}").contains("pw\""));
        for (bad, why) in [
            (json!({"rescue_password": 12345}), "must be a string"),
            (
                json!({"rescue_password": "x", "hashed": "yes"}),
                "must be a boolean",
            ),
            (json!({}), "must not be empty"),
            (json!({"rescue_password": null}), "must not be empty"),
            (
                json!({"rescue_password": "$6$a$b:c", "hashed": true}),
                "other than ':'",
            ),
            (
                json!({"rescue_password": "$6$a$b\nroot::0", "hashed": true}),
                "printable",
            ),
        ] {
            let err = FinalizeParams::parse(&params(bad.clone()))
                .err()
                .unwrap_or_default();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains("12345") && !err.contains("$6$"), "{err}");
        }
        // A plain password may hold anything.
        assert!(FinalizeParams::parse(&params(json!({"rescue_password": "a b:c"}))).is_ok());
    }

    #[test]
    fn hashes_verify_and_match_the_reference_vector() -> anyhow::Result<()> {
        let h = hash_password("s3cret pass")?;
        assert!(h.starts_with("$5$"), "{h}");
        assert!(verify_password("s3cret pass", &h));
        assert!(!verify_password("s3cret pasS", &h));
        // Two hashes of the same password differ (random salt).
        assert_ne!(h, hash_password("s3cret pass")?);
        // glibc's SHA-256 crypt test vector, and a SHA-512 crypt hash (Ironic's algorithm)
        // made by `openssl passwd -6 -salt saltstring 'Hello world!'`.
        assert!(verify_password(
            "Hello world!",
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        ));
        assert!(verify_password(
            "Hello world!",
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        ));
        assert!(!verify_password("Hello world!", "not a hash"));
        Ok(())
    }

    #[test]
    fn the_secret_file_is_private() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = password_path(dir.path());
        write_secret(&path, "$6$x$y")?;
        write_secret(&path, "$6$x$z")?;
        assert_eq!(std::fs::read_to_string(&path)?, "$6$x$z");
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!path.with_extension("tmp").exists());
        Ok(())
    }
}
