//! Library code of `seattle_zenodotus_exporter`; `main.rs` is only glue.
