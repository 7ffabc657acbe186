//! Certificates: the cluster CA, node certificates, their PEM files, and rustls configs.
//!
//! One CA per cluster signs every node's certificate. A node's identity is the DNS name
//! `node-<id>.callgrid` in its certificate's subject alternative names (see
//! [`codec::node_server_name`]); the transport reads the id from there after the TLS
//! handshake verified the chain, so a node cannot claim another node's id.
//!
//! Files in a certificate directory (what `callgrid certs init|issue` will write):
//!
//! ```text
//!   ca.pem  ca.key               cluster CA (the key stays with the operator)
//!   node-<id>.pem node-<id>.key  one pair per node; keys are written with mode 0600
//!   revoked                      serials of certificates no longer accepted ([`RevocationList`])
//! ```
//!
//! The rustls configs use the ring provider and TLS 1.3 only (QUIC requires 1.3), with
//! client authentication required on the server side: there is no code path that accepts a
//! connection without a certificate chaining to the cluster CA.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::codec;
use crate::transport::NodeId;

mod revoked;
pub use revoked::{REVOKED_FILE, RevocationList, certificate_serial, parse_revoked};

/// File name of the CA certificate in a certificate directory.
pub const CA_CERTIFICATE_FILE: &str = "ca.pem";
/// File name of the CA private key in a certificate directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// How long a generated CA is valid.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a generated node certificate is valid.
pub const NODE_VALIDITY_DAYS: i64 = 825;
/// Unix permissions of every private key file written.
pub const KEY_FILE_MODE: u32 = 0o600;

/// Why certificates could not be created, read or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// rcgen could not generate a key or certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file exists and would be overwritten.
    #[error("{0} already exists; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file (or a description of the in-memory source).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A certificate carries no, or more than one, node identity.
    #[error("certificate identity: {0}")]
    Identity(String),
    /// The node id is not valid (0 is reserved by raft-rs).
    #[error("invalid node id {0}")]
    InvalidNodeId(NodeId),
    /// rustls refused the certificates or keys.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("certificate verifier: {0}")]
    Verifier(String),
}

/// A node's TLS material: the cluster CA it trusts, and its own chain and key.
pub struct TlsIdentity {
    /// The node this identity belongs to (from its certificate).
    pub node_id: NodeId,
    /// The cluster CA: the only root trusted for peers.
    pub ca_certificate: CertificateDer<'static>,
    /// The node's certificate first, then intermediates if any.
    pub certificate_chain: Vec<CertificateDer<'static>>,
    /// The node's private key.
    pub private_key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            node_id: self.node_id,
            ca_certificate: self.ca_certificate.clone(),
            certificate_chain: self.certificate_chain.clone(),
            private_key: self.private_key.clone_key(),
        }
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        formatter
            .debug_struct("TlsIdentity")
            .field("node_id", &self.node_id)
            .field("certificate_chain_length", &self.certificate_chain.len())
            .finish_non_exhaustive()
    }
}

/// A cluster CA able to issue node certificates.
pub struct CertificateAuthority {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

/// A freshly issued node certificate and key, in PEM.
#[derive(Clone)]
pub struct NodeCertificate {
    /// The node the certificate names.
    pub node_id: NodeId,
    /// The certificate.
    pub certificate_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCertificate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NodeCertificate")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn validity(days: i64) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks slightly behind the issuer's.
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(days),
    )
}

impl CertificateAuthority {
    /// Generate a new CA (ECDSA P-256) named `callgrid cluster CA`.
    pub fn generate() -> Result<Self, CertsError> {
        Self::generate_named("callgrid cluster CA")
    }

    /// Generate a new CA with the given common name (tests use a second, foreign CA).
    pub fn generate_named(common_name: &str) -> Result<Self, CertsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        name.push(DnType::OrganizationName, "callgrid");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (params.not_before, params.not_after) = validity(CA_VALIDITY_DAYS);
        let certificate = params.self_signed(&key)?;
        Ok(Self { certificate, key })
    }

    /// Rebuild a CA from its PEM certificate and key (to issue more node certificates).
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Self, CertsError> {
        let key = KeyPair::from_pem(key_pem)?;
        let params = CertificateParams::from_ca_cert_pem(certificate_pem)?;
        // rcgen signs with an issuer `Certificate`; re-signing the same subject and key
        // gives an issuer that produces chains valid under the original CA certificate.
        let certificate = params.self_signed(&key)?;
        Ok(Self { certificate, key })
    }

    /// The CA certificate in PEM.
    pub fn certificate_pem(&self) -> String {
        self.certificate.pem()
    }

    /// The CA certificate in DER.
    pub fn certificate_der(&self) -> CertificateDer<'static> {
        self.certificate.der().clone()
    }

    /// The CA private key in PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issue a certificate for node `node_id`, valid as TLS server and client, with
    /// `node-<id>.callgrid` as its only DNS name.
    pub fn issue_node(&self, node_id: NodeId) -> Result<NodeCertificate, CertsError> {
        if node_id == 0 {
            return Err(CertsError::InvalidNodeId(node_id));
        }
        let server_name = codec::node_server_name(node_id);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![server_name.clone()])?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, server_name);
        name.push(DnType::OrganizationName, "callgrid");
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(NODE_VALIDITY_DAYS);
        let certificate = params.signed_by(&key, &self.certificate, &self.key)?;
        Ok(NodeCertificate {
            node_id,
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issue a certificate for `node_id` and return it as a ready [`TlsIdentity`] (tests
    /// and in-process clusters, where no files are needed).
    pub fn issue_identity(&self, node_id: NodeId) -> Result<TlsIdentity, CertsError> {
        let issued = self.issue_node(node_id)?;
        TlsIdentity::from_pem(
            &self.certificate_pem(),
            &issued.certificate_pem,
            &issued.key_pem,
        )
    }
}

/// Path of node `node_id`'s certificate in `directory`.
pub fn node_certificate_path(directory: &Path, node_id: NodeId) -> PathBuf {
    directory.join(format!("node-{node_id}.pem"))
}

/// Path of node `node_id`'s private key in `directory`.
pub fn node_key_path(directory: &Path, node_id: NodeId) -> PathBuf {
    directory.join(format!("node-{node_id}.key"))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CertsError + '_ {
    move |source| CertsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write a new file; never overwrites. Keys get [`KEY_FILE_MODE`] from creation on, so
/// they are never readable by others even for a moment.
fn write_new_file(path: &Path, contents: &str, mode: u32) -> Result<(), CertsError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                CertsError::AlreadyExists(path.to_path_buf())
            } else {
                CertsError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    file.write_all(contents.as_bytes())
        .map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))?;
    Ok(())
}

fn read_file(path: &Path) -> Result<String, CertsError> {
    fs::read_to_string(path).map_err(io_error(path))
}

/// Create `directory` (if needed) and a new cluster CA in it (`ca.pem`, `ca.key`).
/// Refuses to overwrite an existing CA.
pub fn init_directory(directory: &Path) -> Result<CertificateAuthority, CertsError> {
    fs::create_dir_all(directory).map_err(io_error(directory))?;
    let certificate_path = directory.join(CA_CERTIFICATE_FILE);
    let key_path = directory.join(CA_KEY_FILE);
    for path in [&certificate_path, &key_path] {
        if path.exists() {
            return Err(CertsError::AlreadyExists(path.clone()));
        }
    }
    let authority = CertificateAuthority::generate()?;
    write_new_file(&key_path, &authority.key_pem(), KEY_FILE_MODE)?;
    write_new_file(&certificate_path, &authority.certificate_pem(), 0o644)?;
    Ok(authority)
}

/// Load the CA of `directory` (`ca.pem`, `ca.key`).
pub fn load_authority(directory: &Path) -> Result<CertificateAuthority, CertsError> {
    let certificate_pem = read_file(&directory.join(CA_CERTIFICATE_FILE))?;
    let key_pem = read_file(&directory.join(CA_KEY_FILE))?;
    CertificateAuthority::from_pem(&certificate_pem, &key_pem)
}

/// Issue `node-<id>.pem` / `node-<id>.key` in `directory` with the CA found there.
/// Refuses to overwrite an existing certificate or key. Returns the two paths.
pub fn issue_node_files(
    directory: &Path,
    node_id: NodeId,
) -> Result<(PathBuf, PathBuf), CertsError> {
    let authority = load_authority(directory)?;
    let issued = authority.issue_node(node_id)?;
    let certificate_path = node_certificate_path(directory, node_id);
    let key_path = node_key_path(directory, node_id);
    for path in [&certificate_path, &key_path] {
        if path.exists() {
            return Err(CertsError::AlreadyExists(path.clone()));
        }
    }
    write_new_file(&key_path, &issued.key_pem, KEY_FILE_MODE)?;
    write_new_file(&certificate_path, &issued.certificate_pem, 0o644)?;
    Ok((certificate_path, key_path))
}

fn parse_certificates(
    pem: &str,
    source: &Path,
) -> Result<Vec<CertificateDer<'static>>, CertsError> {
    let certificates = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| CertsError::Pem {
            path: source.to_path_buf(),
            reason: error.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(CertsError::Pem {
            path: source.to_path_buf(),
            reason: "no certificate found".into(),
        });
    }
    Ok(certificates)
}

fn parse_private_key(pem: &str, source: &Path) -> Result<PrivateKeyDer<'static>, CertsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|error| CertsError::Pem {
            path: source.to_path_buf(),
            reason: error.to_string(),
        })?
        .ok_or_else(|| CertsError::Pem {
            path: source.to_path_buf(),
            reason: "no private key found".into(),
        })
}

/// The node id named by a certificate: its single `node-<id>.callgrid` DNS name.
/// This does not verify the certificate; the TLS handshake does that first.
pub fn node_id_from_certificate(certificate: &CertificateDer<'_>) -> Result<NodeId, CertsError> {
    let (_rest, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref())
        .map_err(|error| CertsError::Identity(format!("unparsable certificate: {error}")))?;
    let names = parsed
        .subject_alternative_name()
        .map_err(|error| CertsError::Identity(format!("bad subject alternative names: {error}")))?
        .ok_or_else(|| CertsError::Identity("no subject alternative names".into()))?;
    let mut ids = names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => {
                codec::node_id_from_server_name(dns)
            }
            _ => None,
        });
    let first = ids
        .next()
        .ok_or_else(|| CertsError::Identity("no node-<id>.callgrid name".into()))?;
    if ids.any(|other| other != first) {
        return Err(CertsError::Identity("more than one node id".into()));
    }
    Ok(first)
}

impl TlsIdentity {
    /// Build an identity from PEM text; the node id is read from the certificate.
    pub fn from_pem(
        ca_certificate_pem: &str,
        certificate_pem: &str,
        key_pem: &str,
    ) -> Result<Self, CertsError> {
        let in_memory = Path::new("<in-memory PEM>");
        let mut ca_certificates = parse_certificates(ca_certificate_pem, in_memory)?;
        let certificate_chain = parse_certificates(certificate_pem, in_memory)?;
        let private_key = parse_private_key(key_pem, in_memory)?;
        let node_id = node_id_from_certificate(&certificate_chain[0])?;
        Ok(Self {
            node_id,
            ca_certificate: ca_certificates.swap_remove(0),
            certificate_chain,
            private_key,
        })
    }

    /// Load node `node_id`'s identity from `directory` (`ca.pem`, `node-<id>.pem`,
    /// `node-<id>.key`), checking the certificate names that node.
    pub fn load(directory: &Path, node_id: NodeId) -> Result<Self, CertsError> {
        let ca_path = directory.join(CA_CERTIFICATE_FILE);
        let certificate_path = node_certificate_path(directory, node_id);
        let key_path = node_key_path(directory, node_id);
        let mut ca_certificates = parse_certificates(&read_file(&ca_path)?, &ca_path)?;
        let certificate_chain =
            parse_certificates(&read_file(&certificate_path)?, &certificate_path)?;
        let private_key = parse_private_key(&read_file(&key_path)?, &key_path)?;
        let named = node_id_from_certificate(&certificate_chain[0])?;
        if named != node_id {
            return Err(CertsError::Identity(format!(
                "{} names node {named}, expected {node_id}",
                certificate_path.display()
            )));
        }
        Ok(Self {
            node_id,
            ca_certificate: ca_certificates.swap_remove(0),
            certificate_chain,
            private_key,
        })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, CertsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_certificate.clone())?;
        Ok(Arc::new(roots))
    }
}

/// The crypto provider of every config: ring (no aws-lc in this project).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS 1.3 server config that requires a client certificate chaining to the cluster CA.
pub fn server_config(identity: &TlsIdentity) -> Result<rustls::ServerConfig, CertsError> {
    let provider = crypto_provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        identity.roots()?,
        provider.clone(),
    )
    .build()
    .map_err(|error| CertsError::Verifier(error.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            identity.certificate_chain.clone(),
            identity.private_key.clone_key(),
        )?;
    Ok(config)
}

/// A TLS 1.3 client config that trusts only the cluster CA and presents the node's
/// certificate. The server name used on connect (`node-<id>.callgrid`) pins which node
/// the client accepts.
pub fn client_config(identity: &TlsIdentity) -> Result<rustls::ClientConfig, CertsError> {
    let config = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(identity.roots()?)
        .with_client_auth_cert(
            identity.certificate_chain.clone(),
            identity.private_key.clone_key(),
        )?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn node_certificate_names_its_node() {
        let authority = CertificateAuthority::generate().unwrap();
        let identity = authority.issue_identity(7).unwrap();
        assert_eq!(identity.node_id, 7);
        assert_eq!(
            node_id_from_certificate(&identity.certificate_chain[0]).unwrap(),
            7
        );
        assert!(matches!(
            node_id_from_certificate(&authority.certificate_der()),
            Err(CertsError::Identity(_))
        ));
        assert!(matches!(
            authority.issue_node(0),
            Err(CertsError::InvalidNodeId(0))
        ));
        server_config(&identity).unwrap();
        client_config(&identity).unwrap();
    }

    #[test]
    fn directory_round_trip_with_private_keys_0600() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("certs");
        init_directory(&path).unwrap();
        assert!(matches!(
            init_directory(&path),
            Err(CertsError::AlreadyExists(_))
        ));
        let (certificate_path, key_path) = issue_node_files(&path, 3).unwrap();
        issue_node_files(&path, 4).unwrap();
        assert!(matches!(
            issue_node_files(&path, 3),
            Err(CertsError::AlreadyExists(_))
        ));
        for key in [key_path, path.join(CA_KEY_FILE)] {
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, KEY_FILE_MODE, "{}", key.display());
        }
        assert!(certificate_path.exists());
        let identity = TlsIdentity::load(&path, 3).unwrap();
        assert_eq!(identity.node_id, 3);
        // A certificate renamed to another node's file is caught.
        fs::copy(
            node_certificate_path(&path, 3),
            node_certificate_path(&path, 5),
        )
        .unwrap();
        fs::copy(node_key_path(&path, 3), node_key_path(&path, 5)).unwrap();
        assert!(matches!(
            TlsIdentity::load(&path, 5),
            Err(CertsError::Identity(_))
        ));
        assert!(matches!(
            TlsIdentity::load(&path, 9),
            Err(CertsError::Io { .. })
        ));
    }

    #[test]
    fn reloaded_authority_issues_certificates_that_chain_to_the_original() {
        let authority = CertificateAuthority::generate().unwrap();
        let reloaded =
            CertificateAuthority::from_pem(&authority.certificate_pem(), &authority.key_pem())
                .unwrap();
        let issued = reloaded.issue_node(2).unwrap();
        let identity = TlsIdentity::from_pem(
            &authority.certificate_pem(),
            &issued.certificate_pem,
            &issued.key_pem,
        )
        .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            identity.roots().unwrap(),
            crypto_provider(),
        )
        .build()
        .unwrap();
        let now = rustls::pki_types::UnixTime::now();
        verifier
            .verify_client_cert(&identity.certificate_chain[0], &[], now)
            .unwrap();
        // And a foreign CA's certificate does not verify.
        let foreign = CertificateAuthority::generate_named("foreign").unwrap();
        let foreign_identity = foreign.issue_identity(2).unwrap();
        assert!(
            verifier
                .verify_client_cert(&foreign_identity.certificate_chain[0], &[], now)
                .is_err()
        );
    }

    #[test]
    fn garbage_pem_is_a_clear_error() {
        assert!(matches!(
            TlsIdentity::from_pem("nothing", "nothing", "nothing"),
            Err(CertsError::Pem { .. })
        ));
    }
}
