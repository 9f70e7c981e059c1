//! Advertise requests, server side (SEATTLE.md C.2, C.4): arbitrary bytes never panic the
//! request decoders, and every accepted request re-encodes to one that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::advertise::codec::{decode_request, decode_udp_request, encode_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_request(data) {
        assert_eq!(decode_request(&encode_request(&request)), Ok(request));
    }
    let _ = decode_udp_request(data);
});
