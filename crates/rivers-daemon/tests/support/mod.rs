//! Fakes shared by the daemon's integration tests.

use futures::future::BoxFuture;
use rivers_daemon::RunLauncher;
use rivers_storage::RunRecord;
use tokio::sync::mpsc;

/// A launcher that only reports each run it is handed; the test plays the executor.
pub(crate) struct RecordingLauncher {
    launched: mpsc::UnboundedSender<RunRecord>,
}

impl RecordingLauncher {
    /// The launcher, and the channel its launches arrive on.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<RunRecord>) {
        let (launched, receiver) = mpsc::unbounded_channel();
        (Self { launched }, receiver)
    }
}

impl RunLauncher for RecordingLauncher {
    fn launch(&self, run: RunRecord) -> BoxFuture<'static, Result<(), String>> {
        let _ = self.launched.send(run);
        Box::pin(async { Ok(()) })
    }
}
