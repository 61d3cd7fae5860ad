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
