//! Where the pipeline keeps the position it is safe to resume from.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Error, ErrorKind, Result, source::Position};

/// Persists the safe resume position.
///
/// The pipeline saves as soon as the position moves (after the first delivered batch),
/// then at most once per [`min_interval`](CheckpointStore::min_interval), and once more at
/// shutdown. A failed write is retried with backoff; delivery never waits for it.
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// The least time between two saves: what a write costs the store, traded against
    /// the events re-sent after a crash (those delivered since the last save).
    ///
    /// The default, one second, suits a store behind an API (a ConfigMap write is an
    /// etcd write replicated across the control plane).
    fn min_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// The last saved position.
    ///
    /// # Errors
    /// When the store exists but cannot be read or parsed.
    async fn load(&self) -> Result<Option<Position>>;

    /// Save a position.
    ///
    /// # Errors
    /// When the write fails; the pipeline retries later.
    async fn save(&self, position: &Position) -> Result<()>;
}

/// A type-erased checkpoint store.
pub type BoxCheckpointStore = Box<dyn CheckpointStore>;

impl fmt::Debug for dyn CheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn CheckpointStore")
    }
}

/// A checkpoint in a local file, replaced atomically (write, fsync, rename).
#[derive(Debug, Clone)]
pub struct FileCheckpoint {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct FileContents {
    position: Position,
    saved_at: String,
}

impl FileCheckpoint {
    /// A store at `path`; its directory must exist.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileCheckpoint { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Between two saves of a [`FileCheckpoint`]. A save (write, fsync, rename, fsync of the
/// directory) takes about 0.35 ms on a virtual machine's ext4 disk (`cargo bench -p
/// eventer-core --bench checkpoint`); a network volume's fsync can take 10 ms or more.
/// At this spacing even that is a tenth of one blocking thread, off the event path, while
/// a crash repeats at most the events delivered in the last 200 ms.
const FILE_MIN_INTERVAL: Duration = Duration::from_millis(200);

#[async_trait]
impl CheckpointStore for FileCheckpoint {
    fn min_interval(&self) -> Duration {
        FILE_MIN_INTERVAL
    }

    /// A file that is not a checkpoint (cut short by a full disk, edited by hand) is moved
    /// aside to `<path>.corrupt` and reported: refusing to start on it would only make the
    /// process crash-loop and deliver nothing.
    async fn load(&self) -> Result<Option<Position>> {
        let problem = match tokio::fs::read(&self.path).await {
            Ok(bytes) => match serde_json::from_slice::<FileContents>(&bytes) {
                Ok(contents) => return Ok(Some(contents.position)),
                Err(e) => e,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(
                    Error::new(ErrorKind::Io, format!("cannot read checkpoint {}", self.path.display())).with_source(e)
                );
            }
        };
        let mut aside = self.path.as_os_str().to_owned();
        aside.push(".corrupt");
        tokio::fs::rename(&self.path, &aside).await.map_err(|e| {
            Error::new(ErrorKind::Io, format!("cannot move the corrupt checkpoint {} aside", self.path.display()))
                .with_source(e)
        })?;
        tracing::error!(
            path = %self.path.display(),
            moved_to = %std::path::Path::new(&aside).display(),
            error = %problem,
            "The checkpoint file is corrupt; moved it aside and starting as the source is configured."
        );
        Ok(None)
    }

    async fn save(&self, position: &Position) -> Result<()> {
        let contents = FileContents { position: position.clone(), saved_at: jiff::Timestamp::now().to_string() };
        let json = serde_json::to_vec(&contents)
            .map_err(|e| Error::new(ErrorKind::Unexpected, "encode checkpoint").with_source(e))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &json))
            .await
            .map_err(|e| Error::new(ErrorKind::Unexpected, "checkpoint writer panicked").with_source(e))?
            .map_err(|e| {
                Error::new(ErrorKind::Io, format!("cannot write checkpoint {}", self.path.display()))
                    .with_source(e)
                    .temporary()
            })
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpoint::new(dir.path().join("cp.json"));
        assert_eq!(store.load().await.unwrap(), None);
        store.save(&Position("rv=12".into())).await.unwrap();
        store.save(&Position("rv=13".into())).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(Position("rv=13".into())));

        // Corrupt: moved aside, and the pipeline starts as if there were none.
        for garbage in [&b"garbage"[..], b"{\"position\":\"rv=1", b"\xff\xfe"] {
            std::fs::write(store.path(), garbage).unwrap();
            assert_eq!(store.load().await.unwrap(), None);
            assert!(!store.path().exists());
            assert_eq!(std::fs::read(dir.path().join("cp.json.corrupt")).unwrap(), garbage);
        }
        store.save(&Position("rv=14".into())).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(Position("rv=14".into())));

        let missing = FileCheckpoint::new(dir.path().join("no/such/dir/cp.json"));
        let err = missing.save(&Position("x".into())).await.unwrap_err();
        assert!(err.is_temporary());
        assert!(err.to_string().starts_with("cannot write checkpoint"));
    }
}
