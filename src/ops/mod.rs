//! ops (being written)
