//! Library code of `seattle_process_exporter`; `main.rs` is only glue.
