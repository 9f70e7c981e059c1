//! See SEATTLE.md.
