//! rustls configurations built from `--tls`, `--tlsverify`, `--tlscacert`, `--tlscert` and
//! `--tlskey` (SPEC §5.1): one for serving clients, one for reaching engines (the manager then
//! presents the same certificate as its client certificate). Reads the files named; nothing
//! else.
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::cli::TlsOptions;

/// Why a TLS configuration could not be built; the texts are the classic fatal messages.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("Couldn't load X509 key pair ({cert}, {key}): {detail}. Key encrypted?")]
    KeyPair {
        cert: String,
        key: String,
        detail: String,
    },
    #[error("Couldn't read CA certificate: {0}")]
    Ca(String),
    #[error("--tlscert and --tlskey must be provided when using --tls")]
    MissingPair,
    #[error("--tlscacert must be provided when using --tlsverify")]
    MissingCa,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut BufReader::new(file)).collect();
    let certs = certs.map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {}", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no private key found in {}", path.display()))
}

fn key_pair(
    opts: &TlsOptions,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let (Some(cert), Some(key)) = (&opts.cert, &opts.key) else {
        return Err(TlsError::MissingPair);
    };
    let err = |detail: String| TlsError::KeyPair {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        detail,
    };
    Ok((read_certs(cert).map_err(err)?, read_key(key).map_err(err)?))
}

fn roots(opts: &TlsOptions) -> Result<RootCertStore, TlsError> {
    let ca = opts.ca.as_ref().ok_or(TlsError::MissingCa)?;
    let mut store = RootCertStore::empty();
    for cert in read_certs(ca).map_err(TlsError::Ca)? {
        store.add(cert).map_err(|e| TlsError::Ca(e.to_string()))?;
    }
    Ok(store)
}

/// The server side: TLS 1.2+, ALPN `http/1.1`, client certificates required with `--tlsverify`.
pub fn server_config(opts: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, key) = key_pair(opts)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Ca(e.to_string()))?;
    let builder = if opts.verify {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots(opts)?), provider())
                .build()
                .map_err(|e| TlsError::Ca(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::KeyPair {
            cert: opts
                .cert
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            key: opts
                .key
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            detail: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The engine side: the manager's certificate as client certificate; engine certificates
/// verified against the CA with `--tlsverify`, not verified with `--tls` alone.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Ca(e.to_string()))?;
    let builder = if opts.verify {
        builder.with_root_certificates(roots(opts)?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
    };
    let mut config = match (&opts.cert, &opts.key) {
        (Some(_), Some(_)) => {
            let (certs, key) = key_pair(opts)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::KeyPair {
                    cert: opts
                        .cert
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    key: opts
                        .key
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    detail: e.to_string(),
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// With `--tls` but without `--tlsverify` the classic does not verify engine certificates.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
