//! Parsing a fetched `metainfo` and verifying it against the trusted key, with the verdict cached.
//!
//! Parsing is `seattle_protocol::metainfo::Metainfo::parse_unverified`; verifying the signature
//! costs tens of milliseconds with the production key's huge exponent. A site serves the same
//! bytes for days, so the whole analysis (files, times, verdict) is cached by the SHA-1 of the
//! complete body (signed text *and* signature: the verdict depends on both) together with the
//! trusted key's fingerprint. A hit costs one SHA-1 over ~8 KB.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use seattle_protocol::keys::PublicKey;
use seattle_protocol::metainfo::{FileEntry, MAX_METAINFO_LEN, Metainfo, MetainfoError};
use seattle_protocol::signeddata;
use sha1::{Digest, Sha1};

/// Verdicts kept; a site has one metainfo at a time, a few sites and keys are monitored.
pub const CACHE_CAPACITY: usize = 32;

/// What a metainfo says, and whether the trusted key signed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub files: Vec<FileEntry>,
    pub timestamp: Option<f64>,
    pub expiration: Option<f64>,
    /// The embedded key is the trusted key and the signature verifies with it.
    pub signature_valid: bool,
    /// The embedded key is not the trusted one (no big-integer work was done).
    pub untrusted_key: bool,
}

impl Analysis {
    /// Expired when an expiration is set and not later than `now` (the updater's rule).
    pub fn expired(&self, now: f64) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }
}

/// Why a body is not a metainfo (reason `bad_metainfo`, or `too_large`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotMetainfo {
    #[error("larger than {MAX_METAINFO_LEN} bytes")]
    TooLarge,
    #[error("signature block: {0}")]
    Block(String),
    #[error("line {0}: expected `<path> <sha1> <size>`")]
    BadLine(usize),
}

/// Parses without verifying (SEATTLE.md E.2): file lines, then the signed-data block.
pub fn parse_unverified(
    body: &[u8],
) -> Result<(Analysis, signeddata::SignedData<'_>), NotMetainfo> {
    let (m, sd) = Metainfo::parse_unverified(body).map_err(|e| match e {
        MetainfoError::TooLarge => NotMetainfo::TooLarge,
        MetainfoError::BadLine { line } => NotMetainfo::BadLine(line),
        MetainfoError::Signed(e) => NotMetainfo::Block(e.to_string()),
    })?;
    Ok((
        Analysis {
            files: m.files,
            timestamp: m.timestamp,
            expiration: m.expiration,
            signature_valid: false,
            untrusted_key: false,
        },
        sd,
    ))
}

/// Parses and verifies against `trusted` (the expensive part when the key matches).
pub fn analyze(body: &[u8], trusted: &PublicKey) -> Result<Analysis, NotMetainfo> {
    let (mut a, sd) = parse_unverified(body)?;
    if sd.public_key != *trusted {
        a.untrusted_key = true;
    } else {
        a.signature_valid = signeddata::verify_signature(sd.signed, &sd.signature, trusted);
    }
    Ok(a)
}

type CacheKey = [u8; 40];

/// Bounded cache of analyses by (SHA-1 of body, SHA-1 of trusted key string).
#[derive(Default)]
pub struct VerdictCache {
    entries: Mutex<VecDeque<(CacheKey, Arc<Analysis>)>>,
    /// One verification at a time: probes that miss together wait for the first one's verdict
    /// instead of all doing the big-integer work, and a site serving a new body on every request
    /// costs at most one core.
    verifying: tokio::sync::Mutex<()>,
}

/// SHA-1 of a key's string form, computed once per module.
pub fn key_digest(key: &PublicKey) -> [u8; 20] {
    Sha1::digest(key.to_key_string().as_bytes()).into()
}

impl VerdictCache {
    /// The analysis of `body` under `trusted`; computed (on a blocking thread, since a 4096-bit
    /// verification with a huge exponent takes tens of ms) only on a miss. Parse failures are not
    /// cached: they are cheap and a junk body should not evict a good verdict.
    pub async fn analyze(
        &self,
        body: bytes::Bytes,
        trusted: Arc<PublicKey>,
        trusted_digest: [u8; 20],
    ) -> Result<(Arc<Analysis>, bool), NotMetainfo> {
        if body.len() > MAX_METAINFO_LEN {
            return Err(NotMetainfo::TooLarge);
        }
        let mut key = [0u8; 40];
        key[..20].copy_from_slice(&Sha1::digest(&body));
        key[20..].copy_from_slice(&trusted_digest);
        if let Some(hit) = self.get(&key) {
            return Ok((hit, true));
        }
        let _one_at_a_time = self.verifying.lock().await;
        if let Some(hit) = self.get(&key) {
            return Ok((hit, true));
        }
        let a = tokio::task::spawn_blocking(move || analyze(&body, &trusted))
            .await
            .map_err(|_| NotMetainfo::Block("verification task failed".into()))??;
        let a = Arc::new(a);
        self.put(key, a.clone());
        Ok((a, false))
    }

    /// The same for a caller already on a blocking thread (host collectors); must not be called
    /// from async code.
    pub fn analyze_blocking(
        &self,
        body: &[u8],
        trusted: &PublicKey,
        trusted_digest: [u8; 20],
    ) -> Result<Arc<Analysis>, NotMetainfo> {
        let mut key = [0u8; 40];
        key[..20].copy_from_slice(&Sha1::digest(body));
        key[20..].copy_from_slice(&trusted_digest);
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let _one_at_a_time = self.verifying.blocking_lock();
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let a = Arc::new(analyze(body, trusted)?);
        self.put(key, a.clone());
        Ok(a)
    }

    fn get(&self, key: &CacheKey) -> Option<Arc<Analysis>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, a)| a.clone())
    }

    fn put(&self, key: CacheKey, a: Arc<Analysis>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.iter().any(|(k, _)| *k == key) {
            return;
        }
        if entries.len() >= CACHE_CAPACITY {
            entries.pop_front();
        }
        entries.push_back((key, a));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn golden(name: &str) -> Vec<u8> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/seattle-golden")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn golden_key() -> PublicKey {
        PublicKey::parse(
            String::from_utf8(golden("updatesite_golden.publickey"))
                .unwrap()
                .trim(),
        )
        .unwrap()
    }

    #[test]
    fn golden_metainfo_verifies_and_lists_files() {
        let a = analyze(&golden("metainfo_site_v1"), &golden_key()).unwrap();
        assert!(a.signature_valid);
        assert!(!a.untrusted_key);
        assert_eq!(a.files.len(), 5);
        assert!(a.files.iter().any(|f| f.path == "sub/data.txt"));
        let (ts, exp) = (a.timestamp.unwrap(), a.expiration.unwrap());
        assert!((exp - ts - 2_592_000.0).abs() < 0.02, "{ts} {exp}");
    }

    #[test]
    fn other_key_and_tampering_are_invalid() {
        let key = golden_key();
        let a = analyze(&golden("metainfo_signed_by_other_key"), &key).unwrap();
        assert!(!a.signature_valid);
        assert!(a.untrusted_key);
        // One changed byte in a listed hash breaks the signature.
        let mut body = golden("metainfo_site_v1");
        let i = body.iter().position(|&b| b == b' ').unwrap() + 1;
        body[i] = if body[i] == b'0' { b'1' } else { b'0' };
        let a = analyze(&body, &key).unwrap();
        assert!(!a.signature_valid);
        assert!(!a.untrusted_key);
    }

    #[test]
    fn expired_golden_is_expired_now() {
        let a = analyze(&golden("metainfo_expired"), &golden_key()).unwrap();
        assert!(a.signature_valid);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(a.expired(now));
    }

    #[test]
    fn junk_is_not_metainfo() {
        let html = b"<html><head><title>404 Not Found</title></head><body></body></html>\n";
        assert!(matches!(
            analyze(html, &golden_key()),
            Err(NotMetainfo::Block(_))
        ));
        let body = golden("metainfo_site_v1");
        assert!(analyze(&body[..body.len() / 2], &golden_key()).is_err());
        let big = vec![b'#'; MAX_METAINFO_LEN + 1];
        assert_eq!(analyze(&big, &golden_key()), Err(NotMetainfo::TooLarge));
    }

    #[tokio::test]
    async fn cache_hits_and_is_bounded() {
        let cache = VerdictCache::default();
        let key = Arc::new(golden_key());
        let d = key_digest(&key);
        let body = bytes::Bytes::from(golden("metainfo_site_v1"));
        let (a1, hit1) = cache.analyze(body.clone(), key.clone(), d).await.unwrap();
        let (a2, hit2) = cache.analyze(body.clone(), key.clone(), d).await.unwrap();
        assert!(!hit1 && hit2);
        assert_eq!(a1, a2);
        // Another key gives another entry and another verdict.
        let other = Arc::new(PublicKey::parse("3 55").unwrap());
        let (a3, hit3) = cache
            .analyze(body.clone(), other.clone(), key_digest(&other))
            .await
            .unwrap();
        assert!(!hit3 && !a3.signature_valid);
        // Bounded.
        for i in 0..CACHE_CAPACITY + 5 {
            let mut b = golden("metainfo_site_v1");
            b.splice(0..0, format!("# {i}\n").bytes());
            let _ = cache.analyze(b.into(), key.clone(), d).await.unwrap();
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
    }
}
