//! Metainfo files written by the real `writemetainfo.py` (golden files).

mod golden;

use seattle_protocol::keys::{Exponent, generate_keypair_with};
use seattle_protocol::metainfo::{self, FileEntry, Metainfo, VALIDITY_SECONDS};

// A moment when v1 and v2 are valid and `metainfo_expired` has expired.
const NOW: f64 = 1795495300.0;

#[test]
fn site_v1_and_v2_verify() {
    let trusted = golden::key("updatesite_golden.publickey");
    for name in ["metainfo_site_v1", "metainfo_site_v2"] {
        let m = Metainfo::parse(&golden::bytes(name)).unwrap();
        m.verify(&trusted, NOW).unwrap();
        assert_eq!(m.files.len(), 5, "{name}");
        let exp = m.expiration.unwrap();
        assert_eq!(exp - m.timestamp.unwrap(), VALIDITY_SECONDS);
        let sub = m.file("sub/data.txt").unwrap();
        assert!(sub.matches(&golden::bytes("metainfo_site_sub_data.txt")));
        assert!(!sub.matches(b"golden sub file?"));
        // Not valid for the production key.
        let production = golden::key("softwareupdater_production_publickey.txt");
        assert_eq!(
            m.verify(&production, NOW).unwrap_err().reason(),
            "bad_signature"
        );
    }
    let v1 = Metainfo::parse(&golden::bytes("metainfo_site_v1")).unwrap();
    let v2 = Metainfo::parse(&golden::bytes("metainfo_site_v2")).unwrap();
    assert!(v2.timestamp > v1.timestamp);
    assert_ne!(
        v1.file("nmmain.py"),
        v2.file("nmmain.py"),
        "v2 changed nmmain.py"
    );
    assert_eq!(v1.file("repy.py"), v2.file("repy.py"));
}

#[test]
fn expired_metainfo_is_expired() {
    let m = Metainfo::parse(&golden::bytes("metainfo_expired")).unwrap();
    assert!(m.self_signed_ok());
    let err = m
        .verify(&golden::key("updatesite_golden.publickey"), NOW)
        .unwrap_err();
    assert_eq!(err.reason(), "expired");
    assert!(m.seconds_until_expiry(NOW).unwrap() < 0.0);
}

#[test]
fn other_key_is_a_bad_signature_for_both_trusted_keys() {
    let m = Metainfo::parse(&golden::bytes("metainfo_signed_by_other_key")).unwrap();
    for trusted in [
        "softwareupdater_production_publickey.txt",
        "updatesite_golden.publickey",
    ] {
        assert_eq!(
            m.verify(&golden::key(trusted), NOW).unwrap_err().reason(),
            "bad_signature"
        );
    }
    // Positive control: it is a valid signature by the other key.
    m.verify(&golden::key("updatesite_other.publickey"), NOW)
        .unwrap();
}

#[test]
fn tampered_listing_fails_verification() {
    let text = String::from_utf8(golden::bytes("metainfo_site_v1")).unwrap();
    let tampered = text.replacen(" 16\n", " 17\n", 1);
    assert_ne!(tampered, text);
    let m = Metainfo::parse(tampered.as_bytes()).unwrap();
    let err = m
        .verify(&golden::key("updatesite_golden.publickey"), NOW)
        .unwrap_err();
    assert_eq!(err.reason(), "bad_signature");
}

#[test]
fn junk_is_rejected_with_reasons() {
    let cases: [(&[u8], &str); 4] = [
        (b"<html>404 Not Found</html>", "malformed"),
        (b"a b\n\n!65537 3233!1!2!None!None! 5", "malformed"),
        (
            b"a 3c2da74a79b18abc221f4885f45ec0274e5ec6b7 x\n\n!65537 3233!1!2!None!None! 5",
            "malformed",
        ),
        (&[b'x'; metainfo::MAX_METAINFO_LEN + 1], "too_large"),
    ];
    for (bytes, reason) in cases {
        assert_eq!(Metainfo::parse(bytes).unwrap_err().reason(), reason);
    }
}

#[test]
fn written_metainfo_has_the_real_layout_and_verifies() {
    let (public, private) = generate_keypair_with(&mut rand::rng(), 1024, Exponent::F4).unwrap();
    let files = vec![
        FileEntry::for_content("repy.py", b"print 1\n"),
        FileEntry::for_content("sub/data.txt", &golden::bytes("metainfo_site_sub_data.txt")),
    ];
    let bytes = metainfo::write(&files, &public, &private, 1795495173.49).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("repy.py "));
    assert!(text.contains("sub/data.txt 3c2da74a79b18abc221f4885f45ec0274e5ec6b7 16\n\n!"));
    assert!(text.contains("!1795495173.49!1798087173.49!None!None! "));
    assert!(!text.ends_with('\n'));
    let m = Metainfo::parse(&bytes).unwrap();
    assert_eq!(m.files, files);
    m.verify(&public, 1795495200.0).unwrap();
    assert_eq!(
        m.verify(&public, 1798087173.49).unwrap_err().reason(),
        "expired"
    );
}
