//! TLS on the listeners (`tls_server_config` of the web configuration file), with rustls.
//!
//! The certificate and key are re-read when their files change (checked at most once a second,
//! when a connection arrives) and on SIGHUP. A new pair that does not load — half-written,
//! mismatched, not PEM — is refused and logged; the previous one keeps serving. Handshakes run
//! on their own tasks with a deadline, so a slow or silent client never holds up the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, error, info};

use crate::config::web::{ClientAuthType, TlsServerConfig, TlsVersion};

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The files are checked for changes at most this often.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// ALPN of the HTTP listener (HTTP/1.1 only, as it serves).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";
/// ALPN of the gRPC listener.
pub const ALPN_H2: &[u8] = b"h2";

/// The server configuration of one listener, reloadable.
pub struct TlsSource {
    cfg: TlsServerConfig,
    alpn: Vec<Vec<u8>>,
    state: Mutex<Loaded>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl TlsSource {
    /// Loads the files of `cfg`; the error names the key and the file.
    pub fn new(cfg: &TlsServerConfig, alpn: &[&[u8]]) -> Result<Arc<Self>, String> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|a| a.to_vec()).collect();
        let stamps = stamps(cfg);
        let acceptor = TlsAcceptor::from(Arc::new(build(cfg, &alpn)?));
        let state = Mutex::new(Loaded { acceptor, stamps, checked: Instant::now() });
        Ok(Arc::new(Self { cfg: cfg.clone(), alpn, state }))
    }

    /// Re-reads the files. On error the pair in service stays, and the files' current
    /// modification times are remembered so a broken pair is not retried on every connection.
    pub fn reload(&self) -> Result<(), String> {
        let stamps = stamps(&self.cfg);
        let built = build(&self.cfg, &self.alpn);
        let mut st = self.state.lock();
        st.stamps = stamps;
        st.checked = Instant::now();
        st.acceptor = TlsAcceptor::from(Arc::new(built?));
        Ok(())
    }

    /// [`reload`](Self::reload), logging the outcome with `why`.
    pub fn reload_logged(&self, why: &str) {
        let cert_file = self.cfg.cert_file.display();
        match self.reload() {
            Ok(()) => info!(%cert_file, why, "TLS certificate reloaded."),
            Err(e) => {
                error!(error = %e, why, "TLS certificate not reloaded; the previous one keeps serving.")
            }
        }
    }

    /// The acceptor for a new connection, after reloading if the files changed.
    fn acceptor(&self) -> TlsAcceptor {
        let due = {
            let mut st = self.state.lock();
            let due = st.checked.elapsed() >= CHECK_EVERY;
            if due {
                st.checked = Instant::now();
            }
            due
        };
        if due && stamps(&self.cfg) != self.state.lock().stamps {
            self.reload_logged("files changed");
        }
        self.state.lock().acceptor.clone()
    }
}

/// Modification times of the files a configuration reads.
fn stamps(cfg: &TlsServerConfig) -> Vec<Option<SystemTime>> {
    [Some(&cfg.cert_file), Some(&cfg.key_file), cfg.client_ca_file.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// A rustls server configuration from `cfg`.
pub fn build(cfg: &TlsServerConfig, alpn: &[Vec<u8>]) -> Result<rustls::ServerConfig, String> {
    let certs = read_certs(&cfg.cert_file, "cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file)
        .map_err(|e| format!("tls_server_config.key_file: {}: {e}", cfg.key_file.display()))?;
    let provider = Arc::new(provider(cfg)?);
    let lo = cfg.min_version.unwrap_or(TlsVersion::TLS12);
    let hi = cfg.max_version.unwrap_or(TlsVersion::TLS13);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::TLS12, &rustls::version::TLS12), (TlsVersion::TLS13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (lo..=hi).contains(v))
            .map(|(_, p)| p)
            .collect();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match cfg.client_auth_type {
        ClientAuthType::NoClientCert => builder.with_no_client_auth(),
        ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert => {
            let ca = cfg.client_ca_file.as_ref().ok_or("tls_server_config.client_ca_file: required")?;
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca, "client_ca_file")? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {}: {e}", ca.display()))?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if cfg.client_auth_type == ClientAuthType::VerifyClientCertIfGiven {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(
                v.build().map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
            )
        }
        other => return Err(format!("tls_server_config.client_auth_type: {other:?} is not served")),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "tls_server_config: cert_file {} and key_file {} do not make a pair: {e}",
            cfg.cert_file.display(),
            cfg.key_file.display()
        )
    })?;
    config.alpn_protocols = alpn.to_vec();
    if let Some(prefer) = cfg.prefer_server_cipher_suites {
        config.ignore_client_order = prefer;
    }
    Ok(config)
}

fn read_certs(path: &std::path::Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let err = |e: &dyn std::fmt::Display| format!("tls_server_config.{key}: {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    if certs.is_empty() {
        return Err(err(&"no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The ring provider, narrowed to `cipher_suites` (TLS 1.2; Go's names) and
/// `curve_preferences` when they are set.
fn provider(cfg: &TlsServerConfig) -> Result<CryptoProvider, String> {
    let mut p = rustls::crypto::ring::default_provider();
    if !cfg.cipher_suites.is_empty() {
        let tls12: Vec<_> = p.cipher_suites.iter().filter(|s| s.tls13().is_none()).copied().collect();
        let mut keep = Vec::new();
        for name in &cfg.cipher_suites {
            let suite = tls12.iter().find(|s| format!("{:?}", s.suite()) == *name).ok_or_else(|| {
                let known: Vec<String> = tls12.iter().map(|s| format!("{:?}", s.suite())).collect();
                format!("tls_server_config.cipher_suites: {name} is not one of {}", known.join(", "))
            })?;
            keep.push(*suite);
        }
        keep.extend(p.cipher_suites.iter().filter(|s| s.tls13().is_some()));
        p.cipher_suites = keep;
    }
    if !cfg.curve_preferences.is_empty() {
        let mut keep = Vec::new();
        for name in &cfg.curve_preferences {
            let group = match name.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                _ => {
                    return Err(format!(
                        "tls_server_config.curve_preferences: {name} is not one of X25519, CurveP256, CurveP384"
                    ));
                }
            };
            keep.extend(p.kx_groups.iter().filter(|g| g.name() == group));
        }
        p.kx_groups = keep;
    }
    Ok(p)
}

/// A listener whose connections have finished their TLS handshake.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and hands over connections once `source` has shaken hands with them.
    pub fn new(tcp: TcpListener, source: Arc<TlsSource>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while !tx.is_closed() {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        debug!(error = %e, "Accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = source.acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed."),
                        Err(_) => debug!(%peer, "TLS handshake timed out."),
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }

    /// The connections as the stream tonic serves.
    pub fn into_stream(
        self,
    ) -> impl tokio_stream::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static {
        use tokio_stream::StreamExt as _;
        tokio_stream::wrappers::ReceiverStream::new(self.rx).map(|(io, _)| Ok(io))
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
