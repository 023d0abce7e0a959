//! Ctrl-C during `cp`. Killed by SIGINT, a run used to end with status 130 and leave a hidden
//! partial download without a word (issue 10). Now the first Ctrl-C is caught: the transfer in
//! flight stops where it is (a download keeps its temp file and sidecar, a multipart upload is
//! aborted so no invisible parts stay on the server), and the command says what was kept and how
//! to resume. One watcher per run, so a Ctrl-C between two transfers is not lost either.

use tokio::sync::watch;

/// Whether Ctrl-C was pressed, for the transfers of one run (`None`: the watcher is gone).
#[derive(Debug, Clone)]
pub(crate) struct Interrupt(Option<watch::Receiver<bool>>);

impl Interrupt {
    /// Catches Ctrl-C (SIGINT) from now on. Needs the async runtime.
    pub(crate) fn on_ctrl_c() -> Interrupt {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
        });
        Interrupt(Some(rx))
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Completes when Ctrl-C is pressed (never, for [`Interrupt::never`]).
    pub(crate) async fn wait(&self) {
        match &self.0 {
            Some(rx) => {
                let mut rx = rx.clone();
                if rx.wait_for(|v| *v).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}
