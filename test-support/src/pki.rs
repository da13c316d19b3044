//! A test PKI: CAs generated in memory and the server and client certificates they sign,
//! through `kedge_tls::ca` (what kedge itself generates certificates with), without `Result`s:
//! in a test, failing to generate a certificate is failing the test.

/// A certificate and its private key, PEM (`cert_pem`, `key_pem`) and DER
/// ([`cert_der`](Leaf::cert_der), [`key_der`](Leaf::key_der)).
pub type Leaf = kedge_tls::ca::Issued;

/// A CA that signs certificates, its certificate and key at hand as PEM.
pub struct Ca {
    /// The CA certificate, PEM: the bundle that verifies what it signs.
    pub cert_pem: String,
    /// The CA's private key, PEM (PKCS#8).
    pub key_pem: String,
    ca: kedge_tls::ca::Ca,
}

impl Ca {
    /// A new self-signed CA with this common name.
    ///
    /// # Panics
    ///
    /// When the CA cannot be generated.
    #[track_caller]
    pub fn new(common_name: &str) -> Self {
        let ca = kedge_tls::ca::Ca::new(common_name).expect("a test CA");
        Self {
            cert_pem: ca.cert_pem().to_owned(),
            key_pem: ca.key_pem(),
            ca,
        }
    }

    /// A server (and client) certificate for `names`, DNS names or IP addresses, the first also
    /// its common name.
    ///
    /// # Panics
    ///
    /// When a name is not valid in a certificate, or the certificate cannot be generated.
    #[track_caller]
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.ca.server(names).expect("a test server certificate")
    }

    /// A client certificate for `common_name` (the user of x509 client authentication) in the
    /// group `organization`.
    ///
    /// # Panics
    ///
    /// When the certificate cannot be generated.
    #[track_caller]
    pub fn client(&self, common_name: &str, organization: Option<&str>) -> Leaf {
        self.ca
            .client(common_name, organization)
            .expect("a test client certificate")
    }
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_signs_servers_and_clients() {
        let ca = Ca::new("test CA");
        assert!(ca.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.key_pem.contains("PRIVATE KEY"));
        let roots = kedge_tls::pem::root_store(ca.cert_pem.as_bytes(), "test CA")
            .expect("the CA as a root");
        assert_eq!(roots.len(), 1);
        for leaf in [
            ca.server(&["localhost", "127.0.0.1"]),
            ca.client("jane", Some("system:masters")),
        ] {
            kedge_tls::pem::certified_key(
                leaf.cert_pem.as_bytes(),
                leaf.key_pem.as_bytes(),
                "leaf",
            )
            .expect("a certificate and its key");
        }
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }
}
