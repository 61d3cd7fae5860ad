//! Configuration errors: every one names the file, the key path and, where known, the line.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `detect.zscore.window`.
    pub path: String,
    /// What is wrong, lowercase, expected vs found.
    pub reason: String,
    /// 1-based line in the file, when the parser knew it.
    pub line: Option<u64>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.path, self.reason),
            None => write!(f, "{}: {}", self.path, self.reason),
        }
    }
}

/// Collects every validation error under a key-path prefix, so all are reported at once.
#[derive(Debug, Default)]
pub struct ConfigErrors {
    prefix: Vec<String>,
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Records that `key` (relative to the current prefix) is invalid.
    pub fn invalid(&mut self, key: &str, reason: impl Into<String>) {
        let mut path = self.prefix.join(".");
        if !key.is_empty() {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
        }
        self.errors.push(ConfigError { path, reason: reason.into(), line: None });
    }

    /// Runs `f` with `key` appended to the prefix.
    pub fn scope(&mut self, key: &str, f: impl FnOnce(&mut Self)) {
        self.prefix.push(key.to_string());
        f(self);
        self.prefix.pop();
    }

    /// The errors collected so far.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.errors
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config file {file}: {cause}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The cause, in the message only: a `source` as well would print it twice in a
        /// chain (`cannot read … (os error 2): No such file … (os error 2)`).
        cause: std::io::Error,
    },
    /// The file parsed badly or has invalid values; every problem is listed.
    #[error("invalid config file {file}:\n{}", list(.errors))]
    Invalid {
        /// The file (`<embedded defaults>` when none was given).
        file: PathBuf,
        /// All problems found.
        errors: Vec<ConfigError>,
    },
}

fn list(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}
