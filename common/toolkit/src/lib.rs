//! Exporter plumbing.
