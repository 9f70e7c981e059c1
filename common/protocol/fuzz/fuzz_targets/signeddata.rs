//! Signed-data blocks (SEATTLE.md A.4): parse and verify never panic, whatever the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::signeddata;

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = signeddata::parse(data) {
        assert!(sd.signed.len() < data.len());
        let _ = sd.verify();
        let _ = sd.check_expiry(1.0e9);
        let _ = sd.check_destination("65537 3233");
    }
});
