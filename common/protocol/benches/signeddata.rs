//! Signature verification cost with 4096-bit keys whose public exponent is huge, like the
//! software-update key every node trusts (SEATTLE.md A.3, E.1).
//!
//! * `modpow_production_key`: one `c^e mod n` with the real update key's e and n: exactly
//!   what verifying a production metainfo costs (its digest fits one chunk).
//! * `metainfo_verify_4096_e1024` / `_e4095`: a whole parse + verify of a 100-file metainfo
//!   signed by a freshly generated 4096-bit key pair with a random 1024-bit e (the shape of
//!   the real keys) or a full-size e (worst case). The time is all in `modpow`.
//! * `generate_keypair_1024`: key generation as the simulator uses it.

use criterion::{Criterion, criterion_group, criterion_main};
use num_bigint::BigUint;
use rand::RngCore;
use seattle_protocol::keys::{Exponent, PublicKey, generate_keypair_with};
use seattle_protocol::metainfo::{self, FileEntry, Metainfo};
use std::hint::black_box;

fn golden(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/seattle-golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bench(c: &mut Criterion) {
    let production = PublicKey::parse(&golden("softwareupdater_production_publickey.txt")).unwrap();
    let mut rng = rand::rng();
    let mut buf = vec![0u8; (production.bits() / 8) as usize];
    rng.fill_bytes(&mut buf);
    let sig = BigUint::from_bytes_be(&buf) % &production.n;

    let mut group = c.benchmark_group("signeddata");
    group.sample_size(20);
    group.bench_function("modpow_production_key", |b| {
        b.iter(|| black_box(&sig).modpow(&production.e, &production.n))
    });

    let files: Vec<FileEntry> = (0..100)
        .map(|i| FileEntry::for_content(&format!("file{i}.py"), format!("{i}").as_bytes()))
        .collect();
    let now = 1795495200.0;
    // The real keys' shape (e of n/4 bits), then the worst case of a full-size e.
    for (name, exponent) in [
        ("metainfo_verify_4096_e1024", Exponent::Random),
        ("metainfo_verify_4096_e4095", Exponent::RandomBits(4095)),
    ] {
        let (public, private) = generate_keypair_with(&mut rng, 4096, exponent).unwrap();
        let signed = metainfo::write(&files, &public, &private, 1795495173.49).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let m = Metainfo::parse(black_box(&signed)).unwrap();
                m.verify(&public, now).unwrap()
            })
        });
    }
    // What the simulator pays to make a node-sized key pair.
    group.sample_size(10);
    group.bench_function("generate_keypair_1024", |b| {
        b.iter(|| generate_keypair_with(&mut rng, 1024, Exponent::F4).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
