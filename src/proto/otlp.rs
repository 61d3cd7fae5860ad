//! Helpers for building OTLP messages (the types are `opentelemetry_proto`'s).

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// A string attribute `k = v`.
pub fn string_kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

/// A resource with `attributes` and one gauge per `(name, value)`, each with one point at
/// `time_unix_nano` carrying `point_attributes` — what an SDK sends for one host.
pub fn gauges<'a>(
    attributes: Vec<KeyValue>,
    point_attributes: &[KeyValue],
    time_unix_nano: u64,
    gauges: impl IntoIterator<Item = (&'a str, f64)>,
) -> ResourceMetrics {
    let metrics = gauges
        .into_iter()
        .map(|(name, value)| Metric {
            name: name.into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    attributes: point_attributes.to_vec(),
                    time_unix_nano,
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
        .collect();
    ResourceMetrics {
        resource: Some(Resource { attributes, ..Default::default() }),
        scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
        ..Default::default()
    }
}
