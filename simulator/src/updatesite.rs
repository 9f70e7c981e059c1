//! The software update site: a signed `metainfo` (SEATTLE.md E.2) and the files it lists.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use seattle_protocol::metainfo::{self, FileEntry};

use crate::keys::KeyPair;
use crate::scenario::MetainfoState;

/// Size of the `oversized` metainfo.
const OVERSIZED_BYTES: usize = 64 << 20;

/// The files the simulated site publishes (path, content).
pub fn site_files() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "nmmain.py".into(),
            b"# simulated node manager\nversion = '0.2-alpha-20140714-1434'\n".to_vec(),
        ),
        (
            "softwareupdater.py".into(),
            b"# simulated software updater\n".to_vec(),
        ),
        ("repy.py".into(), b"# simulated repy\n".to_vec()),
        ("sub/data.txt".into(), b"simulated data\n".to_vec()),
    ]
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes a metainfo like `writemetainfo.py` (the protocol crate's writer). Paths with
/// whitespace or `!` cannot be listed; such a list gets an empty (malformed) metainfo.
pub fn write_metainfo(files: &[(String, Vec<u8>)], key: &KeyPair, timestamp: f64) -> Vec<u8> {
    let entries: Vec<FileEntry> = files
        .iter()
        .map(|(path, data)| FileEntry::for_content(path, data))
        .collect();
    metainfo::write(&entries, &key.public, &key.private, timestamp).unwrap_or_default()
}

/// Re-sign this long before the signature would expire (the updater rejects an expired one).
const RESIGN_MARGIN_SECONDS: f64 = 86400.0;

pub struct UpdateSite {
    pub key: KeyPair,
    pub other_key: KeyPair,
    pub files: Vec<(String, Vec<u8>)>,
    pub state: Mutex<MetainfoState>,
    /// The metainfo signed for the last state asked for. Like the real site (signed once by
    /// `writemetainfo.py`), repeated requests get the same bytes, so the exporter's verdict
    /// cache hits and an install can be up to date; a new state, or the signature nearing its
    /// expiry, signs anew.
    signed: Mutex<Option<Signed>>,
}

struct Signed {
    state: MetainfoState,
    /// When to sign again (never for `Expired`, which is meant to stay expired).
    resign_at: f64,
    bytes: Vec<u8>,
}

impl UpdateSite {
    pub fn new(
        key: KeyPair,
        other_key: KeyPair,
        files: Vec<(String, Vec<u8>)>,
        state: MetainfoState,
    ) -> UpdateSite {
        UpdateSite {
            key,
            other_key,
            files,
            state: Mutex::new(state),
            signed: Mutex::new(None),
        }
    }

    pub fn state(&self) -> MetainfoState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The metainfo for `state`, signed once per state (see the `signed` field).
    pub fn metainfo(&self, state: MetainfoState) -> Vec<u8> {
        let now = now_unix();
        let mut signed = self.signed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = signed.as_ref()
            && s.state == state
            && now < s.resign_at
        {
            return s.bytes.clone();
        }
        let (bytes, resign_at) = match state {
            MetainfoState::Expired => (
                write_metainfo(&self.files, &self.key, now - 31.0 * 86400.0),
                f64::INFINITY,
            ),
            MetainfoState::OtherKey => (
                write_metainfo(&self.files, &self.other_key, now),
                now + metainfo::VALIDITY_SECONDS - RESIGN_MARGIN_SECONDS,
            ),
            _ => (
                write_metainfo(&self.files, &self.key, now),
                now + metainfo::VALIDITY_SECONDS - RESIGN_MARGIN_SECONDS,
            ),
        };
        *signed = Some(Signed {
            state,
            resign_at,
            bytes: bytes.clone(),
        });
        bytes
    }

    /// Serves `/updatesite/<path>` (also `//metainfo`, which urllib-based updaters request).
    pub fn serve(&self, path: &str) -> Response {
        let name = path.trim_start_matches('/');
        if name == "metainfo" {
            let state = self.state();
            let body = match state {
                MetainfoState::Missing => return not_found(),
                MetainfoState::Truncated => {
                    let m = self.metainfo(state);
                    m[..m.len() / 2].to_vec()
                }
                MetainfoState::Oversized => {
                    let mut m = vec![b'#'; OVERSIZED_BYTES];
                    for i in (0..m.len()).step_by(100) {
                        m[i] = b'\n';
                    }
                    m.extend_from_slice(b"\n");
                    m.extend_from_slice(&self.metainfo(MetainfoState::Valid));
                    m
                }
                MetainfoState::SlowDrip => return drip(self.metainfo(state)),
                _ => self.metainfo(state),
            };
            return ok(body);
        }
        match self.files.iter().find(|(p, _)| p == name) {
            Some((_, data)) => ok(data.clone()),
            None => not_found(),
        }
    }
}

fn ok(body: Vec<u8>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn not_found() -> Response {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/html")
        .body(Body::from(
            "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n",
        ))
        .unwrap_or_default()
}

/// One byte per second.
fn drip(body: Vec<u8>) -> Response {
    let stream = futures::stream::unfold((body, 0usize), |(body, i)| async move {
        if i >= body.len() {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let chunk = Bytes::copy_from_slice(&body[i..i + 1]);
        Some((Ok::<_, std::io::Error>(chunk), (body, i + 1)))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metainfo_layout_and_signature() {
        let key = KeyPair::generate(512, 3);
        let m = String::from_utf8(write_metainfo(&site_files(), &key, 1795495173.49)).unwrap();
        assert!(m.contains("\n\n!"));
        assert!(!m.ends_with('\n'));
        let parsed = metainfo::Metainfo::parse(m.as_bytes()).unwrap();
        assert!(parsed.verify(&key.public, 1795495174.0).is_ok());
        assert!(parsed.verify(&key.public, 1798087174.0).is_err());
        assert!(m.contains("!1795495173.49!1798087173.49!None!None! "));
    }

    #[test]
    fn metainfo_is_signed_once_per_state() {
        let site = UpdateSite::new(
            KeyPair::generate(512, 3),
            KeyPair::generate(512, 4),
            site_files(),
            MetainfoState::Valid,
        );
        let valid = site.metainfo(MetainfoState::Valid);
        assert_eq!(site.metainfo(MetainfoState::Valid), valid);
        let expired = site.metainfo(MetainfoState::Expired);
        assert_ne!(expired, valid);
        assert_eq!(site.metainfo(MetainfoState::Expired), expired);
    }
}
