//! Measures what the verdict cache saves: the uncached analysis of a metainfo claiming the
//! production update key (the full big-integer verification runs, then fails, since nobody here
//! holds the private key) against a cache hit. Run in release:
//!
//! `cargo run --release -p seattle-updatesite-exporter --example verify_cost`

use std::time::{Duration, Instant};

use seattle_protocol::keys::PublicKey;
use seattle_updatesite_exporter::config::PRODUCTION_UPDATE_KEY;
use seattle_updatesite_exporter::metainfo_check::{VerdictCache, analyze, key_digest};

fn per_op(n: u32, f: impl Fn()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

fn main() {
    let key = PublicKey::parse(PRODUCTION_UPDATE_KEY.trim()).expect("production key");
    // A metainfo the size of the real one (~100 files) with a signature block naming the key.
    let mut body = String::new();
    for i in 0..100 {
        body.push_str(&format!(
            "file{i}.py {} {}\n",
            "0123456789abcdef0123456789abcdef01234567",
            1000 + i
        ));
    }
    let fake_signature = &key.n - 2u32;
    body.push_str(&format!(
        "\n!{}!1795495173.49!1798087173.49!None!None! {fake_signature}",
        key.to_key_string()
    ));
    let body = bytes::Bytes::from(body);
    assert!(!analyze(&body, &key).expect("parses").signature_valid);

    let uncached = per_op(20, || {
        let _ = analyze(&body, &key);
    });
    let cache = VerdictCache::default();
    let digest = key_digest(&key);
    let _ = cache.analyze_blocking(&body, &key, digest);
    let cached = per_op(20_000, || {
        let _ = cache.analyze_blocking(&body, &key, digest);
    });
    println!(
        "metainfo {} bytes, key {} bits: uncached analysis {:.3} ms, cached {:.4} ms",
        body.len(),
        key.bits(),
        uncached.as_secs_f64() * 1e3,
        cached.as_secs_f64() * 1e3
    );
}
