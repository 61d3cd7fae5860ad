#![allow(dead_code)] // not every target uses every helper
// Shared by the targets: the limits the service starts with and a real vectorizer as the sink,
// so that what decodes is also validated and stored as in `serve`.
use dwcp_anomaly::internals::config::{IngestConfig, VectorizeConfig};
use dwcp_anomaly::internals::ingest::remote_write::Limits;
use dwcp_anomaly::internals::vectorize::{Vectorizer, VectorizerSink};

pub fn limits() -> Limits {
    // A smaller decoding limit than the default keeps each run fast; the checks are the same.
    Limits { max_decoded_bytes: 1 << 20, ..Limits::from_config(&IngestConfig::default()) }
}

pub fn sink() -> VectorizerSink {
    VectorizerSink::new(Vectorizer::new(&VectorizeConfig::default()).unwrap(), 10_000)
}
