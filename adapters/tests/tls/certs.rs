//! Certificates made at test time with rcgen: test CAs, and server and
//! client certificates they issue, valid or not. Also used by the
//! interop and mio_tls tests (through `#[path]`).

#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};

/// A certificate and its key, in PEM.
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
    /// The key's SubjectPublicKeyInfo in DER (Chromium pins it).
    pub spki_der: Vec<u8>,
}

/// A test certificate authority.
pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
pub enum Usage {
    Server,
    Client,
}

/// When a leaf certificate is valid.
#[derive(Clone, Copy)]
pub enum Validity {
    Now,
    /// Ended in 2001.
    Expired,
    /// Starts in 2999.
    Future,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str], usage: Usage, validity: Validity) -> Identity {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        match validity {
            Validity::Now => {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2999, 1, 1);
            }
            Validity::Expired => {
                params.not_before = rcgen::date_time_ymd(2000, 1, 1);
                params.not_after = rcgen::date_time_ymd(2001, 1, 1);
            }
            Validity::Future => {
                params.not_before = rcgen::date_time_ymd(2999, 1, 1);
                params.not_after = rcgen::date_time_ymd(3000, 1, 1);
            }
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            spki_der: key.subject_public_key_info(),
        }
    }

    /// A server certificate for `names`, valid now.
    pub fn server_for(&self, names: &[&str]) -> Identity {
        self.issue(names, Usage::Server, Validity::Now)
    }

    /// A server certificate for 127.0.0.1 and localhost, valid now.
    pub fn server(&self) -> Identity {
        self.server_for(&["127.0.0.1", "localhost"])
    }

    /// A client certificate, valid now.
    pub fn client(&self, name: &str) -> Identity {
        self.issue(&[name], Usage::Client, Validity::Now)
    }
}
