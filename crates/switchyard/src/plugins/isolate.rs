//! Running plugin code so that it cannot take the gateway down: every call is bounded
//! by the plugin's timeout, and a panic — while building the future or while polling
//! it — becomes an error like any other.

use super::{PluginError, PluginFuture};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Calls `make` and awaits its future under `timeout`, turning panics and timeouts into
/// `Err(description)`.
pub(super) async fn run<'a, T>(
    timeout: Duration,
    make: impl FnOnce() -> PluginFuture<'a, T>,
) -> Result<T, String> {
    let fut = catch_unwind(AssertUnwindSafe(make)).map_err(|p| panic_message(&p))?;
    match tokio::time::timeout(timeout, CatchUnwind(fut)).await {
        Err(_elapsed) => Err(format!("timed out after {timeout:?}")),
        Ok(Err(panic)) => Err(panic),
        Ok(Ok(Err(PluginError(msg)))) => Err(msg),
        Ok(Ok(Ok(v))) => Ok(v),
    }
}

/// Runs a synchronous plugin call, turning a panic into `Err`.
pub(super) fn call<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&p))
}

struct CatchUnwind<'a, T>(PluginFuture<'a, T>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<Result<T, PluginError>, String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(p) => Poll::Ready(Err(panic_message(&p))),
        }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".to_owned());
    format!("panicked: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_while_polling_become_errors() {
        let r: Result<(), String> = run(Duration::from_secs(1), || {
            Box::pin(async { panic!("boom") })
        })
        .await;
        assert_eq!(r.unwrap_err(), "panicked: boom");
    }

    #[tokio::test]
    async fn panics_while_building_become_errors() {
        let r: Result<(), String> = run(Duration::from_secs(1), || panic!("early")).await;
        assert_eq!(r.unwrap_err(), "panicked: early");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_plugins_time_out() {
        let r: Result<(), String> = run(Duration::from_millis(50), || {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
        })
        .await;
        assert!(r.unwrap_err().starts_with("timed out"));
    }
}
