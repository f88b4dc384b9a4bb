//! What a deploy reads from the agent's configuration and from the conductor's lookup
//! `config`: download, TLS, checksum and image-format settings.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::lookup::LookupConfig;
use crate::config::{Config, KernelParams};
use crate::fetch::{ClientIdentity, TlsSettings};
use crate::image::options::DownloadOptions;
use crate::shutdown::Shutdown;
use crate::state::Shared;

/// Formats the agent accepts when the conductor did not say (IPA's default).
const DEFAULT_PERMITTED: &[&str] = &["raw", "gpt", "qcow2"];

/// The deploy's settings: fixed ones from the configuration, the rest read from the lookup
/// `config` when asked (lookup may not have happened yet).
#[derive(Debug, Clone, Default)]
pub struct DeploySettings {
    insecure: bool,
    cafile: Option<PathBuf>,
    client_identity: Option<ClientIdentity>,
    kernel: KernelParams,
    lookup: Arc<Shared<LookupConfig>>,
    shutdown: Shutdown,
}

impl DeploySettings {
    /// Settings from `config` and, once looked up, `lookup`.
    pub fn new(config: &Config, lookup: Arc<Shared<LookupConfig>>) -> Self {
        DeploySettings {
            insecure: config.insecure,
            cafile: config.cafile.clone(),
            client_identity: TlsSettings::for_ironic(config).client_identity,
            kernel: config.kernel.clone(),
            lookup,
            shutdown: Shutdown::default(),
        }
    }

    /// These settings, with downloads that stop when `shutdown` is requested.
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// What long operations of a deploy watch to stop at once (SIGTERM).
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The kernel command line (step priorities, download tuning).
    pub fn kernel(&self) -> &KernelParams {
        &self.kernel
    }

    /// The lookup `config`, once looked up.
    pub fn lookup(&self) -> Option<LookupConfig> {
        self.lookup.get()
    }

    /// Download settings from the agent configuration and the lookup `config`.
    pub fn download_options(&self) -> DownloadOptions {
        let lookup = self.lookup();
        let k = &self.kernel;
        let secs = |key: &str| k.get(key).and_then(|v| v.parse::<u64>().ok());
        let mut o = DownloadOptions {
            insecure: self.insecure,
            cafile: self.cafile.clone(),
            client_identity: self.client_identity.clone(),
            tls_min_version: lookup
                .as_ref()
                .and_then(|c| c.tls_min_version.clone())
                .unwrap_or_else(|| "1.2".into()),
            shutdown: Some(self.shutdown.clone()),
            ..DownloadOptions::default()
        };
        if let Some(t) = secs("ipa-image-download-connection-timeout") {
            o.connection_timeout = std::time::Duration::from_secs(t.max(1));
        }
        if let Some(r) = secs("ipa-image-download-connection-retries") {
            o.retries = u32::try_from(r).unwrap_or(u32::MAX);
        }
        if let Some(i) = secs("ipa-image-download-connection-retry-interval") {
            o.retry_interval = std::time::Duration::from_secs(i);
        }
        if let Some(m) = secs("ipa-image-download-max-duration").filter(|m| *m > 0) {
            o.max_duration = Some(std::time::Duration::from_secs(m));
        }
        o
    }

    /// Whether MD5 checksums are allowed (lookup's `agent_md5_checksum_enable`; off by
    /// default, as in IPA 13).
    pub fn md5_enabled(&self) -> bool {
        self.lookup()
            .and_then(|c| c.agent_md5_checksum_enable)
            .unwrap_or(false)
    }

    /// The image formats the conductor permits (IPA's default list when it did not say).
    pub fn permitted_formats(&self) -> Vec<String> {
        self.lookup()
            .and_then(|c| c.permitted_image_formats)
            .unwrap_or_else(|| DEFAULT_PERMITTED.iter().map(|s| s.to_string()).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;
    use crate::config::Flags;

    fn config(cert: Option<&str>, key: Option<&str>) -> anyhow::Result<Config> {
        let mut c = Config::from_parts(
            &Flags::parse_from(["ironic-agent"]),
            KernelParams::parse("ipa-insecure=0"),
        )?;
        c.certfile = cert.map(PathBuf::from);
        c.keyfile = key.map(PathBuf::from);
        c.cafile = Some(PathBuf::from("/etc/ironic-python-agent/ironic.crt"));
        Ok(c)
    }

    /// As IPA's download session: the CA and the client certificate of the configuration.
    #[test]
    fn downloads_present_the_client_certificate() -> anyhow::Result<()> {
        let c = config(Some("/etc/agent.crt"), Some("/etc/agent.key"))?;
        let tls = DeploySettings::new(&c, Arc::default())
            .download_options()
            .tls_settings();
        assert_eq!(
            tls.cafile.as_deref(),
            Some(Path::new("/etc/ironic-python-agent/ironic.crt"))
        );
        assert_eq!(
            tls.client_identity,
            Some(ClientIdentity {
                certfile: PathBuf::from("/etc/agent.crt"),
                keyfile: PathBuf::from("/etc/agent.key"),
            })
        );
        // One without the other is ignored, as IPA does.
        let c = config(Some("/etc/agent.crt"), None)?;
        let tls = DeploySettings::new(&c, Arc::default())
            .download_options()
            .tls_settings();
        assert_eq!(tls.client_identity, None);
        Ok(())
    }
}
