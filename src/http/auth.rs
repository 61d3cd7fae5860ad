//! Authentication of the HTTP listener (and of OTLP/gRPC, which asks [`WebAuth::check`]):
//! `basic_auth_users` with bcrypt hashes and bearer tokens from the web configuration file.
//!
//! bcrypt is slow by design, so pairs that verified once are cached (as exporter-toolkit
//! does), keyed by a per-process keyed hash of user and password: the cache never holds a
//! password. Tokens are compared in constant time. Credentials never reach a log line, a
//! metric label or a response body.

use std::collections::HashSet;
use std::hash::BuildHasher;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::config::WebConfig;

/// Paths served without credentials: liveness and readiness probes.
pub const OPEN_PATHS: [&str; 2] = ["/-/healthy", "/-/ready"];

/// Most verified pairs remembered.
const CACHE_MAX: usize = 1024;

/// Why a request was refused (`dwcp_anomaly_auth_failures_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// A scheme other than Basic or Bearer, or a header that does not decode.
    Malformed,
    /// Credentials that match no user or token.
    Invalid,
}

impl AuthFailure {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::Invalid => "invalid",
        }
    }
}

/// The credentials of a web configuration file.
pub struct WebAuth {
    users: Vec<(String, String)>,
    tokens: Vec<Vec<u8>>,
    open_metrics: bool,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    verified: Mutex<HashSet<u64>>,
    keys: std::collections::hash_map::RandomState,
}

impl WebAuth {
    /// The checker for `web`; `None` when it configures no credentials. Bad header names or
    /// values are an error naming them.
    pub fn new(web: &WebConfig) -> Result<Option<Self>, String> {
        let mut headers = Vec::new();
        for (k, v) in &web.http_server_config.headers {
            let name = header::HeaderName::try_from(k.as_str())
                .map_err(|_| format!("http_server_config.headers: invalid header name {k:?}"))?;
            let value = HeaderValue::try_from(v.as_str())
                .map_err(|_| format!("http_server_config.headers.{k}: invalid header value"))?;
            headers.push((name, value));
        }
        if !web.has_auth() && headers.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            users: web.basic_auth_users.iter().map(|(u, h)| (u.clone(), h.clone())).collect(),
            tokens: web.bearer_tokens.iter().map(|t| t.as_bytes().to_vec()).collect(),
            open_metrics: web.open_metrics,
            headers,
            verified: Mutex::new(HashSet::new()),
            keys: std::collections::hash_map::RandomState::new(),
        }))
    }

    /// Whether a request to `path` needs credentials.
    pub fn protects(&self, path: &str) -> bool {
        if self.users.is_empty() && self.tokens.is_empty() {
            return false;
        }
        if OPEN_PATHS.contains(&path) {
            return false;
        }
        !(self.open_metrics && (path == "/metrics" || path == "/"))
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), AuthFailure> {
        let Some(value) = authorization else { return Err(AuthFailure::Missing) };
        let value = std::str::from_utf8(value).map_err(|_| AuthFailure::Malformed)?;
        let (scheme, rest) = value.trim().split_once(' ').ok_or(AuthFailure::Malformed)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let given = rest.as_bytes();
            let mut ok = subtle::Choice::from(0u8);
            for t in &self.tokens {
                ok |= t.as_slice().ct_eq(given);
            }
            return if bool::from(ok) { Ok(()) } else { Err(AuthFailure::Invalid) };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthFailure::Malformed);
        }
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| AuthFailure::Malformed)?;
        let pair = String::from_utf8(decoded).map_err(|_| AuthFailure::Malformed)?;
        let (user, password) = pair.split_once(':').ok_or(AuthFailure::Malformed)?;
        let key = self.keys.hash_one((user, password));
        if self.verified.lock().contains(&key) {
            return Ok(());
        }
        let Some((_, hash)) = self.users.iter().find(|(u, _)| u == user) else {
            return Err(AuthFailure::Invalid);
        };
        if bcrypt::verify(password, hash).unwrap_or(false) {
            let mut cache = self.verified.lock();
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key);
            Ok(())
        } else {
            Err(AuthFailure::Invalid)
        }
    }

    /// The 401 answer: the challenge names both schemes, the body says what was wrong without
    /// echoing anything the client sent.
    pub fn refuse(reason: AuthFailure) -> Response {
        let body = match reason {
            AuthFailure::Missing => "authentication required: send Basic credentials or a Bearer token\n",
            AuthFailure::Malformed => "malformed Authorization header: expected Basic or Bearer\n",
            AuthFailure::Invalid => "invalid credentials\n",
        };
        let mut r = (StatusCode::UNAUTHORIZED, body).into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"dwcp-anomaly\""));
        r.headers_mut()
            .append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"dwcp-anomaly\""));
        r
    }
}

/// The middleware: lets open paths through, checks the rest, counts refusals and adds the
/// configured response headers.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(auth) = state.auth.clone() else { return next.run(req).await };
    if auth.protects(req.uri().path()) {
        let header = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
        // bcrypt runs off the async workers (a cache hit returns at once).
        let checker = std::sync::Arc::clone(&auth);
        let verdict = tokio::task::spawn_blocking(move || checker.check(header.as_deref()))
            .await
            .unwrap_or(Err(AuthFailure::Invalid));
        if let Err(reason) = verdict {
            state.telemetry.auth_failures.with(&["http", reason.as_str()]).inc();
            let mut r = WebAuth::refuse(reason);
            add_headers(&auth, &mut r);
            return r;
        }
    }
    let mut r = next.run(req).await;
    add_headers(&auth, &mut r);
    r
}

fn add_headers(auth: &WebAuth, r: &mut Response) {
    for (k, v) in &auth.headers {
        r.headers_mut().insert(k.clone(), v.clone());
    }
}
