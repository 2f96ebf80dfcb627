//! `polyarch build`'s flags as clap parses them: [`BuildArgs`] (doc comments are the help,
//! `env =` bindings) and the value enums it uses.
//!
//! Level 4 (edge). Close to the command line: no checks across flags, no file or network
//! access; [`super::resolve`] turns these into a [`crate::coordinator::BuildRequest`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::cli::node::NodeOpts;
use crate::cli::registry::RegistryArgs;
use crate::cli::render::ProgressMode;
use crate::executor::Snapshotter;
use crate::schedule::Policy;

/// Flags of `polyarch build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory, or `-`: a tar (plain or gzip) read from stdin, or a
    /// Dockerfile read from stdin with an empty context (as `docker build -`).
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
    /// Target platforms, os/arch[/variant], repeatable and comma-separated (default: this
    /// host's platform; `local` also means it; `all` means every platform the base image offers
    /// that this host can run).
    #[arg(long = "platform", value_name = "PLATFORMS", env = "POLYARCH_PLATFORM")]
    pub platforms: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile); `-` reads it from stdin.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Name and tag of the image index, REGISTRY/REPO[:TAG]; repeatable.
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub tags: Vec<String>,
    /// Also tag each -t repository with the tags a semantic version gives, as
    /// docker/metadata-action does: 1.2.3 (or v1.2.3) gives 1.2.3, 1.2, 1 and latest; a
    /// pre-release (1.2.3-rc.1) only itself.
    #[arg(long, value_name = "VERSION")]
    pub tag_semver: Option<String>,
    /// A build-time variable, KEY=VALUE (KEY alone takes the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Grant steps an entitlement (buildx `--allow`): `network.host` for `RUN --network=host`,
    /// `security.insecure` for `RUN --security=insecure`; repeatable.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<crate::plan::Entitlement>,
    /// Build this stage (default: the last one).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Push every image by digest, then the index to each tag.
    #[arg(long, conflicts_with = "push_by_digest")]
    pub push: bool,
    /// Push the image(s) by digest to this repository, REGISTRY/REPO, and to no tag: one job
    /// of a CI matrix. With several platforms their index is pushed by digest too. Combine the
    /// results with `polyarch merge`.
    #[arg(long, value_name = "REPO")]
    pub push_by_digest: Option<String>,
    /// Write what was pushed as REPO@sha256:... to this file (the image for one platform
    /// pushed by digest, else the index).
    #[arg(long, value_name = "PATH")]
    pub digest_file: Option<PathBuf>,
    /// Where the result goes (buildx's exporters, repeatable): `type=registry[,name=R]` (as
    /// --push), `type=image,name=R,push=true|false[,push-by-digest=true]`,
    /// `type=oci,dest=DIR|FILE.tar[,tar=true|false][,name=R]`, `type=docker,dest=FILE[,name=R]`
    /// (a Docker archive; without dest: --load), `type=local,dest=DIR[,platform-split=B]`,
    /// `type=tar,dest=FILE[,platform-split=B]`; `dest=-` is stdout. Default when nothing is
    /// pushed: type=oci,dest=./polyarch-out.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// A label on every image's config, KEY=VALUE (over the Dockerfile's LABEL of that name);
    /// repeatable. `BUILDX_GIT_LABELS=1|full` also adds the git revision, source and
    /// Dockerfile path labels of the context's work tree.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// An annotation, buildx's `[LEVEL[,LEVEL]][[PLATFORM]]:KEY=VALUE`: levels `manifest`
    /// (default), `index`, `manifest-descriptor`, `index-descriptor` (an OCI layout's
    /// index.json); e.g. `manifest[linux/amd64]:org.opencontainers.image.title=x`. Repeatable.
    #[arg(long = "annotation", value_name = "SPEC")]
    pub annotations: Vec<String>,
    /// Attach SLSA provenance v1 to each image, as buildx: `true` or `mode=min`, `mode=max`
    /// (adds the Dockerfile and the target's instructions), `false`. Default: none (buildx:
    /// `mode=min` on push).
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// buildx's `--attest type=provenance[,mode=min|max][,disabled=true]`; repeatable.
    #[arg(long, value_name = "SPEC")]
    pub attest: Vec<String>,
    /// Attach an SPDX 2.3 SBOM to each image (buildx's `--sbom`): the packages of its dpkg
    /// status file, apk database and Python dist-info. Default: none.
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// Load the image into podman (buildx's `--load`, `type=docker`; one platform); exit 4
    /// when podman is not on the PATH.
    #[arg(long)]
    pub load: bool,
    /// Write the build result (index digest, per-platform digests) as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub metadata_file: Option<PathBuf>,
    /// Progress output on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, env = "POLYARCH_PROGRESS")]
    pub progress: ProgressMode,
    /// How layers made by the build are compressed: gzip (on every core, the same bytes
    /// whatever their number), zstd (the OCI zstd layer media type) or uncompressed.
    #[arg(long, value_name = "KIND", default_value = "gzip", value_parser = ["gzip", "zstd", "uncompressed"], env = "POLYARCH_COMPRESSION")]
    pub compression: String,
    /// Compression level: gzip 0-9 (default 6), zstd 1-22 (default 3).
    #[arg(long, value_name = "N", env = "POLYARCH_COMPRESSION_LEVEL")]
    pub compression_level: Option<i32>,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// How RUN and COPY changes are captured: overlay (overlayfs), copy (copy the layers, then
    /// walk and compare; for hosts where overlayfs cannot be mounted), or auto (overlay, falling
    /// back to copy when the mount is refused).
    #[arg(long, value_enum, default_value_t = Snapshotter::Auto, env = "POLYARCH_SNAPSHOTTER")]
    pub snapshotter: Snapshotter,
    /// Build nodes (--node, --nodes, --ssh-config).
    #[command(flatten)]
    pub nodes: NodeOpts,
    /// Where platforms may run: prefer-native (a node declaring it, natively running ones
    /// first, then this host natively, then this host emulated), native-only (no emulation
    /// here: a platform with neither fails before anything is built, exit 4), local-only.
    #[arg(long, value_enum, default_value_t = NodePolicy::PreferNative, env = "POLYARCH_NODE_POLICY")]
    pub node_policy: NodePolicy,
    /// Print where each platform would run and why (probing this host and the nodes), then
    /// stop: nothing is pulled, built or pushed.
    #[arg(long)]
    pub dry_run: bool,
    /// Run this command in every platform's finished image before anything is pushed or
    /// tagged: a JSON array of strings as is, anything else with `/bin/sh -c` (e.g.
    /// `--smoke-test 'app --version'`). A platform where it exits non-zero fails the build
    /// (exit 1) and no tag moves.
    #[arg(long, value_name = "CMD")]
    pub smoke_test: Option<String>,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE` or `id=ID,env=VAR` (buildx
    /// syntax; `type=file|env` optional; `id=ID` alone reads the variable ID). Repeatable. Never
    /// stored in the image or printed.
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// Run every step even when the step cache has its result (what they make is still
    /// recorded for the next build).
    #[arg(long)]
    pub no_cache: bool,
    /// Run every step of these stages (by name) even when the step cache has their results;
    /// repeatable and comma-separated.
    #[arg(
        long = "no-cache-filter",
        value_name = "STAGE[,STAGE]",
        value_delimiter = ','
    )]
    pub no_cache_filter: Vec<String>,
    /// Read the base image's manifest and config from the registry again, never from the local
    /// store (the tag is resolved in every build anyway; only its digest is in the step keys).
    #[arg(long)]
    pub pull: bool,
    /// Import step cache entries from a shared cache: `type=registry,ref=REPO:TAG` (or just
    /// REPO:TAG) or `type=local,src=DIR` (an OCI layout). Repeatable; the first that has a
    /// step wins, after the local step cache.
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export this build's step cache entries: `type=registry,ref=REPO:TAG[,mode=min|max]` or
    /// `type=local,dest=DIR[,mode=min|max]`; `mode=min` (default) exports the final stage's
    /// steps, `mode=max` every stage's; `ignore-error=true` makes a failed export a warning.
    /// Jobs exporting to one cache merge their entries. Repeatable.
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Further inputs and step settings with buildx's spelling.
    #[command(flatten)]
    pub buildx: BuildxArgs,
}

/// `docker buildx build` flags for inputs, step settings and what is printed (README "buildx
/// flags"), resolved in [`super::inputs`].
#[derive(Debug, Args)]
pub struct BuildxArgs {
    /// Print nothing but the image id on stdout (the config digest for one platform, else the
    /// index digest), and no progress.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the image id (as -q prints it) to this file.
    #[arg(long, value_name = "PATH")]
    pub iidfile: Option<PathBuf>,
    /// Add a line to every RUN step's /etc/hosts: NAME:IP (or NAME=IP); repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_hosts: Vec<String>,
    /// Size of every RUN step's /dev/shm: bytes, or a number with b, k, m or g (binary units,
    /// as Docker's), e.g. 128m. Default 64m.
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// A resource limit for every RUN step: NAME=SOFT[:HARD] (Docker's names: nofile, nproc,
    /// core, ...; -1 unlimited); repeatable.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// A named build context, NAME=DIR | NAME=docker-image://REF | NAME=oci-layout://DIR[:TAG]:
    /// what `FROM NAME`, `COPY --from=NAME` and `RUN --mount=from=NAME` use (before a stage or
    /// an image of that name; a stage NAME is replaced by it); repeatable.
    #[arg(long = "build-context", value_name = "NAME=SOURCE")]
    pub build_contexts: Vec<String>,
    /// What to do with the Dockerfile: `build` (default), or `check`: run the checks a build
    /// makes before it pulls anything, print the warnings on stdout, build nothing; exit 1
    /// when there are warnings, 2 on errors (buildx `--call`).
    #[arg(long, value_name = "METHOD", default_value = "build", value_parser = ["build", "check"])]
    pub call: String,
    /// Shorthand for `--call check`.
    #[arg(long)]
    pub check: bool,
    /// An SSH agent for `RUN --mount=type=ssh`: `default` or `ID` ($SSH_AUTH_SOCK), or
    /// `ID=SOCKET`; the socket is bound into the steps that mount it, never stored.
    /// Repeatable.
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    pub ssh: Vec<String>,
    /// The network of RUN steps without `--network` (or with `--network=default`): default
    /// (a private namespace with outbound access), none, or host (with --allow network.host).
    #[arg(long, value_name = "MODE", value_parser = ["default", "none", "host"])]
    pub network: Option<String>,
}

/// `--node-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodePolicy {
    /// Nodes that declare the platform, then this host natively, then this host emulated.
    PreferNative,
    /// Nodes, then this host natively; never emulated here.
    NativeOnly,
    /// This host only.
    LocalOnly,
}

impl From<NodePolicy> for Policy {
    fn from(p: NodePolicy) -> Policy {
        match p {
            NodePolicy::PreferNative => Policy::PreferNative,
            NodePolicy::NativeOnly => Policy::NativeOnly,
            NodePolicy::LocalOnly => Policy::LocalOnly,
        }
    }
}

impl ValueEnum for Snapshotter {
    fn value_variants<'a>() -> &'a [Self] {
        &Snapshotter::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::Cli;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
