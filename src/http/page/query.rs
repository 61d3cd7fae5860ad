//! The page's query string: `?entity=`, `?profile=`, `?severity=`, and entity label parsing.

use std::collections::HashMap;

use crate::detect::Severity;

/// What the page was asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageQuery {
    /// `?entity=` as given (an alert's `job="a",instance="b"`, in any label order).
    pub entity: Option<String>,
    /// `?profile=`: only show the check when its profile has this name.
    pub profile: Option<String>,
    /// `?severity=`: only entities at least this severe.
    pub severity: Option<Severity>,
}

impl PageQuery {
    /// From the decoded query parameters; empty values count as absent and an unknown
    /// severity as none.
    pub fn from_map(q: &HashMap<String, String>) -> Self {
        let get = |k: &str| q.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Self {
            entity: get("entity"),
            profile: get("profile"),
            severity: get("severity").and_then(|s| parse_severity(&s)),
        }
    }
}

/// `info`, `warning` or `critical` (any case).
pub fn parse_severity(s: &str) -> Option<Severity> {
    match s.to_ascii_lowercase().as_str() {
        "info" => Some(Severity::Info),
        "warning" => Some(Severity::Warning),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// Parses `k="v",k2="v2"` (also `{…}`, spaces around `,` and `=`, unquoted values, one more
/// level of percent-encoding) into labels sorted by name; None when it is not such a list.
pub fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let decoded;
    let s = if s.contains('%') {
        decoded = percent_decode(s);
        decoded.as_str()
    } else {
        s
    };
    let s = s.trim();
    let s = s.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(s);
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return None;
        }
        let key = key.trim().to_string();
        if key.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        'n' => value.push('\n'),
                        't' => value.push('\t'),
                        c => value.push(c),
                    },
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
    if out.is_empty() {
        return None;
    }
    out.sort();
    Some(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `labels` (an entity's) are exactly `wanted` (sorted by name).
pub fn same_labels(labels: &[(String, String)], wanted: &[(String, String)]) -> bool {
    if labels.len() != wanted.len() {
        return false;
    }
    let mut l: Vec<&(String, String)> = labels.iter().collect();
    l.sort();
    l.into_iter().zip(wanted).all(|(a, b)| a == b)
}
