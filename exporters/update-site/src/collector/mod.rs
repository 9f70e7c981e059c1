//! Host collectors on `/metrics`; the only one is `install` (`--install.dir`).

mod install;

pub use install::{InstallCollector, softwareupdater_running};
