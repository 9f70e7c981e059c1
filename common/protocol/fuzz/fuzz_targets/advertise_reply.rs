//! Advertise replies (SEATTLE.md C.2, C.4): what a hostile server sends never panics the
//! client-side decoders, and accepted GET replies hold no more bytes than were received.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::advertise::codec::{
    decode_get_reply, decode_put_reply, decode_udp_get_reply, decode_udp_put_reply,
};

fuzz_target!(|data: &[u8]| {
    let _ = decode_put_reply(data);
    if let Ok(values) = decode_get_reply(data) {
        assert!(values.iter().map(Vec::len).sum::<usize>() <= data.len());
    }
    let id = data
        .iter()
        .take(4)
        .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    let _ = decode_udp_put_reply(data, id);
    let _ = decode_udp_get_reply(data, id);
});
