//! The certificate a TLS registry presents, read without trusting it, so that a failed
//! verification can name whose certificate it was (its subject, e.g. `CN=registry.lan`).
//!
//! Level 2. One TLS handshake whose verifier records the end-entity certificate and accepts it;
//! nothing is sent over that connection, and what it learned is used for a message only, never
//! to decide anything. The subject is read from the certificate's DER (RFC 5280 section 4.1:
//! `Certificate` → `tbsCertificate` → `subject`), for the usual attribute types.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// A verifier that keeps the end-entity certificate and accepts everything.
#[derive(Debug)]
struct Record {
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Record {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.to_vec());
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The subject of the certificate `host:port` presents (e.g. `CN=registry.lan, O=Example`);
/// `None` when it cannot be had within a few seconds or read.
pub(super) async fn subject(host: &str, port: u16) -> Option<String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let seen = Arc::new(Mutex::new(None));
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Record {
            seen: seen.clone(),
            provider,
        }))
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).ok()?;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .ok()??;
    let der = seen.lock().ok()?.take()?;
    subject_of(&der)
}

/// One DER element: its tag, its contents, and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subject of a DER certificate as `CN=..., O=...` (RFC 4514 order is reversed; this keeps
/// the certificate's order, as openssl's one-line form does).
pub(super) fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let mut rest = tbs;
    // [0] version, when present.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (_, mut rdns, _) = element(rest)?;
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (_, set, next) = element(rdns)?;
        rdns = next;
        let (_, attr, _) = element(set)?;
        let (_, oid, after) = element(attr)?;
        let (_, value, _) = element(after)?;
        let key = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            _ => continue,
        };
        parts.push(format!("{key}={}", String::from_utf8_lossy(value)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_subject_of_a_der_certificate() {
        // A certificate's skeleton: version, serial, algorithm, issuer, validity, subject.
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            if body.len() < 0x80 {
                v.push(body.len() as u8);
            } else {
                v.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
            }
            v.extend_from_slice(body);
            v
        }
        let rdn = |oid: &[u8], value: &str| {
            let mut attr = tlv(0x06, oid);
            attr.extend(tlv(0x0c, value.as_bytes()));
            tlv(0x31, &tlv(0x30, &attr))
        };
        let mut name = rdn(&[0x55, 0x04, 0x0a], "Example");
        name.extend(rdn(&[0x55, 0x04, 0x03], "registry.lan"));
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[1, 2, 3]));
        tbs.extend(tlv(0x30, &tlv(0x06, &[0x2a, 0x86, 0x48])));
        tbs.extend(tlv(0x30, &rdn(&[0x55, 0x04, 0x03], "issuer")));
        tbs.extend(tlv(0x30, &[0x17, 0x00, 0x17, 0x00]));
        tbs.extend(tlv(0x30, &name));
        let cert = tlv(0x30, &tlv(0x30, &tbs));
        assert_eq!(
            subject_of(&cert).as_deref(),
            Some("O=Example, CN=registry.lan")
        );
        assert_eq!(subject_of(b"\\x30\\x05junk"), None);
    }
}
