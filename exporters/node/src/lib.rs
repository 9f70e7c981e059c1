//! Library code of `seattle_node_exporter`; `main.rs` is only glue.
