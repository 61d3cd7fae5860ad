//! Decode + vectorize of remote-write and OTLP batches of 1000 series (the ingest hot path).
//!
//! Each request carries one sample for each of 1000 series: 143 DWCP entities × 7 metrics
//! with realistic labels. Requests are pre-built with increasing timestamps so every sample
//! is stored (none is dropped as out of order). Goals on one core: remote-write
//! ≥ 1,000,000 samples/s; OTLP decode + mapping ≥ 500,000 samples/s.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use dwcp_anomaly::internals::config::Config;
use dwcp_anomaly::internals::ingest::otlp::{self, MapOptions};
use dwcp_anomaly::internals::ingest::remote_write::{Limits, ingest};
use dwcp_anomaly::internals::ingest::{SampleSink, otlp::Encoding};
use dwcp_anomaly::internals::pipeline::Pipeline;
use dwcp_anomaly::internals::proto::otlp::{gauges, string_kv as kv};
use dwcp_anomaly::internals::proto::remote_write::{Encoder, compress, decode};
use dwcp_anomaly::internals::simulate::METRICS;
use dwcp_anomaly::internals::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

const SERIES: usize = 1000;
const BODIES: usize = 256;

fn bodies() -> Vec<Vec<u8>> {
    let mut enc = Encoder::default();
    (0..BODIES)
        .map(|b| {
            let ts = 1_700_000_000_000 + b as i64 * 10_000;
            for i in 0..SERIES {
                let instance = format!("dwcp-node-{:04}", i / METRICS.len());
                let labels = [
                    ("__name__", METRICS[i % METRICS.len()]),
                    ("cluster", "eu-west-1"),
                    ("instance", instance.as_str()),
                    ("job", "dwcp"),
                    ("region", "eu"),
                ];
                enc.series(&labels, &[(i as f64 * 0.5 + b as f64, ts)]);
            }
            compress(&enc.finish())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let bodies = bodies();
    let limits = Limits {
        max_decoded_bytes: 64 << 20,
        series: dwcp_anomaly::internals::ingest::SeriesLimits::DEFAULT,
    };
    let mut g = c.benchmark_group("remote_write_1000_series");
    g.throughput(Throughput::Elements(SERIES as u64));

    g.bench_function("snappy_and_decode", |b| {
        let mut i = 0;
        b.iter(|| {
            let raw = snap::raw::Decoder::new().decompress_vec(&bodies[i % BODIES]).unwrap();
            i += 1;
            black_box(decode(&raw).unwrap().series.len())
        })
    });

    g.bench_function("decode_validate_vectorize", |b| {
        b.iter_custom(|iters| {
            let mut sink = None;
            let start = std::time::Instant::now();
            for i in 0..iters as usize {
                if i % BODIES == 0 {
                    let p = Pipeline::new(&Config::default(), Arc::new(Telemetry::default())).unwrap();
                    sink = Some(p.sink());
                }
                let Some(s) = sink.as_ref() else { continue };
                let out = ingest(&bodies[i % BODIES], limits, s.as_ref()).unwrap();
                debug_assert_eq!(out.samples_accepted, SERIES as u64);
                black_box(out);
            }
            start.elapsed()
        })
    });
    g.finish();
}

/// OTLP requests of 143 resources (one per entity) × 7 gauges × 1 point = 1001 points, as an
/// OpenTelemetry SDK per host would send them through a collector.
fn otlp_bodies() -> Vec<Vec<u8>> {
    let entities = SERIES.div_ceil(METRICS.len());
    (0..BODIES)
        .map(|b| {
            let t = (1_700_000_000_000 + b as u64 * 10_000) * 1_000_000;
            let resource_metrics = (0..entities)
                .map(|e| {
                    let resource = vec![
                        kv("service.name", "dwcp"),
                        kv("service.instance.id", &format!("dwcp-node-{e:04}")),
                        kv("cloud.region", "eu-west-1"),
                    ];
                    let values =
                        METRICS.iter().enumerate().map(|(m, name)| (*name, (e * 7 + m) as f64 + b as f64));
                    gauges(resource, &[kv("link", "uplink")], t, values)
                })
                .collect();
            ExportMetricsServiceRequest { resource_metrics }.encode_to_vec()
        })
        .collect()
}

/// Counts and drops: measures decode + mapping alone.
struct Discard;

impl SampleSink for Discard {
    fn accept(
        &self,
        series: &[&dwcp_anomaly::internals::sample::SeriesRef<'_>],
    ) -> dwcp_anomaly::internals::ingest::ObserveStats {
        dwcp_anomaly::internals::ingest::ObserveStats { accepted: series.len() as u64, ..Default::default() }
    }
}

fn bench_otlp(c: &mut Criterion) {
    let bodies = otlp_bodies();
    let limits = Limits {
        max_decoded_bytes: 64 << 20,
        series: dwcp_anomaly::internals::ingest::SeriesLimits::DEFAULT,
    };
    let opts = MapOptions::default();
    let points = SERIES.div_ceil(METRICS.len()) * METRICS.len();
    let mut g = c.benchmark_group("otlp_1001_points");
    g.throughput(Throughput::Elements(points as u64));

    g.bench_function("decode_and_map", |b| {
        let mut i = 0;
        b.iter(|| {
            let (req, _) =
                otlp::decode_http(&bodies[i % BODIES], Some("application/x-protobuf"), None, limits).unwrap();
            i += 1;
            black_box(otlp::ingest_decoded(&req, &opts, &Discard).samples.samples_accepted)
        })
    });

    g.bench_function("decode_map_vectorize", |b| {
        b.iter_custom(|iters| {
            let mut sink = None;
            let start = std::time::Instant::now();
            for i in 0..iters as usize {
                if i % BODIES == 0 {
                    let p = Pipeline::new(&Config::default(), Arc::new(Telemetry::default())).unwrap();
                    sink = Some(p.sink());
                }
                let Some(s) = sink.as_ref() else { continue };
                let (req, enc) =
                    otlp::decode_http(&bodies[i % BODIES], Some("application/x-protobuf"), None, limits)
                        .unwrap();
                debug_assert_eq!(enc, Encoding::Protobuf);
                let out = otlp::ingest_decoded(&req, &opts, s.as_ref());
                debug_assert_eq!(out.rejected_points, 0);
                black_box(out);
            }
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_otlp);
criterion_main!(benches);
