//! coordinator (being written).
