//! Test support: the ingest stack over a temporary directory, as `serve` builds it (store
//! writer, log recovery, checkpointer, appender, pipeline).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use calltrail_retention::{Layout, StoreConfig, StoreStats, StoreWriter};
use calltrail_schemas::Attributor;

use crate::pipeline::Pipeline;
use crate::wal::{self, RecoveryReport, WalConfig, WalStats, WalWriter};

/// A running stack.
pub(crate) struct Stack {
    pub(crate) pipeline: Pipeline,
    pub(crate) wal: WalWriter,
    pub(crate) writer: StoreWriter,
    pub(crate) checkpointer: tokio::task::JoinHandle<()>,
    pub(crate) stats: Arc<WalStats>,
    pub(crate) report: RecoveryReport,
}

/// The log directory of a data directory.
pub(crate) fn wal_dir(data: &Path) -> PathBuf {
    data.join("wal")
}

/// Starts the stack over `data`, recovering whatever log is there.
pub(crate) async fn start(data: &Path, wal_config: WalConfig, store: StoreConfig) -> Stack {
    let key = calltrail_retention::note::SigningKey::generate("test.calltrail").unwrap();
    let integrity = calltrail_retention::chain::IntegrityConfig::default();
    let writer = StoreWriter::spawn(
        store,
        Arc::new(Layout::new(data, "t")),
        &integrity,
        &key,
        &calltrail_retention::policy::RetentionConfig::default(),
    )
    .unwrap();
    let (dir, d, sink) = (wal_dir(data), data.to_owned(), writer.handle());
    let (report, _) =
        tokio::task::spawn_blocking(move || wal::recover_into(&dir, &d, &sink).unwrap())
            .await
            .unwrap();
    let stats = Arc::new(WalStats::after_recovery(&report));
    let checkpointer = wal::spawn_checkpointer(wal_dir(data), writer.flushed(), Arc::clone(&stats));
    let wal = WalWriter::start(
        wal_dir(data),
        wal_config,
        report.next_seq,
        writer.handle(),
        Arc::clone(&stats),
    )
    .unwrap();
    let pipeline = Pipeline::new(Arc::new(Attributor::default()), wal.handle(), 256 << 20);
    Stack {
        pipeline,
        wal,
        writer,
        checkpointer,
        stats,
        report,
    }
}

impl Stack {
    /// Stops in `serve`'s order and returns the store's counters.
    pub(crate) async fn shutdown(self) -> Arc<StoreStats> {
        drop(self.pipeline);
        self.wal.shutdown().await;
        let stats = self.writer.shutdown().await;
        self.checkpointer.await.unwrap();
        stats
    }
}
