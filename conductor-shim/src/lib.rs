//! A minimal Ironic-compatible conductor ("the shim") for driving `ironic-agent`.
//!
//! It serves the part of Ironic's REST API that a ramdisk agent calls (`/`, `/v1`,
//! `/v1/lookup`, `/v1/heartbeat/{node}`, `/v1/continue_inspection`), keeps its nodes in an
//! embedded SQLite file, drives the agent's own REST API the way Ironic's agent client does,
//! and offers a CLI for operators and tests.
//!
//! Modules, one concept each:
//! - [`state`]: Ironic's provision states and which of them allow lookup / heartbeats.
//! - [`model`]: the typed node, port and `driver_internal_info` records.
//! - [`store`]: the SQLite store (schema, queries, transactions).
//! - [`mac`], [`token`], [`timefmt`], [`mask`], [`pyjson`]: small helpers.
//! - [`node_dict`]: the node and port dictionaries sent to the agent as command params.
//! - [`api`]: the axum server implementing the ramdisk endpoints.
//! - [`conductor`]: what happens after a heartbeat (step caching through the agent).
//! - [`steps`]: the agent step protocol and the heartbeat-driven step runner shared by
//!   deploys and cleaning.
//! - [`deploy`]: deploying an image through the agent, driven by heartbeats.
//! - [`clean`]: automated and manual cleaning through the agent, driven by heartbeats.
//! - [`timeouts`]: the deploy callback timeout (Ironic's `deploy_callback_timeout`).
//! - [`rescue`]: rescue (`finalize_rescue` on the heartbeat in `rescue wait`).
//! - [`agent_client`]: the HTTP client for the agent's `/v1/commands/` API.
//! - [`lockdown`]: `system.lockdown` for nodes that must not be powered off.
//! - [`inventory`]: a typed summary of the inspection inventory for display.
//! - [`tls`]: serving the API over HTTPS (server certificate, optional client CA).
//! - [`pki`]: a lab CA with server and client certificates (`conductor-shim pki`).
//! - [`cli`]: the command-line interface.

pub mod agent_client;
pub mod api;
pub mod clean;
pub mod cli;
pub mod conductor;
pub mod deploy;
pub mod inventory;
pub mod lockdown;
pub mod mac;
pub mod mask;
pub mod model;
pub mod node_dict;
pub mod pki;
pub mod pyjson;
pub mod ramdisk_logs;
pub mod rescue;
pub mod state;
pub mod steps;
pub mod store;
pub mod timefmt;
pub mod timeouts;
pub mod tls;
pub mod token;
