//! Decode + vectorize of remote-write batches of 1000 series (the ingest hot path).
//!
//! Each request carries one sample for each of 1000 series: 143 DWCP entities × 7 metrics
//! with realistic labels. Requests are pre-built with increasing timestamps so every sample
//! is stored (none is dropped as out of order). Goal: ≥ 1,000,000 samples/s on one core.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use dwcp_anomaly::config::Config;
use dwcp_anomaly::ingest::remote_write::{Limits, ingest};
use dwcp_anomaly::pipeline::Pipeline;
use dwcp_anomaly::proto::remote_write::{Encoder, compress, decode};
use dwcp_anomaly::simulate::METRICS;
use dwcp_anomaly::telemetry::Telemetry;

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
    let limits = Limits { max_decoded_bytes: 64 << 20 };
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

criterion_group!(benches, bench);
criterion_main!(benches);
