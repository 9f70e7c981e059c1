//! `GetVessels` text (SEATTLE.md B.5): never panics; what parses re-encodes to text that parses
//! to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::nodemanager::GetVessels;

fuzz_target!(|data: &[u8]| {
    if let Ok(gv) = GetVessels::parse(data) {
        let again = GetVessels::parse(gv.encode_text().as_bytes());
        // Values with embedded newlines cannot come out of the parser, so this must hold.
        assert_eq!(again.as_ref().ok(), Some(&gv));
        let _ = gv.allocation(&gv.nodekey);
    }
});
