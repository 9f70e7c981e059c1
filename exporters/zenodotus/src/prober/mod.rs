//! The exporter's probers, registered here. One so far: module kind `zenodotus`.

pub mod zenodotus;

pub use zenodotus::ZenodotusProber;
