//! Installer vesselinfo (SEATTLE.md G): never panics; parsed files survive encode → parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seattle_protocol::vesselinfo::VesselInfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(vi) = VesselInfo::parse(data) {
        let _ = vi.validate_installer();
        assert_eq!(VesselInfo::parse(vi.encode().as_bytes()).ok(), Some(vi));
    }
});
