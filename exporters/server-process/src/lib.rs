//! Library code of `seattle_process_exporter`; `main.rs` is only glue. The collectors
//! themselves live in seattle-host (the node exporter's node-local mode uses them too).

pub mod collector;
pub mod config;
