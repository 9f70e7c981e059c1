//! vesselinfo files written by the real Custom Installer Builder (golden files).

mod golden;

use proptest::prelude::*;
use seattle_protocol::keys::PublicKey;
use seattle_protocol::vesselinfo::{VesselInfo, VesselSpec};
use serde_json::Value;

fn state_key(state: &str, clearinghouse: &str) -> PublicKey {
    let text = String::from_utf8(golden::bytes("clearinghouse_state_keys.jsonl")).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["state"].as_str().unwrap().starts_with(state)
            && v["clearinghouse"].as_str().unwrap() == clearinghouse
        {
            return PublicKey::parse(v["key_string"].as_str().unwrap()).unwrap();
        }
    }
    panic!("no {state} key");
}

fn v2_key() -> PublicKey {
    state_key("v2 / CIB", "(all nodes)")
}

#[test]
fn clearinghouse_donation_layout() {
    let bytes = golden::bytes("vesselinfo_clearinghouse_donation");
    let vi = VesselInfo::parse(&bytes).unwrap();
    assert_eq!(vi.vessels.len(), 2);
    // The CIB call's `owner` public key was guest0's; the user is production acceptdonation.
    let donor = PublicKey::parse(
        std::str::from_utf8(&golden::bytes("nodemanager_guest0.publickey")).unwrap(),
    )
    .unwrap();
    let first = &vi.vessels[0];
    assert_eq!(first.percent, 80);
    assert_eq!(first.owner, donor);
    assert_eq!(
        first.users,
        vec![state_key("acceptdonation", "seattleclearinghouse.poly.edu")]
    );
    assert_eq!(vi.vessels[1].percent, 20);
    assert_eq!(vi.vessels[1].owner, v2_key());
    assert!(vi.vessels[1].users.is_empty());
    vi.validate_installer().unwrap();
    vi.validate_cib(&v2_key()).unwrap();
    assert_eq!(vi.reserved_vessel_name(&v2_key()).as_deref(), Some("v2"));
    assert_eq!(vi.encode().as_bytes(), &bytes[..]);
}

#[test]
fn two_vessel_layout() {
    let bytes = golden::bytes("vesselinfo_two_vessels");
    let vi = VesselInfo::parse(&bytes).unwrap();
    let percents: Vec<u32> = vi.vessels.iter().map(|v| v.percent).collect();
    assert_eq!(percents, [60, 20, 20]);
    assert_eq!(vi.vessels[1].owner, PublicKey::parse("65537 3233").unwrap());
    vi.validate_cib(&v2_key()).unwrap();
    assert_eq!(vi.reserved_vessel_name(&v2_key()).as_deref(), Some("v3"));
    assert_eq!(vi.encode().as_bytes(), &bytes[..]);
    assert!(!bytes.ends_with(b"\n"));
}

#[test]
fn rule_violations_are_reported() {
    let k = "65537 3233";
    let cases = [
        (format!("Percent 100\nOwner {k}"), None, "invalid"), // CIB: no reserved vessel
        (
            format!("Percent 80\nOwner {k}\nPercent 15\nOwner {k}"),
            Some(()),
            "invalid",
        ),
        (format!("Percent 80\nOwner {k}"), Some(()), "invalid"),
        (format!("Owner {k}"), Some(()), "malformed"),
        (
            format!("Percent 80\nOwner {k}\nOwner {k}"),
            Some(()),
            "malformed",
        ),
        ("Percent 80\nUser 1 2".to_string(), Some(()), "malformed"),
        (format!("Percent 80\nOwner {k} 5"), Some(()), "malformed"),
        (format!("Percentage 80\nOwner {k}"), Some(()), "malformed"),
    ];
    for (text, installer, reason) in cases {
        let result = VesselInfo::parse(text.as_bytes()).and_then(|vi| {
            if installer.is_some() {
                vi.validate_installer()
            } else {
                vi.validate_cib(&v2_key())
            }
        });
        assert_eq!(result.unwrap_err().reason(), reason, "{text:?}");
    }
}

fn small_key() -> impl Strategy<Value = PublicKey> {
    (1u64..1_000_000, 2u64..u64::MAX).prop_map(|(e, n)| PublicKey {
        e: e.into(),
        n: n.into(),
    })
}

proptest! {
    #[test]
    fn encode_parse_round_trip(
        vessels in proptest::collection::vec(
            (1u32..11, small_key(), proptest::collection::vec(small_key(), 0..3)),
            1..6,
        )
    ) {
        let vi = VesselInfo {
            vessels: vessels
                .into_iter()
                .map(|(tenths, owner, users)| VesselSpec { percent: tenths * 10, owner, users })
                .collect(),
        };
        let text = vi.encode();
        prop_assert!(!text.ends_with('\n'));
        prop_assert_eq!(VesselInfo::parse(text.as_bytes()).unwrap(), vi);
    }
}
