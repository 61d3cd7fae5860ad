//! Persisted model state under `--state-dir`: each entity's labels and fitting history.
//!
//! Models are refitted from the saved history when the service starts, which is fast (the
//! native detectors fit in milliseconds) and deterministic (seeded), so the file needs no
//! per-detector serialisation and stays valid when a detector's internals change. The file is
//! versioned, binary (a few bytes per value, not JSON text) and written atomically
//! (temporary file, fsync, rename). A corrupt or incompatible file is reported by name and the
//! service starts warming instead — never a crash.
//!
//! Layout: magic `DWCPSTAT`, u32 version, u32 + JSON header (profile, features, saved time,
//! entity count), then per entity: u32 + JSON labels, u32 vector count, and per vector an i64
//! timestamp, a u8 flagged marker and one f64 per feature (all little-endian).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::detect::FeatureVector;

/// File name inside the state directory.
pub const STATE_FILE: &str = "models.state";
const MAGIC: &[u8; 8] = b"DWCPSTAT";
/// Current format version.
pub const VERSION: u32 = 1;

/// Why a state file could not be used.
#[derive(Debug, Error)]
pub enum StateError {
    /// I/O failure.
    #[error("state file {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a state file, truncated or garbled.
    #[error("state file {file} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by another version or for another profile.
    #[error("state file {file} is incompatible: {reason}")]
    Incompatible {
        /// The file.
        file: PathBuf,
        /// What differs.
        reason: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    profile: String,
    features: Vec<String>,
    saved_ms: i64,
    entities: usize,
}

/// One entity's saved state.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityState {
    /// Entity labels.
    pub labels: Vec<(String, String)>,
    /// History, oldest first, with the flagged marker.
    pub history: Vec<(FeatureVector, bool)>,
}

/// Everything saved.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Profile name.
    pub profile: String,
    /// Feature names in vector order.
    pub features: Vec<String>,
    /// When it was saved (ms since the epoch).
    pub saved_ms: i64,
    /// Entities.
    pub entities: Vec<EntityState>,
}

/// Path of the state file in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Writes `state` to `<dir>/models.state` atomically.
pub fn save(dir: &Path, state: &State) -> Result<PathBuf, StateError> {
    let entities =
        state.entities.iter().map(|e| (e.labels.as_slice(), e.history.iter().map(|(x, f)| (x, *f))));
    save_each(dir, &state.profile, &state.features, state.saved_ms, state.entities.len(), entities)
}

/// Writes `count` entities (labels, then history oldest first with the flagged marker) to
/// `<dir>/models.state` atomically, one vector at a time: nothing but the file's buffer is held,
/// however many entities there are.
pub fn save_each<'a, X: std::borrow::Borrow<FeatureVector>, H: Iterator<Item = (X, bool)>>(
    dir: &Path,
    profile: &str,
    features: &[String],
    saved_ms: i64,
    count: usize,
    entities: impl Iterator<Item = (&'a [(String, String)], H)>,
) -> Result<PathBuf, StateError> {
    let file = path_in(dir);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let io = |source| StateError::Io { file: file.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let f = std::fs::File::create(&tmp).map_err(io)?;
    let mut w = BufWriter::new(f);
    let header =
        Header { profile: profile.to_string(), features: features.to_vec(), saved_ms, entities: count };
    let put_json = |w: &mut BufWriter<std::fs::File>, v: &dyn erased::Json| -> std::io::Result<()> {
        let bytes = v.to_json();
        w.write_all(&(bytes.len() as u32).to_le_bytes())?;
        w.write_all(&bytes)
    };
    (|| -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        put_json(&mut w, &header)?;
        let mut written = 0;
        let mut rows = Vec::new();
        for (labels, history) in entities {
            put_json(&mut w, &labels)?;
            // The count comes first: the rows of one entity are gathered as bytes.
            rows.clear();
            let mut n: u32 = 0;
            for (x, flagged) in history {
                let x = x.borrow();
                rows.extend_from_slice(&x.timestamp_ms.to_le_bytes());
                rows.push(u8::from(flagged));
                for v in &x.values {
                    rows.extend_from_slice(&v.to_le_bytes());
                }
                n += 1;
            }
            w.write_all(&n.to_le_bytes())?;
            w.write_all(&rows)?;
            written += 1;
        }
        if written != count {
            return Err(std::io::Error::other(format!("{written} entities written, {count} announced")));
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
    })()
    .map_err(io)?;
    std::fs::rename(&tmp, &file).map_err(io)?;
    Ok(file)
}

mod erased {
    /// Object-safe JSON encoding for the two header kinds.
    pub trait Json {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    file: &'a Path,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], StateError> {
        if self.buf.len() < n {
            return Err(StateError::Corrupt {
                file: self.file.to_path_buf(),
                reason: format!("truncated in {what}"),
            });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32, StateError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap_or_default()))
    }
    fn json<T: for<'de> Deserialize<'de>>(&mut self, what: &str) -> Result<T, StateError> {
        let n = self.u32(what)? as usize;
        let bytes = self.take(n, what)?;
        serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
            file: self.file.to_path_buf(),
            reason: format!("{what}: {e}"),
        })
    }
}

/// Reads `<dir>/models.state`; `Ok(None)` when there is none. The profile and feature names
/// must match the running configuration.
pub fn load(dir: &Path, profile: &str, features: &[String]) -> Result<Option<State>, StateError> {
    let file = path_in(dir);
    let mut buf = Vec::new();
    match std::fs::File::open(&file) {
        Ok(mut f) => {
            f.read_to_end(&mut buf).map_err(|source| StateError::Io { file: file.clone(), source })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Io { file, source }),
    };
    let mut c = Cursor { buf: &buf, file: &file };
    if c.take(8, "magic")? != MAGIC {
        return Err(StateError::Corrupt {
            file: file.clone(),
            reason: "not a dwcp-anomaly state file".into(),
        });
    }
    let version = c.u32("version")?;
    if version != VERSION {
        return Err(StateError::Incompatible {
            file: file.clone(),
            reason: format!("version {version}, expected {VERSION}"),
        });
    }
    let header: Header = c.json("header")?;
    if header.profile != profile || header.features != features {
        return Err(StateError::Incompatible {
            file: file.clone(),
            reason: format!(
                "saved for profile {} with features {:?}, running profile {profile} with features {features:?}",
                header.profile, header.features
            ),
        });
    }
    let nf = features.len();
    let mut entities = Vec::with_capacity(header.entities.min(1 << 20));
    for _ in 0..header.entities {
        let labels: Vec<(String, String)> = c.json("entity labels")?;
        let n = c.u32("history length")? as usize;
        let mut history = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let rec = c.take(9 + 8 * nf, "history")?;
            let ts = i64::from_le_bytes(rec[..8].try_into().unwrap_or_default());
            let values = rec[9..]
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
                .collect();
            history.push((FeatureVector { timestamp_ms: ts, values }, rec[8] != 0));
        }
        entities.push(EntityState { labels, history });
    }
    if !c.buf.is_empty() {
        return Err(StateError::Corrupt {
            file: file.clone(),
            reason: format!("{} trailing bytes", c.buf.len()),
        });
    }
    Ok(Some(State {
        profile: header.profile,
        features: header.features,
        saved_ms: header.saved_ms,
        entities,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            profile: "dwcp".into(),
            features: vec!["a".into(), "b".into()],
            saved_ms: 42,
            entities: vec![EntityState {
                labels: vec![("instance".into(), "n1".into())],
                history: vec![
                    (FeatureVector { timestamp_ms: 1, values: vec![1.5, f64::NAN] }, false),
                    (FeatureVector { timestamp_ms: 2, values: vec![2.5, 3.0] }, true),
                ],
            }],
        }
    }

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        save(dir.path(), &sample()).unwrap();
        let back = load(dir.path(), "dwcp", &["a".into(), "b".into()]).unwrap().unwrap();
        assert_eq!(back.entities[0].labels, sample().entities[0].labels);
        assert!(back.entities[0].history[0].0.values[1].is_nan());
        assert_eq!(back.entities[0].history[1], sample().entities[0].history[1]);
        assert!(!dir.path().join("models.state.tmp").exists());
        assert!(load(tempfile::tempdir().unwrap().path(), "dwcp", &[]).unwrap().is_none());
    }

    #[test]
    fn corrupt_and_incompatible_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = save(dir.path(), &sample()).unwrap();
        let e = load(dir.path(), "node", &["a".into(), "b".into()]).unwrap_err();
        assert!(matches!(e, StateError::Incompatible { .. }), "{e}");
        assert!(e.to_string().contains("models.state"), "{e}");
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 5]).unwrap();
        let e = load(dir.path(), "dwcp", &["a".into(), "b".into()]).unwrap_err();
        assert!(e.to_string().contains("is corrupt: truncated"), "{e}");
        std::fs::write(&file, b"garbage!garbage!").unwrap();
        let e = load(dir.path(), "dwcp", &["a".into(), "b".into()]).unwrap_err();
        assert!(e.to_string().contains("not a dwcp-anomaly state file"), "{e}");
        let mut v2 = bytes.clone();
        v2[8] = 2;
        std::fs::write(&file, &v2).unwrap();
        let e = load(dir.path(), "dwcp", &["a".into(), "b".into()]).unwrap_err();
        assert!(e.to_string().contains("version 2, expected 1"), "{e}");
    }
}
