//! Process shutdown (SIGTERM, SIGINT): a latch that the running command's long operations
//! watch so that they fail cleanly at once (an image write wipes the partition-table areas,
//! as after any failure), and a count of running commands so that the agent can wait for that,
//! bounded, before it exits.
//!
//! Unlike [`crate::stop`] (the API stops serving, the process stays), this ends the process.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

#[derive(Debug)]
struct Inner {
    requested: watch::Sender<bool>,
    running: watch::Sender<usize>,
}

/// The shutdown latch and the running-command count; clones share them.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            inner: Arc::new(Inner {
                requested: watch::Sender::new(false),
                running: watch::Sender::new(0),
            }),
        }
    }
}

/// Counts one running command until dropped.
#[derive(Debug)]
pub struct Running {
    inner: Arc<Inner>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.inner.running.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Shutdown {
    /// Asks every watcher to stop. Idempotent.
    pub fn request(&self) {
        self.inner
            .requested
            .send_if_modified(|r| !std::mem::replace(r, true));
    }

    /// Whether a shutdown was requested.
    pub fn is_requested(&self) -> bool {
        *self.inner.requested.borrow()
    }

    /// A receiver that turns `true` on shutdown; usable from any runtime (or none).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.requested.subscribe()
    }

    /// Marks a command as running until the guard is dropped.
    pub fn running(&self) -> Running {
        self.inner.running.send_modify(|n| *n += 1);
        Running {
            inner: self.inner.clone(),
        }
    }

    /// Waits until no command runs, at most `limit`; returns whether none does.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let mut rx = self.inner.running.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Resolves once `rx` turns `true` (never, if its sender is gone while `false`).
pub async fn requested(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|r| *r).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn latch_and_running_count() -> anyhow::Result<()> {
        let s = Shutdown::default();
        assert!(!s.is_requested());
        let waiter = tokio::spawn(requested(s.subscribe()));
        let guard = s.running();
        assert!(!s.wait_idle(Duration::from_millis(50)).await);
        s.request();
        s.request();
        assert!(s.is_requested());
        tokio::time::timeout(Duration::from_secs(5), waiter).await??;
        drop(guard);
        assert!(s.wait_idle(Duration::from_secs(5)).await);
        Ok(())
    }
}
