//! Alert state on disk: `<state_dir>/alerts.json`, versioned JSON written atomically
//! (temporary file, fsync, rename) beside the model state. It holds the firing alerts (with
//! the last event sent, so channels can keep showing and later resolve them) and the
//! throttle times. A corrupt or newer file is an error naming it; the caller starts clean.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{AlertEvent, AlertKind, FeatureContribution};
use crate::detect::Severity;

/// File name inside the state directory.
pub const FILE: &str = "alerts.json";
/// Format version written; files of another version are refused.
pub const VERSION: u32 = 1;

/// The saved tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerState {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// When it was saved, ms since the epoch.
    pub saved_ms: i64,
    /// Alerts firing at save time.
    pub firing: Vec<SavedFiring>,
    /// Last notification time per entity, top feature and severity.
    pub sent: Vec<SavedSent>,
}

/// One firing alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedFiring {
    /// Entity id (hash of its labels).
    pub entity: u64,
    /// Consecutive normal checks so far.
    pub normal_checks: u32,
    /// The last event sent.
    pub event: SavedEvent,
}

/// An [`AlertEvent`] in plain types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedEvent {
    /// `firing` or `escalated`.
    pub kind: String,
    /// Entity labels.
    pub labels: Vec<(String, String)>,
    /// Profile name.
    pub profile: String,
    /// Severity name.
    pub severity: String,
    /// Confidence.
    pub confidence: f64,
    /// Top features: name, contribution, value, expected (NaN saved as null).
    pub features: Vec<(String, f64, Option<f64>, Option<f64>)>,
    /// Start of the anomaly.
    pub started_ms: i64,
    /// Time of the event.
    pub timestamp_ms: i64,
}

/// One throttle entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSent {
    /// Entity id.
    pub entity: u64,
    /// Top feature.
    pub feature: String,
    /// Severity name.
    pub severity: String,
    /// When it was sent.
    pub at_ms: i64,
}

impl From<&AlertEvent> for SavedEvent {
    fn from(e: &AlertEvent) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        Self {
            kind: e.kind_str().to_string(),
            labels: e.labels.to_vec(),
            profile: e.profile.clone(),
            severity: e.severity.as_str().to_string(),
            confidence: e.confidence,
            features: e
                .features
                .iter()
                .map(|f| (f.feature.clone(), f.contribution, finite(f.value), finite(f.expected)))
                .collect(),
            started_ms: e.started_ms,
            timestamp_ms: e.timestamp_ms,
        }
    }
}

impl SavedEvent {
    /// The event, or `None` when a name in it is unknown.
    pub fn into_event(self) -> Option<AlertEvent> {
        let kind = match self.kind.as_str() {
            "firing" => AlertKind::Firing,
            "escalated" => AlertKind::Escalated,
            _ => return None,
        };
        Some(AlertEvent {
            kind,
            labels: Arc::from(self.labels),
            profile: self.profile,
            severity: parse_severity(&self.severity)?,
            confidence: self.confidence,
            features: self
                .features
                .into_iter()
                .map(|(feature, contribution, value, expected)| FeatureContribution {
                    feature,
                    contribution,
                    value: value.unwrap_or(f64::NAN),
                    expected: expected.unwrap_or(f64::NAN),
                })
                .collect(),
            started_ms: self.started_ms,
            timestamp_ms: self.timestamp_ms,
        })
    }
}

/// `info`, `warning` or `critical`.
pub fn parse_severity(s: &str) -> Option<Severity> {
    match s {
        "info" => Some(Severity::Info),
        "warning" => Some(Severity::Warning),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// Why the alert state could not be used.
#[derive(Debug, Error)]
pub enum AlertStateError {
    /// Reading or writing failed.
    #[error("alert state {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid alert state.
    #[error("alert state {file} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by another version.
    #[error("alert state {file} has version {found}, this build reads version {VERSION}")]
    Version {
        /// The file.
        file: PathBuf,
        /// The version in it.
        found: u32,
    },
}

/// `<dir>/alerts.json`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Writes `state` atomically.
pub fn save(dir: &Path, state: &TrackerState) -> Result<PathBuf, AlertStateError> {
    let file = path_in(dir);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let io = |source| AlertStateError::Io { file: file.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| io(std::io::Error::other(e)))?;
    (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })()
    .map_err(io)?;
    std::fs::rename(&tmp, &file).map_err(io)?;
    Ok(file)
}

/// Reads the saved state; `Ok(None)` when there is none.
pub fn load(dir: &Path) -> Result<Option<TrackerState>, AlertStateError> {
    let file = path_in(dir);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AlertStateError::Io { file, source }),
    };
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let v: Versioned = serde_json::from_slice(&bytes)
        .map_err(|e| AlertStateError::Corrupt { file: file.clone(), reason: e.to_string() })?;
    if v.version != VERSION {
        return Err(AlertStateError::Version { file, found: v.version });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| AlertStateError::Corrupt { file, reason: e.to_string() })
}
