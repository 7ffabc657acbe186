//! The revocation list: serial numbers of node certificates the cluster no longer accepts (a
//! decommissioned node, a leaked key). A text file, by default `revoked` in the certificate
//! directory, one serial per line as `openssl x509 -noout -serial` prints it (hex; colons,
//! a `serial=` prefix and case are ignored), `#` starts a comment. The transport checks the
//! peer's certificate against it at every handshake and every new stream, and rereads the
//! file when its modification time or size changes, so revoking needs no restart.
//!
//! A file that cannot be read or parsed keeps the previous list in force (logged): a typo
//! never silently re-admits a revoked node. A missing file is an empty list.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::Mutex;
use rustls::pki_types::CertificateDer;

use super::CertsError;

/// File name of the revocation list in a certificate directory.
pub const REVOKED_FILE: &str = "revoked";

/// Longest serial accepted (RFC 5280: at most 20 octets).
const SERIAL_HEX_MAX: usize = 40;

/// The serial number of a certificate, as upper-case hex without separators.
pub fn certificate_serial(certificate: &CertificateDer<'_>) -> Result<String, CertsError> {
    let (_rest, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref())
        .map_err(|error| CertsError::Identity(format!("unparsable certificate: {error}")))?;
    Ok(parsed
        .raw_serial()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect())
}

/// Parse a revocation list's text; the error names the first bad line.
pub fn parse_revoked(text: &str) -> Result<BTreeSet<String>, String> {
    let mut serials = BTreeSet::new();
    for (number, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let content = content.strip_prefix("serial=").unwrap_or(content);
        let serial: String = content
            .chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let serial = serial.trim_start_matches("00").to_owned();
        if serial.is_empty()
            || serial.len() > SERIAL_HEX_MAX
            || !serial.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(format!("line {}: {line:?} is not a hex serial", number + 1));
        }
        serials.insert(serial);
    }
    Ok(serials)
}

#[derive(Debug, Default)]
struct Loaded {
    /// Modification time and length of the file last read (None: absent).
    seen: Option<(SystemTime, u64)>,
    serials: BTreeSet<String>,
}

/// A revocation list backed by a file, reread when the file changes.
#[derive(Debug)]
pub struct RevocationList {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl RevocationList {
    /// The list in `path` (read now, and again whenever it changes).
    pub fn new(path: &Path) -> Self {
        let list = Self {
            path: path.to_owned(),
            loaded: Mutex::new(Loaded::default()),
        };
        list.refresh();
        list
    }

    /// The file behind the list.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when `certificate`'s serial is listed (an unparsable certificate counts as
    /// revoked: it cannot be checked).
    pub fn is_revoked(&self, certificate: &CertificateDer<'_>) -> bool {
        self.refresh();
        let Ok(serial) = certificate_serial(certificate) else {
            return true;
        };
        let serial = serial.trim_start_matches("00");
        self.loaded.lock().serials.contains(serial)
    }

    /// How many serials are in force.
    pub fn len(&self) -> usize {
        self.refresh();
        self.loaded.lock().serials.len()
    }

    /// True when no serial is in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn refresh(&self) {
        let seen = std::fs::metadata(&self.path).ok().map(|metadata| {
            let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            (modified, metadata.len())
        });
        let mut loaded = self.loaded.lock();
        if loaded.seen == seen && seen.is_some() {
            return;
        }
        let Some(stamp) = seen else {
            if !loaded.serials.is_empty() {
                tracing::warn!(path = %self.path.display(), "revocation list removed; keeping the previous list");
            }
            loaded.seen = None;
            return;
        };
        let parsed = std::fs::read_to_string(&self.path)
            .map_err(|error| error.to_string())
            .and_then(|text| parse_revoked(&text));
        match parsed {
            Ok(serials) => {
                if serials != loaded.serials {
                    tracing::info!(path = %self.path.display(), revoked = serials.len(), "revocation list loaded");
                }
                loaded.serials = serials;
            }
            Err(reason) => {
                tracing::error!(path = %self.path.display(), %reason, "revocation list unreadable; keeping the previous list");
            }
        }
        loaded.seen = Some(stamp);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::certs::CertificateAuthority;

    #[test]
    fn serials_parse_in_openssl_forms_and_garbage_names_the_line() {
        // Leading zero bytes are not part of the number: "00:0a:1b" is "0A1B".
        let serials =
            parse_revoked("# decommissioned\nserial=000A1B\n  0a:1b:2c  # leaked\n\n").unwrap();
        assert_eq!(
            serials,
            BTreeSet::from(["0A1B".to_owned(), "0A1B2C".to_owned()])
        );
        let error = parse_revoked("A1\nnot-hex\n").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        assert!(parse_revoked(&"A".repeat(41)).is_err());
    }

    #[test]
    fn a_listed_certificate_is_revoked_and_the_file_is_reread() {
        let authority = CertificateAuthority::generate().unwrap();
        let kept = authority.issue_identity(1).unwrap();
        let revoked = authority.issue_identity(2).unwrap();
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(REVOKED_FILE);
        let list = RevocationList::new(&path);
        let leaf = |identity: &crate::certs::TlsIdentity| identity.certificate_chain[0].clone();
        assert!(
            !list.is_revoked(&leaf(&revoked)),
            "no file: nothing revoked"
        );

        let serial = certificate_serial(&leaf(&revoked)).unwrap();
        std::fs::write(&path, format!("# node 2\n{serial}\n")).unwrap();
        assert!(list.is_revoked(&leaf(&revoked)));
        assert!(!list.is_revoked(&leaf(&kept)));

        // A broken edit keeps the list in force.
        std::fs::write(&path, format!("{serial}\nzz\n")).unwrap();
        assert!(list.is_revoked(&leaf(&revoked)));
        // Emptied on purpose: re-admitted.
        std::fs::write(&path, "# nothing revoked\n").unwrap();
        assert!(!list.is_revoked(&leaf(&revoked)));
        assert!(list.is_empty());
    }
}
