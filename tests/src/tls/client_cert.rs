//! Client certificates for mutual TLS: [`Pki::issue_client`] issues one with the subject,
//! serial number and validity a [`ClientCert`] gives (so a test knows every value the gateway
//! should pass on), and [`Pki::write_crl`] writes a CRL of the CA revoking serial numbers.

use std::path::PathBuf;

use rcgen::{
    date_time_ymd, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};

use super::{Leaf, Pki, PKCS_ECDSA_P256_SHA256};

/// A calendar day, (year, month, day); certificates start and end at its midnight UTC.
pub type Day = (i32, u8, u8);

/// What a client certificate says.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// Subject common name.
    pub common_name: String,
    /// Subject organization, if any: written before the common name, so it is the least
    /// specific RDN (`CN=…,O=…` in RFC 4514).
    pub organization: Option<String>,
    /// Serial number, big-endian, written as given: its first byte must be below 0x80 (a
    /// positive DER integer needs no leading zero then).
    pub serial: Vec<u8>,
    /// First day of validity.
    pub not_before: Day,
    /// End of validity.
    pub not_after: Day,
}

impl ClientCert {
    /// A certificate for `common_name` with this serial number, valid from 2025-01-01 to
    /// 2099-12-31 (midnight UTC).
    pub fn new(common_name: &str, serial: &[u8]) -> ClientCert {
        assert!(
            serial.first().is_some_and(|b| *b < 0x80),
            "a serial number written as given must start below 0x80"
        );
        ClientCert {
            common_name: common_name.to_string(),
            organization: None,
            serial: serial.to_vec(),
            not_before: (2025, 1, 1),
            not_after: (2099, 12, 31),
        }
    }

    /// Adds an organization to the subject.
    pub fn organization(mut self, organization: &str) -> ClientCert {
        self.organization = Some(organization.to_string());
        self
    }

    /// Valid from `not_before` to `not_after` (a window in the past makes an expired one).
    pub fn valid(mut self, not_before: Day, not_after: Day) -> ClientCert {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }
}

impl Pki {
    /// Issues a client certificate (ECDSA P-256, extended key usage clientAuth, no subject
    /// alternative names) as `spec` says, and writes it to `<stem>.pem` and `<stem>.key`.
    pub fn issue_client(&self, stem: &str, spec: &ClientCert) -> Leaf {
        let mut params = CertificateParams::new(Vec::new()).expect("client parameters");
        let mut subject = DistinguishedName::new();
        if let Some(organization) = &spec.organization {
            subject.push(DnType::OrganizationName, organization.as_str());
        }
        subject.push(DnType::CommonName, spec.common_name.as_str());
        params.distinguished_name = subject;
        params.serial_number = Some(SerialNumber::from_slice(&spec.serial));
        let ((y0, m0, d0), (y1, m1, d1)) = (spec.not_before, spec.not_after);
        params.not_before = date_time_ymd(y0, m0, d0);
        params.not_after = date_time_ymd(y1, m1, d1);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("client key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the client certificate");
        let leaf = Leaf {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write the client certificate");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write the client key");
        leaf
    }

    /// Writes `<stem>.pem`: a CRL of this CA (issued 2025-01-01, next update 2099-01-01)
    /// revoking the certificates with these serial numbers (none: a CRL revoking nothing).
    pub fn write_crl(&self, stem: &str, revoked: &[&[u8]]) -> PathBuf {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2025, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: date_time_ymd(2025, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).expect("sign the CRL");
        let path = self.dir.join(format!("{stem}.pem"));
        std::fs::write(&path, crl.pem().expect("CRL as PEM")).expect("write the CRL");
        path
    }
}
