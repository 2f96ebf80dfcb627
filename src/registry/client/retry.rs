//! When a failed registry request is sent again, and after how long: exponential backoff with
//! jitter from [`RegistryOptions::min_backoff`] up to [`RegistryOptions::max_backoff`], at
//! least what `Retry-After` asks (RFC 9110 section 10.2.3, capped), at most
//! [`RegistryOptions::retries`] times per request, and never past the command's deadline
//! ([`RegistryOptions::deadline`]). Also the counters of requests and retries, and the progress
//! event each retry emits.
//!
//! Level 2, pure bookkeeping: it sleeps and counts but must not send requests or read answers
//! (the transport and the upload session do, and ask here whether and when to go again).
//! Which failures are retryable is [`RegistryError::is_transient`]'s decision.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use super::options::RegistryOptions;
use crate::progress::{Event, Sink};
use crate::registry::RegistryError;

/// The longest `Retry-After` honoured; longer ones are cut to this.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// The retry budget of one request (or one stalled upload chunk): the delays still allowed.
pub(super) struct Attempts {
    delays: ExponentialBackoff,
    /// The longest backoff (backon's jitter may add up to one more delay on top of its cap).
    max: Duration,
    deadline: Option<Instant>,
    /// Retries granted so far.
    pub(super) granted: u32,
}

impl Attempts {
    /// A fresh budget under `options`.
    pub(super) fn new(options: &RegistryOptions) -> Attempts {
        let delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(options.min_backoff)
            .with_max_delay(options.max_backoff.max(options.min_backoff))
            .with_max_times(options.retries as usize)
            .build();
        Attempts {
            delays,
            max: options.max_backoff.max(options.min_backoff),
            deadline: options.deadline,
            granted: 0,
        }
    }

    /// How long to wait before sending again after `err`; `None` when `err` is final (not
    /// transient), the retries are used up, or waiting would pass the deadline.
    pub(super) fn next_delay(&mut self, err: &RegistryError) -> Option<Duration> {
        if !err.is_transient() {
            return None;
        }
        self.next_delay_for(retry_after(err))
    }

    /// Like [`Attempts::next_delay`] for a failure already judged retryable, with the
    /// `Retry-After` it carried, if any.
    pub(super) fn next_delay_for(&mut self, asked: Option<Duration>) -> Option<Duration> {
        let backoff = self.delays.next()?.min(self.max);
        let wait = backoff.max(asked.unwrap_or_default().min(MAX_RETRY_AFTER));
        if self.deadline.is_some_and(|d| Instant::now() + wait > d) {
            return None;
        }
        self.granted += 1;
        Some(wait)
    }
}

/// What `Retry-After` an error carries (whole seconds, as the status kept it).
fn retry_after(err: &RegistryError) -> Option<Duration> {
    match err {
        RegistryError::Status {
            retry_after_secs: Some(after),
            ..
        } => Some(Duration::from_secs(u64::from(*after))),
        _ => None,
    }
}

/// Requests and retries counted over a client's life, and where retry events go.
#[derive(Default)]
pub(super) struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    sink: OnceLock<Arc<dyn Sink>>,
}

/// A snapshot of [`Counters`]: HTTP requests sent (retries included) and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestStats {
    /// Requests sent to registries and token services, retries included.
    pub requests: u64,
    /// Of those, requests sent again after a retryable failure (or chunks resumed).
    pub retries: u64,
}

impl Counters {
    /// Counts one request sent.
    pub(super) fn sent(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends retry events to `sink` from now on (the first sink given wins).
    pub(super) fn report_to(&self, sink: Arc<dyn Sink>) {
        let _ = self.sink.set(sink);
    }

    /// The counts so far.
    pub(super) fn stats(&self) -> RequestStats {
        RequestStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }

    /// Counts a retry of `request` on `registry` and reports it (event and log).
    pub(super) fn retrying(
        &self,
        registry: &str,
        request: &str,
        attempt: u32,
        err: &RegistryError,
        delay: Duration,
    ) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%registry, %request, error = %err, ?delay, "registry request failed; retrying");
        if let Some(sink) = self.sink.get() {
            sink.emit(Event::RegistryRetry {
                registry: registry.to_string(),
                request: request.to_string(),
                attempt,
                error: err.to_string(),
                delay_ms: delay.as_millis() as u64,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, after: Option<u32>) -> RegistryError {
        RegistryError::Status {
            registry: "r".into(),
            what: "w".into(),
            status,
            body_excerpt: String::new(),
            retry_after_secs: after,
        }
    }

    #[test]
    fn backoff_grows_honours_retry_after_and_stops() {
        let options = RegistryOptions {
            retries: 3,
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            ..RegistryOptions::default()
        };
        let mut a = Attempts::new(&options);
        // Final answers are never retried and use no budget.
        assert_eq!(a.next_delay(&status(404, None)), None);
        let first = a.next_delay(&status(503, None)).unwrap();
        assert!(first >= Duration::from_millis(10) && first < Duration::from_millis(20));
        let second = a.next_delay(&status(503, Some(2))).unwrap();
        assert_eq!(second, Duration::from_secs(2), "Retry-After wins");
        let third = a.next_delay(&status(502, None)).unwrap();
        assert!(
            third <= Duration::from_millis(40),
            "never past the cap: {third:?}"
        );
        assert_eq!(a.next_delay(&status(503, None)), None, "three retries only");
        assert_eq!(a.granted, 3);
    }

    #[test]
    fn nothing_is_retried_past_the_deadline() {
        let options = RegistryOptions {
            retries: 10,
            min_backoff: Duration::from_millis(50),
            deadline: Some(Instant::now() + Duration::from_millis(20)),
            ..RegistryOptions::default()
        };
        assert_eq!(Attempts::new(&options).next_delay(&status(503, None)), None);
    }
}
