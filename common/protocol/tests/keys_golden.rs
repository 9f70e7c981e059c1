//! Key strings and advertise keys against the real `rsa.r2py` output (golden files).

mod golden;

use seattle_protocol::keys::{PublicKey, generate_keypair};
use serde_json::Value;

#[test]
fn every_state_key_gives_the_real_advertise_key() {
    let text = golden::text("clearinghouse_state_keys.jsonl");
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).unwrap();
        let key_string = entry["key_string"].as_str().unwrap();
        let key = PublicKey::parse(key_string).unwrap();
        assert_eq!(key.to_key_string(), key_string);
        assert_eq!(
            key.advertise_key(),
            entry["advertise_key"].as_str().unwrap()
        );
        assert_eq!(key.bits(), entry["n_bits"].as_u64().unwrap());
        checked += 1;
    }
    assert_eq!(checked, 20);
}

#[test]
fn affix_id_of_the_golden_node_key() {
    let key = PublicKey::parse("65537 747340318809666290119336386599").unwrap();
    assert_eq!(key.affix_id(), "592341b61c284815f3d0ff7311ed02873889bf4f");
    assert_eq!(
        key.advertise_key(),
        "{'e': 65537L, 'n': 747340318809666290119336386599L}"
    );
    // The fingerprint hashes the key string with its space, so it differs from the affix id.
    assert_ne!(key.fingerprint(), key.affix_id());
    assert_eq!(key.fingerprint().len(), 40);
}

#[test]
fn key_files_parse_with_or_without_trailing_newline() {
    for name in [
        "nodemanager_guest0.publickey",
        "nodemanager_guest1.publickey",
        "updatesite_golden.publickey",
        "updatesite_other.publickey",
        "softwareupdater_production_publickey.txt",
    ] {
        let text = golden::text(name);
        let key = PublicKey::parse(&text).unwrap();
        assert_eq!(key.to_key_string(), text.trim());
        let with_newline = format!("{text}\n");
        assert_eq!(PublicKey::parse(&with_newline).unwrap(), key);
    }
    let production =
        PublicKey::parse(&golden::text("softwareupdater_production_publickey.txt")).unwrap();
    // "4096-bit" in the docs; the modulus itself has 4095 bits.
    assert_eq!(production.bits(), 4095);
    assert!(production.e.bits() > 1000, "production e is huge");
}

#[test]
fn generated_key_string_round_trips() {
    let (public, private) = generate_keypair(512).unwrap();
    assert_eq!(PublicKey::parse(&public.to_key_string()).unwrap(), public);
    let again: seattle_protocol::keys::PrivateKey = private.to_key_string().parse().unwrap();
    assert_eq!(again, private);
}
