//! Series selectors in PromQL's syntax: `metric{label="v", label!="v", label=~"a|b"}`.
//!
//! Regex matchers accept literal alternatives only (`a|b|c`): enough for profiles, and it
//! keeps a regex engine off the per-sample path.

use thiserror::Error;

use super::{LabelRef, is_label_name, is_metric_name};

/// Why a selector did not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid selector {selector:?}: {reason}")]
pub struct SelectorError {
    /// The selector text.
    pub selector: String,
    /// What is wrong.
    pub reason: String,
}

/// A parsed selector: a metric name plus label matchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The metric name (`__name__`).
    pub metric: String,
    /// Extra label conditions, all of which must hold.
    pub matchers: Vec<Matcher>,
}

/// One label condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Label name.
    pub label: String,
    /// Accepted (or, when `negate`, rejected) values; a missing label has the value "".
    pub values: Vec<String>,
    /// True for `!=` and `!~`.
    pub negate: bool,
}

impl Matcher {
    /// Whether a series with these labels passes.
    #[inline]
    pub fn matches(&self, labels: &[LabelRef<'_>]) -> bool {
        let v = labels.iter().find(|l| l.name == self.label).map_or("", |l| l.value);
        self.values.iter().any(|x| x == v) != self.negate
    }
}

impl Selector {
    /// Parses `metric{...}`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let err = |reason: &str| SelectorError { selector: text.to_string(), reason: reason.to_string() };
        let text_t = text.trim();
        let (metric, rest) = match text_t.find('{') {
            Some(i) => (&text_t[..i], Some(&text_t[i + 1..])),
            None => (text_t, None),
        };
        let metric = metric.trim();
        if !is_metric_name(metric) {
            return Err(err("expected a metric name such as dwcp_latency_ms"));
        }
        let mut matchers = Vec::new();
        if let Some(rest) = rest {
            let body = rest.strip_suffix('}').ok_or_else(|| err("missing closing '}'"))?;
            for part in split_top(body) {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let (op_at, op) = ["!=", "=~", "!~", "="]
                    .iter()
                    .filter_map(|op| part.find(op).map(|i| (i, *op)))
                    .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
                    .ok_or_else(|| err("expected label=\"value\""))?;
                let label = part[..op_at].trim();
                let raw = part[op_at + op.len()..].trim();
                let value = raw
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| err("label values must be double-quoted"))?;
                if !is_label_name(label) {
                    return Err(err("invalid label name"));
                }
                let values = if op.contains('~') {
                    if value.chars().any(|c| "\\.*+?()[]{}^$".contains(c)) {
                        return Err(err("regex matchers support literal alternatives (a|b) only"));
                    }
                    value.split('|').map(str::to_string).collect()
                } else {
                    vec![value.to_string()]
                };
                matchers.push(Matcher { label: label.to_string(), values, negate: op.starts_with('!') });
            }
        }
        Ok(Selector { metric: metric.to_string(), matchers })
    }
}

fn split_top(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in body.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l<'a>(name: &'a str, value: &'a str) -> LabelRef<'a> {
        LabelRef { name, value }
    }

    #[test]
    fn parses_all_matcher_kinds() {
        let s = Selector::parse(r#"node_cpu_seconds_total{mode!="idle", cpu=~"0|1", job="n"}"#).unwrap();
        assert_eq!(s.metric, "node_cpu_seconds_total");
        assert_eq!(s.matchers.len(), 3);
        assert!(s.matchers[0].negate);
        assert_eq!(s.matchers[1].values, ["0", "1"]);
        let labels = [l("cpu", "1"), l("job", "n"), l("mode", "user")];
        assert!(s.matchers.iter().all(|m| m.matches(&labels)));
        let idle = [l("cpu", "1"), l("job", "n"), l("mode", "idle")];
        assert!(!s.matchers[0].matches(&idle));
    }

    #[test]
    fn missing_label_matches_empty_value() {
        let s = Selector::parse(r#"m{device!="lo"}"#).unwrap();
        assert!(s.matchers[0].matches(&[]));
    }

    #[test]
    fn rejects_bad_selectors() {
        for bad in ["", "9abc", "m{a=b}", "m{a=\"b\"", r#"m{a=~"x.*"}"#, r#"m{1a="b"}"#] {
            assert!(Selector::parse(bad).is_err(), "{bad} parsed");
        }
    }
}
