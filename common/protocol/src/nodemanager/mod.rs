//! Node manager (SEATTLE.md B).
