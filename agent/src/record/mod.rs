//! What the agent records of its commands: IPA's five-key result model ([`result`]), the
//! recent-command history kept for the log bundle ([`history`]) and what is scrubbed from it
//! ([`scrub`]). Below both the commands that produce results and the context that keeps the
//! history.

pub mod history;
pub mod result;
pub mod scrub;

pub use result::{CommandError, CommandOutput, CommandResult, CommandStatus};
