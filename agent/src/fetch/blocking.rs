//! Driving the async client from a plain thread: a private current-thread runtime polled by
//! the calling thread itself, every wait bounded and ended early by a shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use super::error::{FetchError, TimeoutPhase};

/// A private runtime and the shutdown latch its waits watch. Must be used (and dropped) on a
/// plain thread, not inside an async runtime (see [`on_own_thread`]).
pub struct Blocking {
    rt: tokio::runtime::Runtime,
    stop: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for Blocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocking").finish_non_exhaustive()
    }
}

impl Blocking {
    /// A runtime whose waits end with [`FetchError::Stopped`] once `stop` turns `true`.
    pub fn new(stop: Option<watch::Receiver<bool>>) -> Result<Self, FetchError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| FetchError::Settings(format!("starting the HTTP runtime: {e}")))?;
        Ok(Blocking { rt, stop })
    }

    /// Builds a client inside the runtime (its connection pool registers with it).
    pub fn client(&self, s: &super::ClientSettings) -> Result<reqwest::Client, FetchError> {
        let _guard = self.rt.enter();
        super::client::build(s)
    }

    /// Whether a shutdown was requested.
    pub fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Runs `fut` to completion, or until the shutdown. Futures that need the runtime when
    /// they are made (a request with a timeout) must be made inside an `async` block.
    pub fn run<F: Future>(&self, fut: F) -> Result<F::Output, FetchError> {
        let Some(stop) = self.stop.clone() else {
            return Ok(self.rt.block_on(fut));
        };
        if *stop.borrow() {
            return Err(FetchError::Stopped);
        }
        self.rt.block_on(async move {
            tokio::select! {
                out = fut => Ok(out),
                () = crate::shutdown::requested(stop) => Err(FetchError::Stopped),
            }
        })
    }

    /// Runs `fut` for at most `limit` (else a `phase` timeout), or until the shutdown.
    pub fn run_for<F: Future>(
        &self,
        limit: Duration,
        phase: TimeoutPhase,
        fut: F,
    ) -> Result<F::Output, FetchError> {
        // The timer is made inside the runtime (it needs its context).
        self.run(async move { tokio::time::timeout(limit, fut).await })?
            .map_err(|_| FetchError::Timeout {
                phase,
                after: limit,
            })
    }

    /// Sleeps `d`, or until the shutdown.
    pub fn pause(&self, d: Duration) -> Result<(), FetchError> {
        self.run(async move { tokio::time::sleep(d).await })
    }
}

/// Runs `f` on a fresh thread and returns its result (a [`Blocking`] must not run inside an
/// async runtime, and callers may be on one); `Err` when the thread could not start or
/// panicked.
pub fn on_own_thread<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(s, f)
            .map_err(|e| format!("cannot start a thread: {e}"))?
            .join()
            .map_err(|_| format!("the {name} thread panicked"))
    })
}
