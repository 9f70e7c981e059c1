//! Resource files (SEATTLE.md B.6): never panics; parsed values survive encode → parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::nodemanager::Resources;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Resources::parse(data) {
        let again = Resources::parse(r.encode().as_bytes()).expect("encoded resources parse");
        assert_eq!(again.quantities, r.quantities);
        assert_eq!(again.messports, r.messports);
        assert_eq!(again.connports, r.connports);
    }
});
