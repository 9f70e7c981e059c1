//! The bytes captured from the real Seattle code (`../shared/seattle-golden/`, SEATTLE.md), read
//! the same way by every golden test.

// Each test binary uses only its own part of this module.
#![allow(dead_code)]

use base64::Engine;
use seattle_protocol::keys::PublicKey;
use serde_json::Value;

fn path(name: &str) -> String {
    format!(
        "{}/../../../shared/seattle-golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn bytes(name: &str) -> Vec<u8> {
    let path = path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn text(name: &str) -> String {
    let path = path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON-lines file, blank lines skipped.
pub fn jsonl(name: &str) -> Vec<Value> {
    text(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// A key file (`e n`).
pub fn key(name: &str) -> PublicKey {
    PublicKey::parse(&text(name)).expect("key file")
}

/// A JSON string holding base64 (absent = empty).
pub fn base64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .expect("base64")
}

/// The base64 field `field` of a record.
pub fn b64(v: &Value, field: &str) -> Vec<u8> {
    base64(&v[field])
}
