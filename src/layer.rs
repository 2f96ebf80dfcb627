//! layer (being written).
