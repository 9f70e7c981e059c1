//! The software-update `metainfo` file (SEATTLE.md E.2, E.3): `path sha1 size` lines and a
//! signed-data block (A.4) that must verify with the trusted update key and not be expired.

use crate::keys::{PrivateKey, PublicKey, sha1_hex};
use crate::signeddata::{self, SignError, SignedData, SignedDataError};

/// Largest metainfo we parse. The real one lists ~100 files (~8 KB); a 404 page or other junk
/// saved in its place must not make us hold or hash megabytes.
pub const MAX_METAINFO_LEN: usize = 1024 * 1024;

/// `writemetainfo.py`: expiration = signing time + 30 days.
pub const VALIDITY_SECONDS: f64 = 2_592_000.0;

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    /// 40 lowercase hex characters.
    pub sha1: String,
    pub size: u64,
}

impl FileEntry {
    /// The entry for a file with this content.
    pub fn for_content(path: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            path: path.to_string(),
            sha1: sha1_hex(content),
            size: content.len() as u64,
        }
    }

    /// Does `content` match the listed hash and size?
    pub fn matches(&self, content: &[u8]) -> bool {
        content.len() as u64 == self.size && sha1_hex(content) == self.sha1
    }
}

/// A parsed metainfo (signature not yet checked: see [`Metainfo::verify`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Metainfo {
    pub files: Vec<FileEntry>,
    pub signer: PublicKey,
    pub timestamp: Option<f64>,
    pub expiration: Option<f64>,
    /// Whether the signature verifies with the embedded key (computed once at parse time).
    signature_ok: bool,
}

/// Why a metainfo was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    #[error("metainfo larger than {MAX_METAINFO_LEN} bytes")]
    TooLarge,
    #[error("line {line}: expected `<path> <sha1> <size>`")]
    BadLine { line: usize },
    #[error(transparent)]
    Signed(#[from] SignedDataError),
}

impl MetainfoError {
    /// Bounded label: `too_large`, `malformed`, `bad_signature`, `expired`.
    pub fn reason(&self) -> &'static str {
        match self {
            MetainfoError::TooLarge => "too_large",
            MetainfoError::BadLine { .. } => "malformed",
            MetainfoError::Signed(e) => e.reason(),
        }
    }
}

fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Metainfo {
    /// Parse a metainfo and check its signature against the embedded key.
    pub fn parse(input: &[u8]) -> Result<Metainfo, MetainfoError> {
        let (mut metainfo, sd) = Metainfo::parse_unverified(input)?;
        metainfo.signature_ok = sd.verify().is_ok();
        Ok(metainfo)
    }

    /// Parse a metainfo without the big-integer work: the signature is not checked (so
    /// [`Metainfo::verify`] and [`Metainfo::self_signed_ok`] fail until the caller checks the
    /// returned block itself, e.g. against a trusted key, and caches the verdict).
    pub fn parse_unverified(input: &[u8]) -> Result<(Metainfo, SignedData<'_>), MetainfoError> {
        if input.len() > MAX_METAINFO_LEN {
            return Err(MetainfoError::TooLarge);
        }
        let sd = signeddata::parse(input)?;
        let text = std::str::from_utf8(sd.data)
            .map_err(|_| MetainfoError::Signed(SignedDataError::Malformed("not text")))?;
        let mut files = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let trimmed = line.trim();
            // Readers skip comments, the signature line and blank lines.
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                continue;
            }
            let bad = MetainfoError::BadLine { line: i + 1 };
            let mut tokens = trimmed.split_whitespace();
            let (Some(path), Some(sha1), Some(size), None) =
                (tokens.next(), tokens.next(), tokens.next(), tokens.next())
            else {
                return Err(bad);
            };
            let size = size.parse::<u64>().map_err(|_| bad.clone())?;
            if !is_sha1_hex(sha1) {
                return Err(bad);
            }
            files.push(FileEntry {
                path: path.to_string(),
                sha1: sha1.to_ascii_lowercase(),
                size,
            });
        }
        let metainfo = Metainfo {
            files,
            signer: sd.public_key.clone(),
            timestamp: sd.timestamp,
            expiration: sd.expiration,
            signature_ok: false,
        };
        Ok((metainfo, sd))
    }

    /// What the update site is healthy for: signed by `trusted` and not expired at `now`.
    pub fn verify(&self, trusted: &PublicKey, now: f64) -> Result<(), MetainfoError> {
        if self.signer != *trusted {
            return Err(SignedDataError::UntrustedKey.into());
        }
        if !self.signature_ok {
            return Err(SignedDataError::BadSignature.into());
        }
        match self.expiration {
            Some(exp) if exp <= now => Err(SignedDataError::Expired.into()),
            _ => Ok(()),
        }
    }

    /// The signature verifies with the key embedded in the file (whoever that is).
    pub fn self_signed_ok(&self) -> bool {
        self.signature_ok
    }

    /// Seconds until expiry (negative when expired).
    pub fn seconds_until_expiry(&self, now: f64) -> Option<f64> {
        self.expiration.map(|e| e - now)
    }

    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// Write a signed metainfo like `writemetainfo.py`: file lines, then the block with
/// expiration = `timestamp` + 30 days, no sequence, no destination.
pub fn write(
    files: &[FileEntry],
    public: &PublicKey,
    private: &PrivateKey,
    timestamp: f64,
) -> Result<Vec<u8>, SignError> {
    let mut data = String::new();
    for f in files {
        if f.path.contains(char::is_whitespace) || f.path.contains('!') {
            return Err(SignError::BadField);
        }
        data.push_str(&format!("{} {} {}\n", f.path, f.sha1, f.size));
    }
    signeddata::sign(
        data.as_bytes(),
        public,
        private,
        Some(timestamp),
        Some(timestamp + VALIDITY_SECONDS),
        None,
        None,
    )
}
