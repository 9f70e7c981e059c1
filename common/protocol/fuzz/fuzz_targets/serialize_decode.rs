//! `serialize` decoding (SEATTLE.md A.2): arbitrary bytes never panic the decoder; whatever
//! decodes re-encodes to bytes that decode again, and that encoding is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::serialize::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = decode(data) {
        let bytes = encode(&value);
        let again = decode(&bytes).expect("re-encoded value decodes");
        assert_eq!(encode(&again), bytes);
    }
});
