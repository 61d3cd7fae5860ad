//! Generic JSON webhook: `POST <webhook_url>` with [`AlertEvent::to_json`] as the body
//! (schema in `docs/alerting.md`). With `webhook_secret` set, the body is signed:
//! `X-DWCP-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`, as GitHub signs
//! its webhooks, so the receiver can check origin and integrity.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::dispatch::{Channel, SendError, post_body};
use super::{AlertEvent, Links};

/// Header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-DWCP-Signature";

/// The webhook channel.
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
    links: Links,
}

impl Webhook {
    /// A channel posting to `url`, signing when `secret` is not empty.
    pub fn new(client: reqwest::Client, url: &str, secret: &str, links: Links) -> Self {
        Self { client, url: url.to_string(), secret: secret.as_bytes().to_vec(), links }
    }
}

/// `sha256=<hex>` of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256=");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, event: &AlertEvent) -> Result<(), SendError> {
        let body = serde_json::to_vec(&event.to_json(&self.links)).unwrap_or_default();
        let mut req = self.client.post(&self.url).header("Content-Type", "application/json");
        if !self.secret.is_empty() {
            req = req.header(SIGNATURE_HEADER, signature(&self.secret, &body));
        }
        post_body(req, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
