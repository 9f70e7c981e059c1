//! Advertise service (SEATTLE.md C, D).
