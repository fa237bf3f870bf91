//! Where idle connections wait, and the reaper that closes them when nobody comes back.
//!
//! One pool per worker thread, so a request checks connections out and in on its own
//! thread's pool: its mutex is only ever contended by the reaper, for a moment every
//! [`REAP_EVERY`]. Each pool is also listed in a process-wide registry (once per thread,
//! not per request) so [`reap_idle`] can sweep every thread's pool: idle connections past
//! their expiry — or that the upstream closed — are closed even when their thread never
//! serves another request. Closing a connection (dropping it) keeps
//! `switchyard_upstream_connections_open` right.

use super::destination::ConnKey;
use super::idle::IdleList;
use super::Conn;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// How often the reaper sweeps every pool: an idle connection is closed at most this
/// long after it expired.
pub const REAP_EVERY: Duration = Duration::from_secs(1);

/// One thread's idle connections, per host.
pub(super) type Pool = HashMap<ConnKey, IdleList<Conn>>;

/// Every thread's pool, for the reaper; a thread's entry dies with the thread.
static POOLS: Mutex<Vec<Weak<Mutex<Pool>>>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's pool. (Any worker of the runtime can drive any connection, so
    /// where a connection waits does not matter for correctness.)
    static LOCAL: Arc<Mutex<Pool>> = registered();
}

fn registered() -> Arc<Mutex<Pool>> {
    let pool = Arc::new(Mutex::new(Pool::new()));
    locked(&POOLS).push(Arc::downgrade(&pool));
    pool
}

/// A poisoned lock still holds consistent data here: every critical section only moves
/// whole entries in or out.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on this thread's pool.
pub(super) fn with_local<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    LOCAL.with(|pool| f(&mut locked(pool)))
}

/// Sweeps every thread's pool every [`REAP_EVERY`], forever; the gateway runs it as a
/// task for as long as it serves.
pub async fn reap_idle() {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        reap_now(Instant::now());
    }
}

/// Closes every idle connection, on every thread, that expired by `now` or that the
/// upstream closed; returns how many. Sockets are closed after each pool's lock is let
/// go, so a request on that thread waits only for the sweep itself.
pub(super) fn reap_now(now: Instant) -> usize {
    let pools: Vec<Arc<Mutex<Pool>>> = {
        let mut registry = locked(&POOLS);
        registry.retain(|pool| pool.strong_count() > 0);
        registry.iter().filter_map(Weak::upgrade).collect()
    };
    let mut closed = 0;
    let mut dead = Vec::new();
    for pool in pools {
        {
            let mut pool = locked(&pool);
            for list in pool.values_mut() {
                list.reap(now, &mut dead, Conn::is_reusable);
            }
            pool.retain(|_, list| !list.is_empty());
        }
        closed += dead.len();
        dead.clear(); // closes them
    }
    closed
}
