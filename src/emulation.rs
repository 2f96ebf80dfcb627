//! emulation (being written).
