//! Tasks that hold the single SQLite writer run on threads of their own.
//!
//! The buy writer and the purchase watcher await SQLite's worker thread several times while they hold the
//! only write connection. As tasks among the HTTP tasks, each of those awaits would wait again for a turn
//! behind every request queued on the shared runtime, and everything queued for the writer with it; on a
//! single-threaded runtime of their own they resume as soon as the operating system schedules their thread.

use std::future::Future;

/// Resolves once a task started by [`spawn`] has ended (or its thread died): a shutdown waits on it so the
/// task's last round is not cut in the middle when the process exits.
#[derive(Debug)]
pub struct Finished(tokio::sync::oneshot::Receiver<()>);

impl Finished {
    /// Waits for the task's end.
    pub async fn wait(self) {
        // An error means the sender was dropped: the task panicked or its thread is gone; either way it ended.
        let _ = self.0.await;
    }
}

/// Runs `task` to completion on a new thread named `name` with its own single-threaded Tokio runtime; if
/// that thread cannot be started, on the shared runtime instead (slower under load, never lost).
pub fn spawn<F>(name: &str, task: F) -> Finished
where
    F: Future<Output = ()> + Send + 'static,
{
    let (done, finished) = tokio::sync::oneshot::channel();
    let task = async move {
        task.await;
        let _ = done.send(());
    };
    let (give, take) = std::sync::mpsc::channel();
    let started = tokio::runtime::Builder::new_current_thread().enable_all().build().and_then(|runtime| {
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            if let Ok(task) = take.recv() {
                runtime.block_on(task);
            }
        })
    });
    match started {
        Ok(_) => {
            // The thread waits for exactly this task; it only ends after receiving it.
            if let Err(std::sync::mpsc::SendError(task)) = give.send(task) {
                tokio::spawn(task);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, thread = name, "could not start a dedicated thread; using the shared runtime");
            tokio::spawn(task);
        }
    }
    Finished(finished)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_task_runs_on_its_own_named_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        super::spawn("skingate-test", async move {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        });
        assert_eq!(rx.await.unwrap().as_deref(), Some("skingate-test"));
    }

    #[tokio::test]
    async fn finished_resolves_when_the_task_ends_and_not_before() {
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let finished = super::spawn("skingate-test", async move {
            let _ = hold.await;
        });
        let mut wait = std::pin::pin!(finished.wait());
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), &mut wait).await.is_err(), "still running");
        release.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), wait).await.expect("ended");
    }
}
