//! TLS: [`TlsOptions`] (what `--tls`, `--tlsverify`, `--tlscacert`, `--tlscert` and `--tlskey`
//! say, SPEC §5.1) and the rustls configurations built from them: one for serving clients, one for reaching engines and the primary
//! manager (the manager then presents the same certificate as its client certificate). Reads the
//! files named; nothing else.
//!
//! Certificates are checked against the address a peer is reached by, and engines and managers
//! are usually reached by IP address. A certificate that names only DNS names then fails in a
//! way that is hard to read from a bare rustls error, so the engine-side verifier rewrites that
//! failure into a sentence naming the missing IP SAN ([`check_names`] does the same for the
//! manager's own certificate at start-up).
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, ServerConfig,
    SignatureScheme,
};

/// What the TLS flags say (`--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`, `--tlskey`),
/// shared by the server side and the engine side; the discovery stores build theirs from the
/// `kv.*` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Serve (and connect to engines with) TLS; true for `--tls` and for `--tlsverify`.
    pub tls: bool,
    /// `--tlsverify`: require client certificates signed by `ca` and verify engines against it.
    pub verify: bool,
    /// `--tlscacert`, when given (always given with `verify`).
    pub ca: Option<PathBuf>,
    /// `--tlscert`, when given (always given with `tls`).
    pub cert: Option<PathBuf>,
    /// `--tlskey`, when given (always given with `tls`).
    pub key: Option<PathBuf>,
}

/// Why a TLS configuration could not be built; the texts are the classic fatal messages.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate or key file could not be read or do not form a pair.
    #[error("Couldn't load X509 key pair ({cert}, {key}): {detail}. Key encrypted?")]
    KeyPair {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What went wrong.
        detail: String,
    },
    /// The CA file could not be read or holds no usable certificate.
    #[error("Couldn't read CA certificate: {0}")]
    Ca(String),
    /// `--tls` without a certificate and key.
    #[error("--tlscert and --tlskey must be provided when using --tls")]
    MissingPair,
    /// `--tlsverify` without a CA.
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

/// The classic message for a certificate and key that cannot be used together.
fn key_pair_error(opts: &TlsOptions, detail: impl ToString) -> TlsError {
    let show = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    TlsError::KeyPair {
        cert: show(&opts.cert),
        key: show(&opts.key),
        detail: detail.to_string(),
    }
}

fn key_pair(
    opts: &TlsOptions,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let (Some(cert), Some(key)) = (&opts.cert, &opts.key) else {
        return Err(TlsError::MissingPair);
    };
    let err = |detail: String| key_pair_error(opts, detail);
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
        .map_err(|e| key_pair_error(opts, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How many engines' TLS sessions the manager keeps for resumption.
const ENGINE_SESSIONS: usize = 8192;

/// The engine side: the manager's certificate as client certificate; engine certificates
/// verified against the CA with `--tlsverify`, not verified with `--tls` alone.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Ca(e.to_string()))?;
    let builder = if opts.verify {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots(opts)?), provider())
                .build()
                .map_err(|e| TlsError::Ca(e.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ExplainNameMismatch(verifier)))
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
                .map_err(|e| key_pair_error(opts, e))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Idle engine connections are closed once unused past the longest refresh interval, and
    // reopened when next needed: resuming the session spares each reconnect the certificate
    // checks. The cache holds the sessions of up to this many engines (rustls keeps 256 by
    // default).
    config.resumption = rustls::client::Resumption::in_memory_sessions(ENGINE_SESSIONS);
    Ok(Arc::new(config))
}

/// The standard verification of a peer's certificate, with a name mismatch explained: the usual
/// cause is a certificate without an IP SAN for a peer reached by IP address.
#[derive(Debug)]
struct ExplainNameMismatch(Arc<WebPkiServerVerifier>);

/// A certificate that does not name the address it was reached by.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NameMismatch(String);

/// The sentence for a certificate that does not cover `expected`; `presented` are the names it
/// has (as rustls lists them).
pub fn name_mismatch_text(expected: &ServerName<'_>, presented: &[String]) -> String {
    let names = if presented.is_empty() {
        "no subject alternative names at all".to_string()
    } else {
        let readable: Vec<String> = presented.iter().map(|name| openssl_style(name)).collect();
        format!("only {}", readable.join(", "))
    };
    match expected {
        ServerName::IpAddress(ip) => {
            let ip = std::net::IpAddr::from(*ip);
            format!(
                "the certificate presented by {ip} is not valid for that address: it names \
                 {names}, and a certificate for a peer reached by IP address must carry the \
                 address as an IP SAN (subjectAltName IP:{ip})"
            )
        }
        other => format!(
            "the certificate presented by {} is not valid for that name: it names {names} \
             (add DNS:{} to its subjectAltName)",
            other.to_str(),
            other.to_str()
        ),
    }
}

/// rustls lists names as `DnsName("a")` and `IpAddress(1.2.3.4)`; people write them as
/// `DNS:a` and `IP:1.2.3.4` (OpenSSL's notation, also the one to put in a certificate request).
fn openssl_style(name: &str) -> String {
    if let Some(dns) = name
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
    {
        return format!("DNS:{dns}");
    }
    if let Some(ip) = name
        .strip_prefix("IpAddress(")
        .and_then(|n| n.strip_suffix(')'))
    {
        return format!("IP:{ip}");
    }
    name.to_string()
}

impl ServerCertVerifier for ExplainNameMismatch {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verified {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            })) => Err(mismatch(server_name, &presented)),
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)) => {
                Err(mismatch(server_name, &[]))
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn mismatch(server_name: &ServerName<'_>, presented: &[String]) -> rustls::Error {
    let text = name_mismatch_text(server_name, presented);
    // Logged as well as returned: the error travels up through layers (engine health, hyper)
    // that keep only their own summary.
    tracing::error!("TLS: {text}");
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(NameMismatch(
        text,
    )))))
}

/// Checks that the manager's own certificate (`--tlscert`) covers the addresses clients and other
/// managers reach it by (listening IPs other than the unspecified address, and the host of
/// `--advertise`). Returns one warning per address it does not cover; an unreadable certificate
/// gives none (loading it reports that).
pub fn check_names(opts: &TlsOptions, addresses: &[String]) -> Vec<String> {
    let Some(cert) = opts.cert.as_ref().and_then(|path| read_certs(path).ok()) else {
        return Vec::new();
    };
    let Some(leaf) = cert.first() else {
        return Vec::new();
    };
    let Ok(parsed) = webpki::EndEntityCert::try_from(leaf) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for address in addresses {
        let host = address.trim_start_matches('[').trim_end_matches(']');
        let Ok(name) = ServerName::try_from(host.to_string()) else {
            continue;
        };
        if let ServerName::IpAddress(ip) = &name {
            if std::net::IpAddr::from(*ip).is_unspecified() {
                continue;
            }
        }
        if parsed.verify_is_valid_for_subject_name(&name).is_err() {
            let cert_path = opts
                .cert
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            warnings.push(format!(
                "--tlscert {cert_path} does not name {host}: clients that verify the manager \
                 (docker --tlsverify, other managers forwarding to it) will refuse it when they \
                 connect to {host}; {}",
                match name {
                    ServerName::IpAddress(_) => format!("add IP:{host} to its subjectAltName"),
                    _ => format!("add DNS:{host} to its subjectAltName"),
                }
            ));
        }
    }
    warnings
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ip_san_is_named_in_the_error() {
        let ip = ServerName::try_from("127.0.0.1").unwrap();
        let text = name_mismatch_text(&ip, &["DnsName(\"localhost\")".to_string()]);
        assert_eq!(
            text,
            "the certificate presented by 127.0.0.1 is not valid for that address: it names only \
             DNS:localhost, and a certificate for a peer reached by IP address must carry the \
             address as an IP SAN (subjectAltName IP:127.0.0.1)"
        );
        let none = name_mismatch_text(&ip, &[]);
        assert!(
            none.contains("no subject alternative names at all"),
            "{none}"
        );
    }

    #[test]
    fn a_wrong_dns_name_is_named_too() {
        let dns = ServerName::try_from("node-1.example").unwrap();
        let text = name_mismatch_text(&dns, &["IpAddress(10.0.0.1)".to_string()]);
        assert!(text.contains("it names only IP:10.0.0.1"), "{text}");
        assert!(text.contains("add DNS:node-1.example"), "{text}");
    }

    #[test]
    fn unreadable_certificates_give_no_name_warnings() {
        let opts = TlsOptions {
            tls: true,
            cert: Some("/nonexistent/cert.pem".into()),
            ..TlsOptions::default()
        };
        assert!(check_names(&opts, &["127.0.0.1".to_string()]).is_empty());
    }
}
