//! Library code of `seattle_updatesite_exporter`; `main.rs` is only glue.
