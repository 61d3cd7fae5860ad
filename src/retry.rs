//! Outgoing requests: one HTTP client builder and one retry policy for everything that sends
//! (remote-write out, OTLP out, alert channels, the scraper, the simulator).

use std::time::Duration;

use crate::rng::Rng;

/// Retries with exponential backoff and ±20 % jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// First delay.
    pub backoff: Duration,
    /// Longest delay.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): doubling from `backoff`, capped at
    /// `max_backoff`, jittered ±20 %; a receiver's `Retry-After` wins up to the cap.
    pub fn delay(&self, attempt: u32, after: Option<Duration>, rng: &mut Rng) -> Duration {
        let base = self.backoff.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.max_backoff);
        let jittered = base.mul_f64(0.8 + 0.4 * rng.uniform());
        after.map_or(jittered, |a| a.min(self.max_backoff).max(jittered))
    }
}

/// An HTTP client builder with TLS ready: installs rustls's `ring` provider for the process
/// once (reqwest is built without a default provider to keep aws-lc out of the build).
pub fn http_client() -> reqwest::ClientBuilder {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // An error means another provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// An outgoing client that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A file of `tls_config` is missing or not PEM.
    #[error("tls_config.{key}: {file}: {reason}")]
    Tls {
        /// The key naming the file.
        key: &'static str,
        /// The file.
        file: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// reqwest refused the settings.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// Applies `tls_config` (Prometheus's spelling) to `builder`: `ca_file` replaces the system's
/// roots, `cert_file` + `key_file` are the client's identity, `insecure_skip_verify` accepts any
/// server certificate.
pub fn with_tls(
    mut builder: reqwest::ClientBuilder,
    tls: Option<&crate::config::TlsClientConfig>,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let Some(tls) = tls else { return Ok(builder) };
    let err = |key: &'static str, file: &std::path::Path, reason: String| ClientError::Tls {
        key,
        file: file.to_path_buf(),
        reason,
    };
    let read = |key, file: &std::path::Path| std::fs::read(file).map_err(|e| err(key, file, e.to_string()));
    if let Some(ca) = &tls.ca_file {
        let certs = reqwest::Certificate::from_pem_bundle(&read("ca_file", ca)?)
            .map_err(|e| err("ca_file", ca, e.to_string()))?;
        if certs.is_empty() {
            return Err(err("ca_file", ca, "no PEM certificate in the file".into()));
        }
        builder = builder.tls_certs_only(certs);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = read("cert_file", cert)?;
        pem.push(b'\n');
        pem.extend_from_slice(&read("key_file", key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| err("key_file", key, e.to_string()))?;
        builder = builder.identity(identity);
    }
    if tls.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

/// A response's `Retry-After` in seconds (the HTTP-date form is not used by the receivers
/// this service talks to and is ignored).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_honour_retry_after() {
        let p = RetryPolicy {
            retries: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let mut rng = Rng::new(1);
        let ms = |d: Duration| d.as_millis();
        let d1 = ms(p.delay(1, None, &mut rng));
        assert!((80..=120).contains(&d1), "{d1}");
        let d3 = ms(p.delay(3, None, &mut rng));
        assert!((320..=480).contains(&d3), "{d3}");
        let d9 = ms(p.delay(9, None, &mut rng));
        assert!((800..=1200).contains(&d9), "{d9}");
        assert_eq!(ms(p.delay(1, Some(Duration::from_millis(700)), &mut rng)), 700);
        assert!(ms(p.delay(1, Some(Duration::from_secs(60)), &mut rng)) <= 1000);
    }
}
