//! Waiting for a registry to show what was just written to it (read-after-write lag): a
//! doubling pause, at most [`MAX_POLL`], until a deadline.
//!
//! Level 3 (tokio timers only). It must not talk to a registry; callers look, this only waits.

use std::time::{Duration, Instant};

/// Longest pause between two looks at something not visible yet.
const MAX_POLL: Duration = Duration::from_secs(2);

/// Sleeps before the next look at something not visible yet; `false` when `deadline` passed.
pub(super) async fn pause(deadline: Instant, wait: &mut Duration) -> bool {
    if Instant::now() >= deadline {
        return false;
    }
    tokio::time::sleep((*wait).min(deadline.saturating_duration_since(Instant::now()))).await;
    *wait = (*wait * 2).min(MAX_POLL);
    true
}
