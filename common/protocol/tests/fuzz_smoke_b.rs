//! Fuzz smoke under `cargo test`: arbitrary and mutated-golden bytes into every decoder of
//! half B. The property is "returns, never panics"; a panic fails the test.

mod golden;

use proptest::prelude::*;
use seattle_protocol::keys::{PrivateKey, PublicKey};
use seattle_protocol::metainfo::Metainfo;
use seattle_protocol::nodemanager::codec;
use seattle_protocol::nodemanager::{GetVessels, Resources};
use seattle_protocol::signeddata;
use seattle_protocol::vesselinfo::VesselInfo;

/// Every decoder; results are used so nothing is optimised away.
fn decode_all(bytes: &[u8]) -> usize {
    let mut ok = 0;
    if let Ok(reply) = codec::split_reply(bytes) {
        ok += 1;
        ok += usize::from(GetVessels::parse(reply.text).is_ok());
        ok += usize::from(Resources::parse(reply.text).is_ok());
    }
    ok += usize::from(GetVessels::parse(bytes).is_ok());
    ok += usize::from(Resources::parse(bytes).is_ok());
    ok += usize::from(matches!(
        codec::parse_request(bytes),
        codec::Request::Public(_)
    ));
    if let Ok(sd) = signeddata::parse(bytes) {
        ok += usize::from(sd.verify().is_ok());
        ok += usize::from(sd.check_expiry(0.0).is_ok());
        ok += usize::from(sd.check_destination("1 2").is_ok());
    }
    if let Ok(m) = Metainfo::parse(bytes) {
        ok += usize::from(m.verify(&m.signer.clone(), 0.0).is_ok());
    }
    if let Ok(vi) = VesselInfo::parse(bytes) {
        ok += usize::from(vi.validate_installer().is_ok());
        ok += vi.encode().len();
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        ok += usize::from(PublicKey::parse(text).is_ok());
        ok += usize::from(PrivateKey::parse(text).is_ok());
    }
    ok
}

const SEEDS: [&str; 9] = [
    "nodemanager_GetVessels_payload.txt",
    "nodemanager_GetVesselResources_v1_payload.txt",
    "nodemanager_GetOffcutResources_payload.txt",
    "nodemanager_signed_request_ListFilesInVessel_payload.txt",
    "metainfo_site_v1",
    "metainfo_expired",
    "vesselinfo_two_vessels",
    "nodemanager_guest0.publickey",
    "nodemanager_ReadVesselLog_v3_payload.txt",
];

#[test]
fn golden_seeds_decode() {
    // Sanity: the seeds themselves decode somewhere, so mutations start from valid input.
    for name in SEEDS {
        assert!(decode_all(&golden::bytes(name)) > 0, "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decode_all(&bytes);
    }

    #[test]
    fn structured_text_never_panics(
        lines in proptest::collection::vec(
            prop_oneof![
                "(Name|Status|Advertise|OwnerKey|OwnerInfo|UserKey|Version|Nodename|Nodekey): ?[ -~]{0,12}",
                "(resource|call) [a-z]{0,8} [-0-9.e]{0,8}",
                "(Percent|Owner|User) [0-9 ]{0,12}",
                "[!|: 0-9a-zA-Z]{0,20}",
            ],
            0..20,
        ),
        status in "(Success|Error|Warning|)",
    ) {
        let text = format!("{}\n{status}", lines.join("\n"));
        decode_all(text.as_bytes());
    }

    #[test]
    fn mutated_golden_never_panics(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = golden::bytes(SEEDS[seed]);
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        decode_all(&bytes);
    }
}
