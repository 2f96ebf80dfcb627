//! dockerfile (being written).
