//! `serialize` (SEATTLE.md A.2) against the real encoder's and decoder's outputs.

mod golden;

use num_bigint::BigInt;
use proptest::prelude::*;
use seattle_protocol::serialize::{Value, decode, encode};

/// Every value the real encoder wrote: our decode gives the value the real decoder gave (same
/// repr), and our encode of it gives the real bytes.
#[test]
fn all_golden_values_decode_and_reencode_exactly() {
    let mut encoded = 0;
    let mut type_errors = 0;
    for rec in golden::jsonl("serialize_values.jsonl") {
        let repr = rec["value"].as_str().unwrap_or("");
        if rec.get("error").is_some() {
            // unicode / object: not representable in `Value` at all.
            assert!(rec["error"].as_str().unwrap_or("").starts_with("TypeError"));
            type_errors += 1;
            continue;
        }
        let bytes = golden::b64(&rec, "bytes_b64");
        let value = decode(&bytes).unwrap_or_else(|e| panic!("{repr}: {e}"));
        assert_eq!(
            value.py_repr(),
            rec["roundtrip_repr"].as_str().unwrap_or(""),
            "decode of {repr}"
        );
        assert_eq!(encode(&value), bytes, "re-encode of {repr}");
        // Lossy floats: encoding the original (unrounded) float gives the same bytes.
        if rec["type"] == "float" {
            let original: f64 = repr.parse().expect("float repr");
            assert_eq!(encode(&Value::Float(original)), bytes, "encode of {repr}");
        }
        encoded += 1;
    }
    assert_eq!((encoded, type_errors), (65, 2));
}

/// Hand-made inputs: we accept exactly what the real decoder accepted, with the same result.
#[test]
fn edge_cases_accepted_or_rejected_like_the_real_decoder() {
    let cases = golden::jsonl("deserialize_edge_cases.jsonl");
    assert!(cases.len() >= 30);
    for rec in cases {
        let bytes = golden::b64(&rec, "bytes_b64");
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        match (decode(&bytes), rec.get("result_repr")) {
            (Ok(v), Some(expected)) => {
                assert_eq!(v.py_repr(), expected.as_str().unwrap_or(""), "{shown:?}")
            }
            (Err(_), None) => {}
            (got, _) => panic!("{shown:?}: got {got:?}, real decoder: {rec}"),
        }
    }
}

#[test]
fn spec_examples() {
    let get = Value::Tuple(vec![
        Value::str("GET"),
        Value::str("mykey"),
        Value::int(100),
    ]);
    assert_eq!(encode(&get), b"T4:SGET6:Smykey4:I1000:");
    assert_eq!(encode(&Value::Dict(vec![])), b"D3:L0:L0:");
    assert_eq!(
        encode(&Value::Dict(vec![(Value::str("a"), Value::int(1))])),
        b"D7:L2:Sa0:L2:I10:"
    );
    assert!(decode(b"I5L").is_err());
    assert_eq!(decode(b"I+5"), Ok(Value::int(5)));
}

/// Python compares a float after a round trip through 12 significant digits.
fn float_after_roundtrip(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.11e}").parse().expect("formatted float")
}

fn same_after_roundtrip(original: &Value, decoded: &Value) -> bool {
    let feq = |a: f64, b: f64| {
        let e = float_after_roundtrip(a);
        (e.is_nan() && b.is_nan()) || (e == b && e.is_sign_negative() == b.is_sign_negative())
    };
    let seq = |a: &[Value], b: &[Value]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_after_roundtrip(x, y))
    };
    match (original, decoded) {
        (Value::Float(a), Value::Float(b)) => feq(*a, *b),
        (Value::Complex(ar, ai), Value::Complex(br, bi)) => feq(*ar, *br) && feq(*ai, *bi),
        (Value::List(a), Value::List(b))
        | (Value::Tuple(a), Value::Tuple(b))
        | (Value::Set(a), Value::Set(b))
        | (Value::FrozenSet(a), Value::FrozenSet(b)) => seq(a, b),
        (Value::Dict(a), Value::Dict(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
                    same_after_roundtrip(ka, kb) && same_after_roundtrip(va, vb)
                })
        }
        (a, b) => a == b,
    }
}

fn hashable() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i128>().prop_map(|i| Value::Int(BigInt::from(i))),
        any::<f64>().prop_map(Value::Float),
        (any::<f64>(), any::<f64>()).prop_map(|(r, i)| Value::Complex(r, i)),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Str),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    hashable().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            proptest::collection::vec(hashable(), 0..6).prop_map(Value::Set),
            proptest::collection::vec(hashable(), 0..6).prop_map(Value::FrozenSet),
            proptest::collection::vec((hashable(), inner), 0..6).prop_map(Value::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn encode_decode_round_trip(v in value()) {
        let bytes = encode(&v);
        let back = decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert!(same_after_roundtrip(&v, &back), "{v:?} -> {back:?}");
        // The encoding of the decoded value is stable (what a relay would forward).
        prop_assert_eq!(encode(&back), bytes);
    }
}
