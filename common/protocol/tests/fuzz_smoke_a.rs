//! Fuzz smoke for framing, serialize and advertise decoders (SEATTLE.md A.1, A.2, C): arbitrary
//! and mutated-valid inputs never panic, and decoded results never hold more than the input.
//! The long runs live in `fuzz/` (cargo-fuzz); this runs in a few seconds under `cargo test`.

use proptest::prelude::*;
use seattle_protocol::advertise::codec;
use seattle_protocol::advertise::node_address::{NodeAddress, affix_reachability};
use seattle_protocol::framing::{self, Frame};
use seattle_protocol::serialize::{self, Value};

/// Valid encodings to mutate, so the decoders get past their first byte.
const SEEDS: &[&[u8]] = &[
    b"T3:SOK37:L14:S10.0.0.1:122414:S10.0.0.2:28880:0:",
    b"T4:SPUT11:Sgolden-key14:S10.0.0.1:12244:I6000:",
    b"T4:SGET15:Sudp-golden-key4:I1009:I748871680:",
    b"T3:SOK7:L2:Sv0:6:I123450:",
    b"D12:L7:Snested0:L37:D7:L2:Sx0:L21:L2:I111:T2:I22:I30:0:0:0:",
    b"L1:N2:BT4:F1.52:Sx0:",
    b"D17:L11:T2:St2:I10:0:L1:N0:",
    b"C-1.5-0.5j",
    b"48\nT3:SOK37:L14:S10.0.0.1:122414:S10.0.0.2:28880:0:",
    b"0000000000000000028\nT4:SGET11:Sgolden-key3:I500:",
];

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(SEEDS),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(seed, edits, cut)| {
            let mut bytes = seed.to_vec();
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            bytes
        })
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..256), mutated()]
}

/// (nodes, string bytes) in a value.
fn size(v: &Value) -> (usize, usize) {
    let sum = |items: &mut dyn Iterator<Item = &Value>| {
        items
            .map(size)
            .fold((1, 0), |(n, b), (n2, b2)| (n + n2, b + b2))
    };
    match v {
        Value::Str(s) => (1, s.len()),
        Value::List(i) | Value::Tuple(i) | Value::Set(i) | Value::FrozenSet(i) => {
            sum(&mut i.iter())
        }
        Value::Dict(pairs) => sum(&mut pairs.iter().flat_map(|(k, v)| [k, v])),
        _ => (1, 0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn serialize_decode_is_total_and_bounded(data in input()) {
        if let Ok(v) = serialize::decode(&data) {
            let (nodes, bytes) = size(&v);
            prop_assert!(nodes <= data.len() && bytes <= data.len());
            let again = serialize::decode(&serialize::encode(&v));
            prop_assert!(again.is_ok(), "{v:?}");
        }
    }

    #[test]
    fn framing_decode_is_total_and_bounded(data in input(), cap in 0usize..300) {
        match framing::decode_frame(&data, cap) {
            Ok(Some((Frame::Payload(p), used))) => {
                prop_assert!(p.len() <= cap && used <= data.len());
            }
            Ok(Some((Frame::Closed, used))) => prop_assert!(used <= data.len()),
            Ok(None) | Err(_) => {}
        }
    }

    #[test]
    fn async_read_frame_is_total_and_bounded(data in input()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut reader: &[u8] = &data;
        if let Ok(p) = rt.block_on(framing::read_frame(&mut reader, 1 << 20)) {
            prop_assert!(p.len() < data.len());
        }
    }

    #[test]
    fn advertise_decoders_are_total_and_bounded(data in input(), id in any::<u32>()) {
        let _ = codec::decode_put_reply(&data);
        let _ = codec::decode_udp_put_reply(&data, u64::from(id));
        for values in [
            codec::decode_get_reply(&data),
            codec::decode_udp_get_reply(&data, u64::from(id)),
        ]
        .into_iter()
        .flatten()
        {
            prop_assert!(values.iter().map(Vec::len).sum::<usize>() <= data.len());
        }
        if let Ok(request) = codec::decode_request(&data) {
            prop_assert_eq!(codec::decode_request(&codec::encode_request(&request)), Ok(request));
        }
        let _ = codec::decode_udp_request(&data);
        let _ = NodeAddress::parse(&data);
        let _ = affix_reachability(&data);
    }
}
