//! Property: whatever we sign verifies, and any change to the signed text breaks it.

use std::sync::OnceLock;

use proptest::prelude::*;
use seattle_protocol::keys::{Exponent, PrivateKey, PublicKey, generate_keypair_with};
use seattle_protocol::signeddata::{self, Sequence, sign};

fn keypair() -> &'static (PublicKey, PrivateKey) {
    static PAIR: OnceLock<(PublicKey, PrivateKey)> = OnceLock::new();
    PAIR.get_or_init(|| generate_keypair_with(&mut rand::rng(), 384, Exponent::Random).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sign_verify_round_trip(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        ts in proptest::option::of(0.0f64..4e9),
        exp in proptest::option::of(0.0f64..4e9),
        seq in proptest::option::of(("[a-z]{0,8}", -1000i64..1000)),
        dest in proptest::option::of("[0-9 :]{1,30}"),
        flip in any::<prop::sample::Index>(),
    ) {
        let (public, private) = keypair();
        let seq = seq.map(|(tag, number)| Sequence { tag, number });
        let out = sign(&data, public, private, ts, exp, seq.as_ref(), dest.as_deref()).unwrap();
        let sd = signeddata::parse(&out).unwrap();
        prop_assert_eq!(sd.data, &data[..]);
        prop_assert_eq!(&sd.sequence, &seq);
        prop_assert_eq!(sd.destination, dest.as_deref());
        prop_assert!(sd.verify_with(public).is_ok());
        // The timestamps survive the 12-digit text form to within its precision.
        if let (Some(a), Some(b)) = (ts, sd.timestamp) {
            prop_assert!((a - b).abs() <= a.abs() * 1e-11 + 1e-300);
        }
        // Flip one byte of the signed text (not a field separator) and it must fail.
        let signed_len = sd.signed.len();
        let i = flip.index(signed_len.max(1));
        let mut tampered = out.clone();
        if signed_len > 0 && tampered[i] != b'!' && tampered[i] != b'\n' {
            tampered[i] ^= 0x20;
            if let Ok(t) = signeddata::parse(&tampered) {
                prop_assert!(t.verify_with(public).is_err());
            }
        }
    }
}
