//! Running a handful of futures at once on the current task, without spawning (so they
//! may borrow): all to completion, or until one result says stop — the rest are then
//! dropped, which cancels them.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Polls every future until all are done or `stop` accepts a result. Returns the
/// results in input order, or the stopping result with its index.
pub async fn join_until<F: Future>(
    futures: impl IntoIterator<Item = F>,
    stop: impl Fn(usize, &F::Output) -> bool,
) -> Result<Vec<F::Output>, (usize, F::Output)> {
    let mut pending: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            let Some(fut) = slot else { continue };
            match fut.as_mut().poll(cx) {
                Poll::Ready(out) => {
                    *slot = None;
                    if stop(i, &out) {
                        return Poll::Ready(Err((i, out)));
                    }
                    results[i] = Some(out);
                }
                Poll::Pending => all_done = false,
            }
        }
        if all_done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    Ok(results.into_iter().flatten().collect())
}

/// Runs every future to completion; results in input order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    match join_until(futures, |_, _| false).await {
        Ok(all) => all,
        Err((_, one)) => vec![one],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn stops_early_and_drops_the_rest() {
        let slow = |ms: u64, v: u32| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            v
        };
        let r = join_until([slow(100, 1), slow(10, 2), slow(1000, 3)], |_, v| *v == 2).await;
        assert_eq!(r.unwrap_err(), (1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_input_order() {
        let slow = |ms: u64, v: u32| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            v
        };
        assert_eq!(
            join_all([slow(30, 1), slow(10, 2), slow(20, 3)]).await,
            vec![1, 2, 3]
        );
    }
}
