use std::time::Duration;

use super::*;
use crate::config::VectorizeConfig;

const T0: i64 = 1_700_000_000_000;

fn cfg(profile: &str) -> VectorizeConfig {
    VectorizeConfig { profile: profile.into(), ..VectorizeConfig::default() }
}

fn obs(v: &mut Vectorizer, labels: &[(&str, &str)], samples: &[(f64, i64)]) -> ObserveStats {
    let labels: Vec<LabelRef<'_>> = labels.iter().map(|(name, value)| LabelRef { name, value }).collect();
    let samples: Vec<SampleRef> =
        samples.iter().map(|&(value, timestamp_ms)| SampleRef { value, timestamp_ms }).collect();
    let mut stats = ObserveStats::default();
    v.observe(&labels, &samples, &mut stats);
    stats
}

fn dwcp(v: &mut Vectorizer, instance: &str, metric: &str, value: f64, ts: i64) {
    obs(v, &[("__name__", metric), ("instance", instance), ("job", "dwcp")], &[(value, ts)]);
}

#[test]
fn dwcp_samples_group_into_ordered_vectors_per_entity() {
    let mut v = Vectorizer::new(&cfg("dwcp")).unwrap();
    for (i, m) in crate::simulate::METRICS.iter().enumerate() {
        dwcp(&mut v, "a", m, i as f64, T0);
    }
    dwcp(&mut v, "b", "dwcp_latency_ms", 42.0, T0);
    let out = v.assemble(T0 + 1000);
    assert_eq!(out.vectors.len(), 2);
    let a = out.vectors.iter().find(|x| x.labels.iter().any(|(_, val)| val == "a")).unwrap();
    assert_eq!(a.values, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        &*a.labels,
        &[("job".to_string(), "dwcp".to_string()), ("instance".to_string(), "a".to_string())]
    );
    let b = out.vectors.iter().find(|x| x.labels.iter().any(|(_, val)| val == "b")).unwrap();
    assert_eq!(b.values[1], 42.0);
    assert!(b.values[0].is_nan(), "missing feature must be NaN");
    // No new samples: no new vectors, but both entities still reported.
    let again = v.assemble(T0 + 2000);
    assert!(again.vectors.is_empty());
    assert_eq!(again.status.len(), 2);
}

#[test]
fn several_series_of_one_feature_are_aggregated() {
    let mut v = Vectorizer::new(&cfg("dwcp")).unwrap();
    for (link, lat) in [("l1", 10.0), ("l2", 30.0)] {
        obs(&mut v, &[("__name__", "dwcp_latency_ms"), ("instance", "a"), ("link", link)], &[(lat, T0)]);
        obs(&mut v, &[("__name__", "dwcp_bandwidth_mbps"), ("instance", "a"), ("link", link)], &[(lat, T0)]);
    }
    let out = v.assemble(T0);
    assert_eq!(out.vectors[0].values[1], 20.0, "latency is averaged");
    assert_eq!(out.vectors[0].values[0], 40.0, "bandwidth is summed");
}

#[test]
fn counters_become_reset_aware_rates() {
    let mut v = Vectorizer::new(&cfg("node")).unwrap();
    let l = [("__name__", "node_network_receive_errs_total"), ("device", "eth0"), ("instance", "h")];
    obs(&mut v, &l, &[(100.0, T0)]);
    assert!(v.assemble(T0).vectors[0].values[5].is_nan(), "one sample gives no rate yet");
    obs(&mut v, &l, &[(110.0, T0 + 10_000)]);
    assert_eq!(v.assemble(T0 + 10_000).vectors[0].values[5], 1.0);
    // Reset: the counter restarted from 0 and is at 5 after 10 s.
    obs(&mut v, &l, &[(5.0, T0 + 20_000)]);
    assert_eq!(v.assemble(T0 + 20_000).vectors[0].values[5], 0.5);
    // Loopback is excluded by the selector.
    let lo = [("__name__", "node_network_receive_errs_total"), ("device", "lo"), ("instance", "h")];
    let s = obs(&mut v, &lo, &[(1.0, T0)]);
    assert_eq!(s.unmatched, 1);
}

#[test]
fn node_memory_is_a_ratio_and_cpu_busy_comes_from_idle() {
    let mut v = Vectorizer::new(&cfg("node")).unwrap();
    obs(&mut v, &[("__name__", "node_memory_MemAvailable_bytes"), ("instance", "h")], &[(25.0, T0)]);
    obs(&mut v, &[("__name__", "node_memory_MemTotal_bytes"), ("instance", "h")], &[(100.0, T0)]);
    for cpu in ["0", "1"] {
        let l = [("__name__", "node_cpu_seconds_total"), ("cpu", cpu), ("instance", "h"), ("mode", "idle")];
        obs(&mut v, &l, &[(0.0, T0), (7.5, T0 + 10_000)]);
    }
    let x = &v.assemble(T0 + 10_000).vectors[0].values;
    assert_eq!(x[1], 75.0);
    assert!((x[0] - 25.0).abs() < 1e-9, "busy = 100 - 100 * idle rate, got {}", x[0]);
}

#[test]
fn stale_markers_out_of_order_and_staleness() {
    let mut v =
        Vectorizer::new(&VectorizeConfig { staleness: Duration::from_secs(60), ..cfg("dwcp") }).unwrap();
    dwcp(&mut v, "a", "dwcp_latency_ms", 5.0, T0);
    let s =
        obs(&mut v, &[("__name__", "dwcp_latency_ms"), ("instance", "a"), ("job", "dwcp")], &[(6.0, T0 - 1)]);
    assert_eq!(s.out_of_order, 1);
    obs(
        &mut v,
        &[("__name__", "dwcp_latency_ms"), ("instance", "a"), ("job", "dwcp")],
        &[(f64::from_bits(STALE_NAN_BITS), T0 + 1)],
    );
    assert!(v.assemble(T0 + 1).vectors[0].values[1].is_nan(), "stale marker clears the value");
    let later = v.assemble(T0 + 61_000);
    assert_eq!(later.dropped.len(), 1);
    assert_eq!(v.entity_count(), 0);
}

#[test]
fn silence_beyond_the_usual_interval_is_stale() {
    let mut v = Vectorizer::new(&cfg("dwcp")).unwrap();
    for k in 0..5 {
        dwcp(&mut v, "a", "dwcp_latency_ms", 5.0, T0 + k * 10_000);
    }
    assert!(!v.assemble(T0 + 45_000).status[0].stale);
    assert!(v.assemble(T0 + 100_000).status[0].stale);
}

#[test]
fn max_entities_refuses_new_entities_only() {
    let mut v = Vectorizer::new(&VectorizeConfig { max_entities: 1, ..cfg("dwcp") }).unwrap();
    dwcp(&mut v, "a", "dwcp_latency_ms", 1.0, T0);
    let s = obs(&mut v, &[("__name__", "dwcp_latency_ms"), ("instance", "b")], &[(1.0, T0)]);
    assert_eq!(s.max_entities, 1);
    let s = obs(&mut v, &[("__name__", "dwcp_jitter_ms"), ("instance", "a"), ("job", "dwcp")], &[(1.0, T0)]);
    assert_eq!(s.accepted, 1);
}

#[test]
fn shedding_drops_the_entities_seen_least_recently_and_budgets_bound_new_ones() {
    let mut v = Vectorizer::new(&cfg("dwcp")).unwrap();
    for (i, name) in ["quiet", "busy", "older", "newest"].iter().enumerate() {
        dwcp(&mut v, name, "dwcp_latency_ms", 1.0, T0 + [3, 9, 1, 12][i] * 1000);
    }
    let shed = v.shed(2);
    let ids = |names: &[&str]| -> Vec<u64> {
        names
            .iter()
            .map(|n| {
                let labels = [("__name__", "dwcp_latency_ms"), ("instance", n), ("job", "dwcp")];
                v.entity_id(&labels.map(|(name, value)| LabelRef { name, value }))
            })
            .collect()
    };
    assert_eq!(shed, ids(&["older", "quiet"]));
    assert_eq!(v.entity_count(), 2);
    v.set_new_entity_budget(1);
    dwcp(&mut v, "quiet", "dwcp_latency_ms", 1.0, T0 + 20_000);
    let s =
        obs(&mut v, &[("__name__", "dwcp_latency_ms"), ("instance", "older"), ("job", "dwcp")], &[(1.0, T0)]);
    assert_eq!((s.new_entity_rate, v.entity_count(), v.new_entity_budget()), (1, 3, 0));
    let s =
        obs(&mut v, &[("__name__", "dwcp_jitter_ms"), ("instance", "busy"), ("job", "dwcp")], &[(1.0, T0)]);
    assert_eq!(s.accepted, 1, "existing entities need no budget");
}

#[test]
fn per_series_makes_every_series_an_entity() {
    let mut v = Vectorizer::new(&cfg("per_series")).unwrap();
    obs(&mut v, &[("__name__", "http_requests_total"), ("code", "200")], &[(10.0, T0), (20.0, T0 + 10_000)]);
    obs(&mut v, &[("__name__", "temperature"), ("room", "a")], &[(21.5, T0)]);
    let out = v.assemble(T0 + 10_000);
    assert_eq!(out.vectors.len(), 2);
    let rate = out
        .vectors
        .iter()
        .find(|x| x.labels.iter().any(|(k, val)| k == "metric_name" && val == "http_requests_total"))
        .unwrap();
    assert_eq!(rate.values, [1.0]);
    let temp = out.vectors.iter().find(|x| x.labels.iter().any(|(_, val)| val == "temperature")).unwrap();
    assert_eq!(temp.values, [21.5]);
}

#[test]
fn unmatched_metrics_are_counted() {
    let mut v = Vectorizer::new(&cfg("dwcp")).unwrap();
    let s = obs(&mut v, &[("__name__", "up"), ("instance", "a")], &[(1.0, T0)]);
    assert_eq!(s.unmatched, 1);
    assert_eq!(v.entity_count(), 0);
}

#[test]
fn series_the_entity_labels_do_not_separate_are_reported_once_with_what_differs() {
    let mut v = Vectorizer::new(&cfg("dwcp")).unwrap();
    // Two nodes scraped through one target without honor_labels: same job and instance.
    let both_nodes = |v: &mut Vectorizer, value: f64, ts: i64| {
        for node in ["n1", "n2"] {
            let labels = [
                ("__name__", "dwcp_cpu_usage_percent"),
                ("exported_instance", node),
                ("instance", "t:9"),
                ("job", "dwcp"),
            ];
            obs(v, &labels, &[(value, ts)]);
        }
    };
    both_nodes(&mut v, 10.0, T0);
    let out = v.assemble(T0 + 1000);
    assert_eq!(out.vectors.len(), 1, "one entity");
    assert_eq!(out.merged.len(), 1, "{:?}", out.merged);
    let m = &out.merged[0];
    assert_eq!((m.feature, m.series), (4, 2), "cpu_pct merges two series");
    let first = m.first.as_ref().expect("the first report names what differs");
    assert_eq!(first, &[("exported_instance".to_string(), "n2".to_string())]);
    // Still merged at the next check, but named only once.
    both_nodes(&mut v, 11.0, T0 + 1000);
    let out = v.assemble(T0 + 2000);
    assert_eq!((out.merged.len(), out.merged[0].series, out.merged[0].first.is_none()), (1, 2, true));
}

#[test]
fn features_that_merge_series_on_purpose_stay_quiet() {
    // node's CPU feature averages every core's idle counter by design.
    let mut v = Vectorizer::new(&cfg("node")).unwrap();
    for (ts, idle) in [(T0, 100.0), (T0 + 10_000, 109.0)] {
        for cpu in ["0", "1"] {
            let labels = [
                ("__name__", "node_cpu_seconds_total"),
                ("cpu", cpu),
                ("instance", "h:9100"),
                ("job", "node"),
                ("mode", "idle"),
            ];
            obs(&mut v, &labels, &[(idle, ts)]);
        }
    }
    let out = v.assemble(T0 + 11_000);
    assert_eq!(out.vectors.len(), 1);
    assert!(out.merged.is_empty(), "{:?}", out.merged);
}
