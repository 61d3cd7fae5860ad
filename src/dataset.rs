//! Labeled CSV datasets in the common format (`timestamp,<features...>,label`), for `train`
//! and `eval`.
//!
//! A leaf module. Every parse error names the file, the 1-based line and the column, so a
//! user can fix the file without guessing. [`discover`] turns a path into datasets: a lone CSV
//! is one dataset (split by `fit_fraction` later), a directory holding `train.csv` and
//! `test.csv` is one dataset with its own split, any other directory is searched recursively.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::rfc3339;

/// Why a dataset could not be read.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A cell, row or header is invalid.
    #[error("{file}:{line}: column {column:?}: {reason}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Column name (or number when the header is unusable).
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// Nothing to read.
    #[error("no CSV datasets found under {0}")]
    Empty(PathBuf),
    /// Two search roots hold datasets of the same name (their reports and plots would collide).
    #[error("dataset {name:?} is found under both {first} and {second}")]
    Duplicate {
        /// The dataset name.
        name: String,
        /// The first root holding it.
        first: PathBuf,
        /// The second.
        second: PathBuf,
    },
}

/// One CSV file: timestamps, feature rows and 0/1 labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file it came from.
    pub path: PathBuf,
    /// Feature column names in file order.
    pub columns: Vec<String>,
    /// Milliseconds since the epoch, non-decreasing (repeats occur in real exports, e.g. NAB
    /// files around a daylight-saving change; a repeated row scores like its predecessor).
    pub timestamps: Vec<i64>,
    /// Feature values per row (NaN for empty cells).
    pub rows: Vec<Vec<f64>>,
    /// 1 = inside a labeled anomaly.
    pub labels: Vec<u8>,
}

impl Table {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Reads one CSV in the common format.
pub fn read_csv(path: &Path) -> Result<Table, DatasetError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| DatasetError::Io { file: path.to_path_buf(), source })?;
    parse_csv(path, &text)
}

/// Parses CSV text; `path` is only used in errors.
pub fn parse_csv(path: &Path, text: &str) -> Result<Table, DatasetError> {
    let err = |line: usize, column: &str, reason: String| DatasetError::Parse {
        file: path.to_path_buf(),
        line,
        column: column.to_string(),
        reason,
    };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(err(
            1,
            "timestamp",
            "empty file: expected a header `timestamp,<features...>,label`".into(),
        ));
    };
    let names: Vec<String> = header.split(',').map(|s| s.trim().to_string()).collect();
    if names.first().map(String::as_str) != Some("timestamp") {
        return Err(err(1, names.first().map_or("", |s| s), "first column must be `timestamp`".into()));
    }
    let Some(label_at) = names.iter().position(|n| n == "label") else {
        return Err(err(1, "label", "missing `label` column".into()));
    };
    let features: Vec<usize> = (1..names.len()).filter(|&i| i != label_at).collect();
    if features.is_empty() {
        return Err(err(1, "", "no feature columns between `timestamp` and `label`".into()));
    }
    let mut t = Table {
        path: path.to_path_buf(),
        columns: features.iter().map(|&i| names[i].clone()).collect(),
        timestamps: Vec::new(),
        rows: Vec::new(),
        labels: Vec::new(),
    };
    for (i, line) in lines {
        let n = i + 1;
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != names.len() {
            return Err(err(n, "", format!("expected {} cells, found {}", names.len(), cells.len())));
        }
        let ts = rfc3339::parse(cells[0])
            .ok_or_else(|| err(n, "timestamp", format!("{:?} is not an RFC 3339 UTC time", cells[0])))?;
        if let Some(&prev) = t.timestamps.last()
            && ts < prev
        {
            return Err(err(n, "timestamp", format!("{} is before the previous row's timestamp", cells[0])));
        }
        let mut row = Vec::with_capacity(features.len());
        for &c in &features {
            let cell = cells[c];
            let v = if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
                f64::NAN
            } else {
                cell.parse::<f64>().map_err(|_| err(n, &names[c], format!("{cell:?} is not a number")))?
            };
            row.push(v);
        }
        let label = match cells[label_at] {
            "0" => 0,
            "1" => 1,
            other => return Err(err(n, "label", format!("{other:?} is not 0 or 1"))),
        };
        t.timestamps.push(ts);
        t.rows.push(row);
        t.labels.push(label);
    }
    Ok(t)
}

/// Where one dataset's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory with `train.csv` (fit) and `test.csv` (scored).
    Split {
        /// Dataset name (path relative to the search root).
        name: String,
        /// `train.csv`.
        train: PathBuf,
        /// `test.csv`.
        test: PathBuf,
    },
    /// One CSV: fit on its first part, score the rest.
    Single {
        /// Dataset name (path relative to the search root, without `.csv`).
        name: String,
        /// The file.
        path: PathBuf,
    },
}

impl Source {
    /// The dataset's name.
    pub fn name(&self) -> &str {
        match self {
            Source::Split { name, .. } | Source::Single { name, .. } => name,
        }
    }
}

/// Finds datasets under `path` (a CSV file or a directory, searched recursively, sorted).
pub fn discover(path: &Path) -> Result<Vec<Source>, DatasetError> {
    let io = |source| DatasetError::Io { file: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mut out = Vec::new();
    if meta.is_file() {
        let name = path.file_stem().map_or("dataset".into(), |s| s.to_string_lossy().into_owned());
        out.push(Source::Single { name, path: path.to_path_buf() });
    } else {
        walk(path, path, &mut out)?;
    }
    if out.is_empty() {
        return Err(DatasetError::Empty(path.to_path_buf()));
    }
    Ok(out)
}

/// [`discover`] over several roots, in order; every root must hold a dataset, and names must
/// be unique across roots.
pub fn discover_all(paths: &[PathBuf]) -> Result<Vec<Source>, DatasetError> {
    let mut out: Vec<Source> = Vec::new();
    let mut roots: std::collections::HashMap<String, &Path> = std::collections::HashMap::new();
    for path in paths {
        for source in discover(path)? {
            if let Some(first) = roots.insert(source.name().to_string(), path) {
                return Err(DatasetError::Duplicate {
                    name: source.name().to_string(),
                    first: first.to_path_buf(),
                    second: path.clone(),
                });
            }
            out.push(source);
        }
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Source>) -> Result<(), DatasetError> {
    let io = |source| DatasetError::Io { file: dir.to_path_buf(), source };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let rel = |p: &Path| {
        let r = p.strip_prefix(root).unwrap_or(p).with_extension("");
        let s = r.to_string_lossy().into_owned();
        if s.is_empty() {
            root.file_name().map_or("dataset".into(), |n| n.to_string_lossy().into_owned())
        } else {
            s
        }
    };
    let (train, test) = (dir.join("train.csv"), dir.join("test.csv"));
    if train.is_file() && test.is_file() {
        out.push(Source::Split { name: rel(dir), train, test });
        return Ok(());
    }
    for p in entries {
        if p.is_dir() {
            walk(root, &p, out)?;
        } else if p.extension().is_some_and(|e| e == "csv") {
            out.push(Source::Single { name: rel(&p), path: p });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Table, DatasetError> {
        parse_csv(Path::new("x.csv"), text)
    }

    #[test]
    fn parses_the_common_format() {
        let t =
            parse("timestamp,a,b,label\n2024-01-01T00:00:00Z,1,2.5,0\n2024-01-01T00:01:00Z,,3,1\n").unwrap();
        assert_eq!(t.columns, ["a", "b"]);
        assert_eq!(t.timestamps, [1_704_067_200_000, 1_704_067_260_000]);
        assert!(t.rows[1][0].is_nan());
        assert_eq!(t.labels, [0, 1]);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let cases = [
            ("timestamp,a\n2024-01-01T00:00:00Z,1\n", "x.csv:1: column \"label\": missing `label` column"),
            (
                "timestamp,a,label\n2024-01-01T00:01:00Z,1,0\n2024-01-01T00:00:00Z,1,0\n",
                "x.csv:3: column \"timestamp\": 2024-01-01T00:00:00Z is before the previous row's timestamp",
            ),
            (
                "timestamp,a,label\n2024-01-01T00:00:00Z,1\n",
                "x.csv:2: column \"\": expected 3 cells, found 2",
            ),
            (
                "timestamp,a,label\n2024-01-01T00:00:00Z,abc,0\n",
                "x.csv:2: column \"a\": \"abc\" is not a number",
            ),
            (
                "timestamp,a,label\nyesterday,1,0\n",
                "x.csv:2: column \"timestamp\": \"yesterday\" is not an RFC 3339 UTC time",
            ),
            (
                "timestamp,a,label\n2024-01-01T00:00:00Z,1,2\n",
                "x.csv:2: column \"label\": \"2\" is not 0 or 1",
            ),
            ("", "x.csv:1: column \"timestamp\": empty file"),
        ];
        for (text, expected) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(expected), "got {e:?}, expected {expected:?}");
        }
    }

    #[test]
    fn discovers_splits_and_single_files_and_rejects_empty_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("asd/omi-1")).unwrap();
        std::fs::write(d.join("asd/omi-1/train.csv"), "").unwrap();
        std::fs::write(d.join("asd/omi-1/test.csv"), "").unwrap();
        std::fs::create_dir_all(d.join("nab")).unwrap();
        std::fs::write(d.join("nab/cpu.csv"), "").unwrap();
        std::fs::write(d.join("nab/notes.txt"), "").unwrap();
        let found = discover(d).unwrap();
        let names: Vec<&str> = found.iter().map(Source::name).collect();
        assert_eq!(names, ["asd/omi-1", "nab/cpu"]);
        assert!(matches!(found[0], Source::Split { .. }));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(discover(empty.path()), Err(DatasetError::Empty(_))));
    }

    #[test]
    fn several_roots_are_concatenated_and_must_not_share_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["a/cpu.csv", "a/mem.csv", "b/disk.csv", "c/cpu.csv"] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), "").unwrap();
        }
        let found = discover_all(&[d.join("a"), d.join("b")]).unwrap();
        let names: Vec<&str> = found.iter().map(Source::name).collect();
        assert_eq!(names, ["cpu", "mem", "disk"]);
        let err = discover_all(&[d.join("a"), d.join("c")]).unwrap_err().to_string();
        assert!(err.contains("\"cpu\"") && err.contains("/a") && err.contains("/c"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = discover_all(&[d.join("a"), empty.path().to_path_buf()]).unwrap_err();
        assert!(matches!(err, DatasetError::Empty(_)));
    }
}
