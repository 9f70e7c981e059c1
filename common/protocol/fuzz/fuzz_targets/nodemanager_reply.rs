//! Node-manager replies and requests (SEATTLE.md B.3, B.4): any payload splits or fails with a
//! typed error; accepted replies re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::nodemanager::codec::{encode_reply, parse_request, split_reply};

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = split_reply(data) {
        assert_eq!(encode_reply(reply.text, reply.status), data);
    }
    let _ = parse_request(data);
});
