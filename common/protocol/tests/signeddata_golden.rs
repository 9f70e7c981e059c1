//! Signed data against blocks made by the real `signeddata_signdata` (golden files).

mod golden;

use seattle_protocol::keys::{Exponent, generate_keypair_with};
use seattle_protocol::signeddata::{self, Sequence, SignedDataError, py2_float_str, sign};

#[test]
fn real_signed_request_verifies() {
    let bytes = golden::bytes("nodemanager_signed_request_ListFilesInVessel_payload.txt");
    let sd = signeddata::parse(&bytes).unwrap();
    assert_eq!(sd.data, b"ListFilesInVessel|v3");
    assert_eq!(sd.public_key, golden::key("nodemanager_guest0.publickey"));
    assert_eq!(sd.timestamp_text, "1795495090.79");
    assert_eq!(sd.timestamp, Some(1795495090.79));
    assert_eq!(sd.expiration, Some(1795498685.79));
    assert_eq!(sd.sequence, None);
    assert_eq!(sd.destination, Some("65537 747340318809666290119336386599"));
    sd.verify().unwrap();
    sd.verify_with(&golden::key("nodemanager_guest0.publickey"))
        .unwrap();
    assert_eq!(
        sd.verify_with(&golden::key("nodemanager_guest1.publickey")),
        Err(SignedDataError::UntrustedKey)
    );
    sd.check_destination("65537 747340318809666290119336386599")
        .unwrap();
    assert_eq!(
        sd.check_destination("65537 3233").unwrap_err().reason(),
        "wrong_destination"
    );
    sd.check_expiry(1795495100.0).unwrap();
    assert_eq!(
        sd.check_expiry(1795498685.79).unwrap_err().reason(),
        "expired"
    );
}

#[test]
fn altering_any_signed_byte_breaks_the_real_signature() {
    let bytes = golden::bytes("nodemanager_signed_request_ListFilesInVessel_payload.txt");
    // Body changed after signing: v3 -> v4 (golden conn 31 is exactly this).
    let altered = String::from_utf8(bytes.clone())
        .unwrap()
        .replacen("|v3\n", "|v4\n", 1);
    let sd = signeddata::parse(altered.as_bytes()).unwrap();
    assert_eq!(sd.verify(), Err(SignedDataError::BadSignature));
    // Timestamp changed.
    let altered =
        String::from_utf8(bytes)
            .unwrap()
            .replacen("!1795495090.79!", "!1795495090.8!", 1);
    let sd = signeddata::parse(altered.as_bytes()).unwrap();
    assert_eq!(sd.verify().unwrap_err().reason(), "bad_signature");
}

#[test]
fn extra_signed_cases_parse_and_verify() {
    let text = String::from_utf8(golden::bytes("nodemanager_extra_signed_cases.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let request = v["request"].as_str().unwrap();
        let sd = signeddata::parse(request.as_bytes()).unwrap();
        sd.verify().unwrap();
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn sign_then_verify_with_a_small_multi_chunk_key() {
    // 100 bits, like nminit's node key: 11-byte chunks, so the digest takes two.
    let mut rng = rand::rng();
    let (public, private) = generate_keypair_with(&mut rng, 100, Exponent::F4).unwrap();
    let seq = Sequence {
        tag: "tag".into(),
        number: 7,
    };
    let out = sign(
        b"GetVessels|x!y",
        &public,
        &private,
        Some(1795495090.79),
        None,
        Some(&seq),
        Some("65537 3233"),
    )
    .unwrap();
    let sd = signeddata::parse(&out).unwrap();
    assert_eq!(sd.signature.len(), 2);
    assert_eq!(sd.data, b"GetVessels|x!y");
    assert_eq!(sd.sequence, Some(seq));
    sd.verify_with(&public).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("!1795495090.79!None!tag:7!65537 3233! "));
}

#[test]
fn resigning_the_golden_layout_reproduces_it_up_to_the_signature() {
    // Our block layout must equal the real one byte for byte; only the signature differs
    // because we do not hold guest0's private key.
    let bytes = golden::bytes("nodemanager_signed_request_ListFilesInVessel_payload.txt");
    let sd = signeddata::parse(&bytes).unwrap();
    let mut rng = rand::rng();
    let (_, private) = generate_keypair_with(&mut rng, 512, Exponent::F4).unwrap();
    let mut fake_public = sd.public_key.clone();
    fake_public.n = private.modulus();
    let ours = sign(
        sd.data,
        &fake_public,
        &private,
        sd.timestamp,
        sd.expiration,
        None,
        sd.destination,
    )
    .unwrap();
    let ours_sd = signeddata::parse(&ours).unwrap();
    let expected_tail = format!(
        "!{}!{}!None!{}",
        py2_float_str(1795495090.79),
        py2_float_str(1795498685.79),
        sd.destination.unwrap()
    );
    assert!(
        std::str::from_utf8(ours_sd.signed)
            .unwrap()
            .ends_with(&expected_tail)
    );
    assert!(
        std::str::from_utf8(sd.signed)
            .unwrap()
            .ends_with(&expected_tail)
    );
}
