//! Integration tests: the `polyarch` binary against real parts (Debian's docker-registry on
//! loopback, qemu-user binfmt handlers, skopeo). `scripts/test` starts them and sets
//! `POLYARCH_TEST_REGISTRY` and `POLYARCH_TEST_BASE`; when `CI` is set a missing part fails the
//! test instead of skipping it.

mod annotations;
mod attestations;
mod auth;
mod build;
mod buildx;
mod cache;
mod cli;
mod dockerfile;
mod faults;
mod fidelity;
mod harness;
mod interrupt;
mod layouts;
mod metadata;
mod nodes;
mod outputs;
mod platforms;
mod preflight;
mod publish;
mod qemu;
mod registry;
mod run;
mod sandbox;
mod shared_cache;
mod snapshotter;
mod storage;
mod tags;
mod terminal;
mod token;
