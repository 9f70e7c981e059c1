//! Session framing comes from the protocol crate; re-exported so every server here uses one path.
pub use seattle_protocol::framing::{encode_frame, read_frame};
