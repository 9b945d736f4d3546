//! Tasks that hold the single SQLite writer run on threads of their own.
//!
//! The buy writer and the purchase watcher await SQLite's worker thread several times while they hold the
//! only write connection. As tasks among the HTTP tasks, each of those awaits would wait again for a turn
//! behind every request queued on the shared runtime, and everything queued for the writer with it; on a
//! single-threaded runtime of their own they resume as soon as the operating system schedules their thread.

use std::future::Future;

/// Runs `task` to completion on a new thread named `name` with its own single-threaded Tokio runtime; if
/// that thread cannot be started, on the shared runtime instead (slower under load, never lost).
pub fn spawn<F>(name: &str, task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let (give, take) = std::sync::mpsc::channel::<F>();
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
}
