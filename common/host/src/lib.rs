//! Host collectors shared by the exporters that run on a Seattle machine (servers and nodes).
//!
//! * [`groups`]: process groups, their matchers, filesystem expectations and the built-in
//!   profiles (`advertise-server`, `clearinghouse`, `zenodotus`, `node`, `update-site`).
//! * [`collector`]: the process-group and filesystem collectors (the toolkit's `Collector`).
//! * [`proc_scan`]: allocation-free reading of `/proc`; [`tcp_check`]: bounded TCP connects.
//!
//! Nothing here knows which exporter uses it: exporters choose the groups and register the
//! collectors.

pub mod collector;
pub mod groups;
pub mod proc_scan;
pub mod tcp_check;
