//! Outbound HTTP(S), one way for the whole agent: the image download, the checksum file, the
//! config drive, `inject_files` contents and the conductor client all build their client
//! here ([`client::build`]: the agent's TLS roots/CA file/`insecure`, TLS minimum version,
//! proxies, timeouts, redirects limited to `http(s)://`), and classify failures once
//! ([`FetchError`]): what is refused fails at once, what may pass is retried by IPA's three
//! settings ([`RetryPolicy`]) and nothing else.
//!
//! Blocking callers (the image pipeline, the config drive, `inject_files`) drive the async
//! client on a private current-thread runtime ([`blocking::Blocking`]) whose every wait also
//! ends when the agent shuts down ([`crate::shutdown`]).

pub mod blocking;
pub mod client;
pub mod error;
pub mod get;
pub mod retry;
pub mod settings;

pub use error::{FetchError, TimeoutPhase};
pub use get::get_bytes;
pub use retry::RetryPolicy;
pub use settings::{ClientIdentity, ClientSettings, Proxies, TlsSettings};
