//! Session framing (SEATTLE.md A.1): arbitrary bytes never panic the frame decoder, and a
//! decoded payload re-frames to something that decodes to the same payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::framing::{Frame, decode_frame, encode_frame, parse_header};

fuzz_target!(|data: &[u8]| {
    let _ = parse_header(data, 1 << 20);
    if let Ok(Some((frame, used))) = decode_frame(data, 1 << 20) {
        assert!(used <= data.len());
        if let Frame::Payload(p) = frame {
            assert!(p.len() < used);
            let again = encode_frame(p);
            assert_eq!(
                decode_frame(&again, 1 << 20).ok().flatten(),
                Some((Frame::Payload(p), again.len()))
            );
        }
    }
});
