//! Library code of `seattle_process_exporter`; `main.rs` is only glue.

pub mod collector;
pub mod config;
pub mod proc_scan;
pub mod tcp_check;
