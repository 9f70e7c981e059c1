//! HTTPS for the simulated web services. Production serves the clearinghouse, the update site and the
//! installer builder over HTTPS; the simulator gives the clearinghouse an HTTPS listener too, so that
//! probes see a real handshake and a real certificate expiry. A CA of its own, generated at start,
//! signs a leaf for `127.0.0.1` and `localhost`; clients trust the CA's PEM (`Endpoints::tls_ca_cert`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long the leaf certificate is valid from start-up: Let's Encrypt's 90 days, what the
/// production sites renew on.
pub const LEAF_VALIDITY: time::Duration = time::Duration::days(90);

/// A handshake that has not finished by then is dropped (a client that connects and says nothing
/// must not hold a task forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The simulator's certificate authority and the server identity it signed.
pub struct Identity {
    /// The CA certificate, PEM: what a client adds to its trust roots.
    pub ca_pem: String,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
    pub acceptor: TlsAcceptor,
}

impl Identity {
    /// A fresh CA and a leaf for `127.0.0.1` / `localhost`, valid from an hour ago (clock skew)
    /// for [`LEAF_VALIDITY`].
    pub fn generate() -> anyhow::Result<Identity> {
        let now = time::OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate().context("CA key")?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "Seattle simulator CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = now - time::Duration::hours(1);
        ca.not_after = now + time::Duration::days(3650);
        let ca_cert = ca.self_signed(&ca_key).context("CA certificate")?;

        let leaf_key = KeyPair::generate().context("leaf key")?;
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name
            .push(DnType::CommonName, "seattle simulator");
        leaf.subject_alt_names = vec![
            SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
            SanType::DnsName("localhost".try_into().context("SAN")?),
        ];
        leaf.not_before = now - time::Duration::hours(1);
        leaf.not_after = now + LEAF_VALIDITY;
        let not_after = leaf.not_after.unix_timestamp();
        let leaf_cert = leaf
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .context("leaf certificate")?;

        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(leaf_cert.der().to_vec()),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .context("TLS server config")?;
        Ok(Identity {
            ca_pem: ca_cert.pem(),
            not_after,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Serves `app` over TLS on `listener` until the task running it is aborted. Each connection
/// handshakes in its own task, so a silent client delays nobody.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: Router) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of descriptors and the like: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
