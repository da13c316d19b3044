//! TLS material of the link, from [`GrpcTls`]: this replica's certificate (served to followers
//! and presented to the leader) and the CA peers must chain to.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::server::ResolvesServerCert;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::{GrpcConfig, GrpcTls};
use crate::tls::{self, ReloadingCa, ReloadingCertificate, TlsError, selfsigned};

/// A certificate usable on both ends.
trait BothEnds: ResolvesServerCert + ResolvesClientCert {}
impl<T: ResolvesServerCert + ResolvesClientCert> BothEnds for T {}

enum Ca {
    Files(Arc<ReloadingCa>),
    Pem(String, Arc<dyn ClientCertVerifier>),
}

/// The link's certificates.
pub(super) struct LinkTls {
    cert: Arc<dyn BothEnds>,
    ca: Ca,
}

impl LinkTls {
    pub(super) fn new(config: &GrpcConfig) -> Result<Self, TlsError> {
        match &config.tls {
            GrpcTls::Files {
                ca_file,
                cert_file,
                key_file,
            } => Ok(Self {
                cert: Arc::new(ReloadingCertificate::new(cert_file, key_file)?),
                ca: Ca::Files(Arc::new(ReloadingCa::new(ca_file)?)),
            }),
            GrpcTls::SharedCa {
                ca_cert_pem,
                ca_key_pem,
            } => {
                let leaf = selfsigned::signed_by_ca(
                    std::slice::from_ref(&config.server_name),
                    &config.server_name,
                    ca_cert_pem,
                    ca_key_pem,
                )?;
                let verifier = tls::client_verifier(
                    tls::root_store(ca_cert_pem.as_bytes(), "gRPC CA")?,
                    "gRPC CA",
                )?;
                Ok(Self {
                    cert: Arc::new(selfsigned::FixedCert(leaf.certified_key())),
                    ca: Ca::Pem(ca_cert_pem.clone(), verifier),
                })
            }
        }
    }

    /// The leader's side: TLS 1.3, client certificate required.
    pub(super) fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let verifier: Arc<dyn ClientCertVerifier> = match &self.ca {
            Ca::Files(ca) => Arc::clone(ca) as Arc<dyn ClientCertVerifier>,
            Ca::Pem(_, verifier) => Arc::clone(verifier),
        };
        let certs: Arc<dyn ResolvesServerCert> = Arc::new(ServerSide(Arc::clone(&self.cert)));
        tls::grpc_server_config(certs, verifier)
    }

    /// A follower's side: TLS 1.3, our certificate presented, the leader's verified against the
    /// CA (read now, so a rotated CA applies to the next connection).
    pub(super) fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let roots: RootCertStore = match &self.ca {
            Ca::Files(ca) => ca.roots()?,
            Ca::Pem(pem, _) => tls::root_store(pem.as_bytes(), "gRPC CA")?,
        };
        let mut config = ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(ClientSide(Arc::clone(&self.cert))));
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

// Newtypes so one `Arc<dyn BothEnds>` can be handed out as either trait object.
#[derive(Debug)]
struct ServerSide(Arc<dyn BothEnds>);
#[derive(Debug)]
struct ClientSide(Arc<dyn BothEnds>);

impl ResolvesServerCert for ServerSide {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        ResolvesServerCert::resolve(self.0.as_ref(), hello)
    }
}

impl ResolvesClientCert for ClientSide {
    fn resolve(
        &self,
        hints: &[&[u8]],
        schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        ResolvesClientCert::resolve(self.0.as_ref(), hints, schemes)
    }

    fn has_certs(&self) -> bool {
        self.0.has_certs()
    }
}
