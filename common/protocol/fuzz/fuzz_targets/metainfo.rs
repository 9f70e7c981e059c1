//! Software-update metainfo (SEATTLE.md E.2): never panics; the size cap holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::metainfo::{MAX_METAINFO_LEN, Metainfo};

fuzz_target!(|data: &[u8]| {
    match Metainfo::parse(data) {
        Ok(m) => {
            assert!(data.len() <= MAX_METAINFO_LEN);
            let _ = m.verify(&m.signer.clone(), 1.0e9);
        }
        Err(e) => {
            let _ = e.reason();
        }
    }
});
