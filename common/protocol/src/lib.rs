//! Seattle wire protocols and file formats.
