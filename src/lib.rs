//! polyarch: build one container image per target platform from a Dockerfile and publish them
//! under one tag as an OCI image index.
//!
//! Modules are layered; dependencies point down only (README "How the code is laid out";
//! `scripts/check-house` enforces it):
//! - level 0, pure: [`attest`], [`exit`], [`platform`], [`oci`], [`dockerfile`], [`plan`], [`index`],
//!   [`progress`], [`metadata`], [`schedule`], [`tagging`]
//! - level 1, sync I/O: [`context`], [`layer`], [`emulation`], [`store`], [`cache`],
//!   [`storage`], [`layout`]
//! - level 2, ports: [`executor`], [`node`], [`registry`]
//! - level 3, orchestration: [`coordinator`], [`merge`], [`inspect`], [`shared_cache`],
//!   [`image`], [`run`], [`retag`]
//! - level 4, edge: [`cli`]
#![deny(missing_docs)]
// The house rules (issue 10, scripts/check-house): no function over 80 lines, no argument list
// over 6 (clippy.toml). Tests are exempt from the length rule.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod attest;
pub mod cache;
pub mod cli;
pub mod context;
pub mod coordinator;
pub mod dockerfile;
pub mod emulation;
pub mod executor;
pub mod exit;
pub mod image;
pub mod index;
pub mod inspect;
pub mod layer;
pub mod layout;
pub mod merge;
pub mod metadata;
pub mod node;
pub mod oci;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod registry;
pub mod retag;
pub mod run;
pub mod schedule;
pub mod shared_cache;
pub mod storage;
pub mod store;
pub mod tagging;
