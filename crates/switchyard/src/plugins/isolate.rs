//! Running plugin code so that it cannot take the gateway down: every call is bounded
//! by the plugin's timeout, and a panic — while building the future or while polling
//! it — becomes a [`Failure`] like any other.

use super::{PluginError, PluginFuture};
use futures_util::FutureExt as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Why a plugin call produced no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// It ran past its `timeout`.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// It panicked (the payload's text, when it had one).
    #[error("panicked: {0}")]
    Panicked(String),
    /// It reported an error of its own.
    #[error("{0}")]
    Failed(#[from] PluginError),
}

/// Calls `make` and awaits its future under `timeout`.
pub(super) async fn run<'a, T>(
    timeout: Duration,
    make: impl FnOnce() -> PluginFuture<'a, T>,
) -> Result<T, Failure> {
    let fut = call(make)?;
    match tokio::time::timeout(timeout, AssertUnwindSafe(fut).catch_unwind()).await {
        Err(_elapsed) => Err(Failure::TimedOut(timeout)),
        Ok(Err(panic)) => Err(panicked(&panic)),
        Ok(Ok(result)) => Ok(result?),
    }
}

/// Runs a synchronous plugin call, turning a panic into a [`Failure`].
pub(super) fn call<T>(f: impl FnOnce() -> T) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panicked(&p))
}

fn panicked(p: &Box<dyn std::any::Any + Send>) -> Failure {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".to_owned());
    Failure::Panicked(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_while_polling_become_errors() {
        let r: Result<(), Failure> = run(Duration::from_secs(1), || {
            Box::pin(async { panic!("boom") })
        })
        .await;
        assert_eq!(r.unwrap_err().to_string(), "panicked: boom");
    }

    #[tokio::test]
    async fn panics_while_building_become_errors() {
        let r: Result<(), Failure> = run(Duration::from_secs(1), || panic!("early")).await;
        assert_eq!(r.unwrap_err().to_string(), "panicked: early");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_plugins_time_out() {
        let r: Result<(), Failure> = run(Duration::from_millis(50), || {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
        })
        .await;
        assert!(matches!(r, Err(Failure::TimedOut(_))));
    }

    #[tokio::test]
    async fn a_plugin_error_is_kept_as_it_was() {
        let r: Result<(), Failure> = run(Duration::from_secs(1), || {
            Box::pin(async { Err(PluginError::Status(http::StatusCode::BAD_GATEWAY)) })
        })
        .await;
        assert!(matches!(
            r,
            Err(Failure::Failed(PluginError::Status(s))) if s == http::StatusCode::BAD_GATEWAY
        ));
    }
}
