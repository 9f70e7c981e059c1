//! `seattle_zenodotus_exporter`: probes Zenodotus, the Seattle testbed's DNS server
//! (SEATTLE.md F), blackbox-style on `/probe?target=<name>&module=<module>`.
//!
//! Per probe: one plain RFC 1035 A query over one UDP socket (RD only, no EDNS: Zenodotus
//! answers FORMERR otherwise), then, as the module enables them, a TCP and ICMP check of the
//! answered hosts with the node manager's `GetVessels`, a comparison with the name's values on
//! the `central_v2` advertise service, a zone self-check (apex A, NS, SOA) and an
//! announce-then-resolve round trip. Metrics and failure reasons: `docs/metrics.md`.
//!
//! `main.rs` only parses flags, loads [`config::Config`] and starts the toolkit's server with
//! [`prober::ZenodotusProber`].

pub mod config;
pub mod dns;
pub mod icmp;
pub mod prober;
