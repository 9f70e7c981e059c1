//! Seattle's wire protocols and file formats (spec: `../shared/SEATTLE.md`).
//!
//! Codecs are sans-I/O: pure functions from bytes to typed values and back. The thin tokio clients
//! on top (`advertise::client`, `nodemanager::client`) always carry a deadline.

pub mod advertise;
pub mod framing;
pub mod keys;
pub mod metainfo;
pub mod nodemanager;
pub mod serialize;
pub mod signeddata;
pub mod transport;
pub mod vesselinfo;
