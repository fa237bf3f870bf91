//! The process's lifecycle as the request path sees it: whether the gateway is
//! draining (`/readyz` answers 503 on connections still open), and the moment the
//! drain ends and streams still open are cut (each gets a `gateway_shutting_down`
//! error event before its connection closes). Process-wide, like the signals that
//! drive it.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

static DRAINING: AtomicBool = AtomicBool::new(false);
static CUT: AtomicBool = AtomicBool::new(false);
static CUT_STREAMS: Notify = Notify::const_new();

/// Whether shutdown has begun.
pub fn draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// Shutdown has begun: no longer ready.
pub fn start_draining() {
    DRAINING.store(true, Ordering::Relaxed);
}

/// The drain is over: every open stream ends now, with an error event.
pub fn cut_streams() {
    CUT.store(true, Ordering::SeqCst);
    CUT_STREAMS.notify_waiters();
}

/// Whether [`cut_streams`] was called.
pub fn is_cut() -> bool {
    CUT.load(Ordering::SeqCst)
}

/// Resolves at [`cut_streams`]; it counts from its creation, even before it is first
/// polled, so a stream creates it and then checks [`is_cut`].
pub fn on_cut() -> Notified<'static> {
    CUT_STREAMS.notified()
}
