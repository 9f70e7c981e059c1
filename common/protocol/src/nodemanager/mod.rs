//! Node manager (SEATTLE.md B): requests, replies, the `GetVessels` text, resource files and a
//! thin async client for the public (unsigned) calls.
//!
//! * [`codec`]: request encoding, the server-side request parser, reply split and encoding
//!   (B.3, B.4).
//! * [`getvessels`]: the `GetVessels` text (B.5) and free/acquired vessels (D.4, D.5).
//! * [`resources`]: resource files (B.6).
//! * [`client`]: one request per connection under one deadline, at most 4 connections per
//!   node IP (B.2).

pub mod client;
pub mod codec;
pub mod getvessels;
pub mod resources;

pub use codec::{PublicCall, Reply, ReplyError, Status};
pub use getvessels::{GetVessels, Vessel, VesselStatus};
pub use resources::Resources;
