//! Library code of `seattle_node_exporter`; `main.rs` is only glue.
//!
//! * [`config`]: `--config.file` (modules, users, advertise services, state keys, lookups,
//!   discovery) and the built-in defaults.
//! * [`prober`]: the `/probe` module kinds `nodemanager`, `advertise` and `users`.
//! * [`discovery`]: `/sd`, Prometheus HTTP service discovery of the fleet.
//! * [`local`]: node-local mode (`--install.dir`), host collectors reading a node's install dir.

pub mod config;
pub mod discovery;
pub mod local;
pub mod prober;
