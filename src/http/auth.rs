//! Authentication of the HTTP listener (and of OTLP/gRPC, which asks [`WebAuth::admit`]):
//! `basic_auth_users` with bcrypt hashes and bearer tokens from the web configuration file.
//!
//! bcrypt is slow by design, so pairs that verified once are cached (as exporter-toolkit
//! does), keyed by a per-process keyed hash of user and password: the cache never holds a
//! password. Tokens are compared in constant time. Credentials never reach a log line, a
//! metric label or a response body.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::config::WebConfig;
use crate::telemetry::Telemetry;

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

/// What `WebAuth::check_fast` left to do.
enum Verdict {
    /// Admitted.
    Done,
    /// A known user with a password not verified before: bcrypt decides.
    Bcrypt(Pending),
}

/// A pair waiting for bcrypt.
struct Pending {
    /// Index into `users`.
    user: usize,
    password: String,
    /// The cache key of the pair.
    key: u64,
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

    /// Admits a request to `listener` (`http`, `otlp_grpc`): bearer tokens and pairs verified
    /// before are checked at once, only a new user and password pays bcrypt, on a blocking
    /// thread. Refusals are counted by listener and reason.
    pub async fn admit(
        self: &Arc<Self>,
        authorization: Option<&[u8]>,
        telemetry: &Telemetry,
        listener: &str,
    ) -> Result<(), AuthFailure> {
        let verdict = match self.check_fast(authorization) {
            Ok(Verdict::Done) => Ok(()),
            Ok(Verdict::Bcrypt(pending)) => {
                let auth = Arc::clone(self);
                tokio::task::spawn_blocking(move || auth.verify(&pending))
                    .await
                    .unwrap_or(Err(AuthFailure::Invalid))
            }
            Err(reason) => Err(reason),
        };
        if let Err(reason) = verdict {
            telemetry.auth_failures.with(&[listener, reason.as_str()]).inc();
        }
        verdict
    }

    /// The part of [`admit`](Self::admit) that needs no blocking thread, for callers that
    /// cannot wait (the gRPC interceptor, which runs before the message is decoded):
    /// `Ok(true)` admitted, `Ok(false)` a user and password not verified before (bcrypt still
    /// to pay through `admit`), `Err` refused and counted.
    pub fn screen(
        &self,
        authorization: Option<&[u8]>,
        telemetry: &Telemetry,
        listener: &str,
    ) -> Result<bool, AuthFailure> {
        match self.check_fast(authorization) {
            Ok(Verdict::Done) => Ok(true),
            Ok(Verdict::Bcrypt(_)) => Ok(false),
            Err(reason) => {
                telemetry.auth_failures.with(&[listener, reason.as_str()]).inc();
                Err(reason)
            }
        }
    }

    /// Everything but bcrypt: the header's form, bearer tokens, the cache of verified pairs.
    fn check_fast(&self, authorization: Option<&[u8]>) -> Result<Verdict, AuthFailure> {
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
            return if bool::from(ok) { Ok(Verdict::Done) } else { Err(AuthFailure::Invalid) };
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
            return Ok(Verdict::Done);
        }
        let Some(user) = self.users.iter().position(|(u, _)| u == user) else {
            return Err(AuthFailure::Invalid);
        };
        Ok(Verdict::Bcrypt(Pending { user, password: password.to_string(), key }))
    }

    /// The bcrypt comparison of a pair not verified before; remembers it when it matches.
    fn verify(&self, pending: &Pending) -> Result<(), AuthFailure> {
        if !bcrypt::verify(&pending.password, &self.users[pending.user].1).unwrap_or(false) {
            return Err(AuthFailure::Invalid);
        }
        let mut cache = self.verified.lock();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(pending.key);
        Ok(())
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
        let header = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
        if let Err(reason) = auth.admit(header, &state.telemetry, "http").await {
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
