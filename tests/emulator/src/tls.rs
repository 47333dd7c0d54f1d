//! HTTPS for the emulator, as kube-apiserver serves it: a CA generated at start-up signs the serving
//! certificate (for 127.0.0.1 and localhost); clients trust the CA, as pods trust the cluster's `ca.crt`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer, pki_types::PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// A fresh certificate authority: what signs certificates, and its own certificate (what clients
/// trust). The emulator's and `cargo cluster`'s PKI start here.
pub fn certificate_authority(
    common_name: &str,
) -> Result<(Issuer<'static, KeyPair>, rcgen::Certificate), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((Issuer::new(params, key), cert))
}

/// kube-apiserver's serving certificate for `names` (addresses and host names), signed by `issuer`,
/// with its new key.
pub fn serving_certificate(
    issuer: &Issuer<'static, KeyPair>,
    names: &[&str],
) -> Result<(rcgen::Certificate, KeyPair), rcgen::Error> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert, key))
}

/// A fresh CA and the serving configuration it signed.
pub(crate) struct ServerTls {
    /// The CA certificate in PEM, what a kubeconfig's `certificate-authority-data` and a pod's
    /// `ca.crt` hold.
    pub ca_pem: String,
    /// The CA certificate in DER, for kube-rs clients.
    pub ca_der: Vec<u8>,
    acceptor: TlsAcceptor,
}

impl ServerTls {
    pub(crate) fn generate() -> std::io::Result<ServerTls> {
        let invalid =
            |e: rcgen::Error| std::io::Error::other(format!("generating certificates: {e}"));
        let (issuer, ca_cert) = certificate_authority("demoweb-emulator-ca").map_err(invalid)?;

        // The names kube-apiserver's own serving certificate carries for a local endpoint.
        let (cert, key) =
            serving_certificate(&issuer, &["127.0.0.1", "localhost"]).map_err(invalid)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(std::io::Error::other)?;
        // As kube-apiserver: HTTP/2 to clients that offer it in the handshake (client-go does),
        // HTTP/1.1 to the others.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// A listener that hands axum finished TLS connections. Handshakes run in their own tasks, so a
    /// client that stalls mid-handshake holds up nobody else.
    pub(crate) fn listener(&self, tcp: TcpListener) -> TlsListener {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = self.acceptor.clone();
        let local = tcp.local_addr();
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = tcp.accept().await else {
                    // Out of file descriptors and the like: try again shortly, as axum does.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    if let Ok(Ok(tls)) = handshake.await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        TlsListener {
            connections: rx,
            local,
            accepting,
        }
    }
}

pub(crate) struct TlsListener {
    connections: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accepting task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
