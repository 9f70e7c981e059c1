//! The simulated Seattle deployment.
