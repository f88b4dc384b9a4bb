//! The "stop serving" signal: after `rescue.finalize_rescue` or `system.lockdown` (IPA's
//! `serve_api = False`) the API server closes its listener once the command's response has
//! been delivered, and the heartbeat loop ends. The process itself stays alive.

use tokio::sync::watch;

/// Why the agent stops serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `rescue.finalize_rescue`: the rescue user takes over; the network stays up.
    Rescue,
    /// `system.lockdown`: the network interfaces are taken down afterwards.
    Lockdown,
}

/// A one-way latch observed by the API server and the heartbeat loop.
#[derive(Debug)]
pub struct StopSignal {
    tx: watch::Sender<Option<StopReason>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal {
            tx: watch::Sender::new(None),
        }
    }
}

impl StopSignal {
    /// Asks the API server and the heartbeat loop to stop. The first reason wins.
    pub fn request(&self, reason: StopReason) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// The reason, once a stop was requested.
    pub fn requested(&self) -> Option<StopReason> {
        *self.tx.borrow()
    }

    /// A receiver for [`StopSignal::wait`]-style waiting outside the context.
    pub fn subscribe(&self) -> watch::Receiver<Option<StopReason>> {
        self.tx.subscribe()
    }

    /// Waits until a stop is requested; returns its reason.
    pub async fn wait(&self) -> StopReason {
        wait(self.subscribe()).await
    }
}

/// Waits on `rx` until a stop is requested; returns its reason.
pub async fn wait(mut rx: watch::Receiver<Option<StopReason>>) -> StopReason {
    loop {
        if let Some(reason) = *rx.borrow_and_update() {
            return reason;
        }
        if rx.changed().await.is_err() {
            // The sender (the context) is gone: nothing will ever request a stop.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins_and_waiters_wake() -> anyhow::Result<()> {
        let s = StopSignal::default();
        assert_eq!(s.requested(), None);
        let waiter = tokio::spawn(wait(s.subscribe()));
        s.request(StopReason::Lockdown);
        s.request(StopReason::Rescue);
        assert_eq!(s.requested(), Some(StopReason::Lockdown));
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await??;
        assert_eq!(woken, StopReason::Lockdown);
        // A late waiter returns at once.
        assert_eq!(s.wait().await, StopReason::Lockdown);
        Ok(())
    }
}
