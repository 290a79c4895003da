//! sign (being written)
