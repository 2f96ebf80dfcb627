//! What a step is: the [`SandboxSpec`] the executor sends to the helper as JSON on its stdin
//! ([`RunSpec`] for a `RUN`, [`CopySpec`] for a `COPY`, the [`Mount`]s and network a `RUN` gets).
//!
//! Level 2, plain data: serde types only. No I/O, no processes; both sides of the helper boundary
//! read these, so nothing here may depend on either side.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::snapshot::Snapshotter;
use crate::context::CopyEntry;

/// Everything the helper needs for one step, sent as JSON on its stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Read-only layer directories, top-most first (overlayfs `lowerdir` order). Empty for a
    /// `FROM scratch` image.
    pub lowerdirs: Vec<PathBuf>,
    /// Where this step's changes land (overlayfs `upperdir`).
    pub upperdir: PathBuf,
    /// Overlayfs work directory: empty, on the same filesystem as `upperdir`.
    pub workdir: PathBuf,
    /// What to do in the merged root.
    pub action: Action,
    /// Hostname inside the step's UTS namespace.
    pub hostname: String,
    /// How the step's changes are captured; `auto` (also when absent from the JSON) lets
    /// [`super::SandboxExecutor::snapshotter`] decide, then the helper.
    #[serde(default)]
    pub snapshotter: Snapshotter,
}

/// The step itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Execute a command (a `RUN`).
    Run(RunSpec),
    /// Create files from the build context (a `COPY`).
    Copy(CopySpec),
}

/// Bytes that must never be printed (secret values): `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Sensitive(pub Vec<u8>);

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes, redacted>", self.0.len())
    }
}

/// Something mounted into a RUN step's root filesystem. Mounts never reach the step's layer:
/// only the mount points the helper had to create are left in the upper directory, and those are
/// removed afterwards when still empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// A host directory, bind-mounted (cache mounts).
    Bind {
        /// The host directory.
        source: PathBuf,
        /// Absolute path in the root filesystem.
        target: String,
        /// Mounted read-only.
        readonly: bool,
    },
    /// An overlay of host directories (a stage's or image's layers, the build context), of which
    /// `subpath` is mounted. Read-write views get a throw-away upper directory.
    Layers {
        /// The directories, top-most first.
        lowerdirs: Vec<PathBuf>,
        /// The path inside the view to mount (`/` for all of it).
        subpath: String,
        /// Absolute path in the root filesystem.
        target: String,
        /// Mounted read-only; otherwise writes are discarded after the step.
        readonly: bool,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Absolute path in the root filesystem.
        target: String,
        /// Size limit in bytes; `None` is the kernel default.
        size: Option<u64>,
    },
    /// A host socket (an SSH agent's, `RUN --mount=type=ssh`), bound onto a file mount point;
    /// the socket itself is never copied, and the mount point is removed afterwards.
    Socket {
        /// The socket on the host.
        source: PathBuf,
        /// Absolute path in the root filesystem.
        target: String,
    },
    /// A read-only file held in memory (a secret, a heredoc script), placed on a private tmpfs.
    File {
        /// Absolute path in the root filesystem.
        target: String,
        /// The contents.
        content: Sensitive,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// The network a RUN step sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// `RUN --network=default`: a network namespace of the step's own with outbound access
    /// through `pasta` (a user-mode network stack, Debian's `passt`), and no way to the host's
    /// loopback services.
    Private,
    /// A new network namespace with only the loopback interface (up).
    #[default]
    None,
    /// The host's network namespace (`--network=host`, with `--allow network.host`).
    Host,
}

/// A compiled BPF program (an array of `struct sock_filter`), carried as base64 in the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bpf(pub Vec<u8>);

impl Serialize for Bpf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bpf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bpf)
            .map_err(serde::de::Error::custom)
    }
}

/// A command to execute inside the root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Program and arguments. A program without `/` is looked up in `PATH` from `env` (or
    /// Docker's default `PATH` when `env` has none), inside the root filesystem.
    pub argv: Vec<String>,
    /// `KEY=VALUE` pairs: exactly this environment, nothing inherited.
    pub env: Vec<String>,
    /// Absolute working directory in the root filesystem; created (mode 0755) if missing.
    pub cwd: String,
    /// `name|uid[:group|gid]`, resolved in the root filesystem's `/etc/passwd` and `/etc/group`;
    /// `None` is root.
    pub user: Option<String>,
    /// Mounts, applied in order of their target's depth (parents first).
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// The network namespace.
    #[serde(default)]
    pub network: NetworkMode,
    /// The network namespace to join for [`NetworkMode::Private`] (`/proc/PID/ns/net` of the
    /// build's network holder, with pasta attached); the executor fills it in.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// The seccomp filter as compiled BPF (libseccomp's export), filled in by the executor,
    /// which compiles it once per process; `None`: the helper compiles it itself.
    #[serde(default)]
    pub seccomp: Option<Bpf>,
    /// `RUN --security=insecure` (allowed by `--allow security.insecure`): every capability, no
    /// seccomp filter, no masked or read-only kernel paths, `/sys` writable.
    #[serde(default)]
    pub insecure: bool,
    /// Run with the `PER_LINUX32` personality (personality(2)), so `uname -m` names the 32-bit
    /// machine (`i686`, `armv7l`) as a board of the platform would: `linux/386` and
    /// `linux/arm/*` steps (issue 16).
    #[serde(default)]
    pub linux32: bool,
    /// The qemu-user CPU model of an emulated platform (`arm926` for `linux/arm/v5`) and how it
    /// reaches the interpreter of every program the step executes (issue 16): see [`QemuCpu`].
    #[serde(default)]
    pub qemu_cpu: Option<QemuCpu>,
    /// The command runs through a qemu-user binfmt_misc handler: PID 1 of the step then stays
    /// the helper's, an init that runs the command as its child and exits with its status.
    /// qemu-user dies of a guest's fatal signal by raising it on itself, which PID 1 of a PID
    /// namespace ignores (pid_namespaces(7)): as PID 1 it would hang instead of failing.
    #[serde(default)]
    pub emulated: bool,
    /// What every RUN of the build gets from the command line (`--add-host`, `--shm-size`,
    /// `--ulimit`).
    #[serde(default)]
    pub settings: RunSettings,
}

/// The qemu-user CPU model an emulated step runs under, and the handler that applies it.
///
/// With `handler`, the step gets a binfmt_misc instance of its own (Linux 6.7+: one per user
/// namespace, Documentation/admin-guide/binfmt-misc.rst) holding one entry for its
/// architecture, whose interpreter runs `qemu -cpu MODEL` for every program the step executes,
/// so the model reaches qemu as an argument and never through the step's environment (`env`,
/// `/proc/self/environ`, `env -i` children all behave as on a board). Without `handler`, or
/// when the kernel refuses the instance, the model is given as `QEMU_CPU` in the environment
/// the command is executed with (qemu-user's documented variable), as before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuCpu {
    /// qemu's name of the model (`arm926`, `arm1176`, `cortex-a8`): letters, digits, `.`,
    /// `_`, `-` only (it becomes a file name in the step's `/dev`).
    pub model: String,
    /// The handler registered in the step's own instance; `None`: `QEMU_CPU` only.
    #[serde(default)]
    pub handler: Option<OwnHandler>,
}

/// A binfmt_misc entry for a step's own instance: the architecture's magic and mask as in the
/// host's table (`qemu/binfmt.toml`) and the static qemu-user binary that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnHandler {
    /// qemu's name of the architecture (`arm`): the entry is `polyarch-<name>`.
    pub name: String,
    /// `\xHH`-escaped magic bytes at offset 0, as in a registration line.
    pub magic: String,
    /// `\xHH`-escaped mask bytes, same length as `magic`.
    pub mask: String,
    /// The static `qemu-<name>-static` on the host (canonical path), qemu 6.0 or later so that
    /// it reads the `P` flag from `AT_FLAGS` (the name it runs under in the step is not
    /// Debian's `-binfmt-P`); bound read-only into the step's `/dev`.
    pub qemu: PathBuf,
}

/// Settings of every `RUN` step of a build, from the command line (buildx `--add-host`,
/// `--shm-size`, `--ulimit`). The default is what a step gets without those flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `--add-host NAME:IP`: `(name, address)` lines added to the step's `/etc/hosts` (then
    /// one made for the step: `localhost` and these, as BuildKit's `hosts` file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<(String, String)>,
    /// `--shm-size`: size of the step's `/dev/shm` tmpfs in bytes (`None`: 64 MiB, Docker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    /// `--ulimit`: resource limits set (setrlimit(2)) before the command is executed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
}

impl RunSettings {
    /// True when no flag changed anything.
    pub fn is_default(&self) -> bool {
        self == &RunSettings::default()
    }
}

/// One `--ulimit NAME=SOFT[:HARD]` (Docker's `units.Ulimit`; `-1` is unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Docker's name of the resource: one of [`Ulimit::NAMES`].
    pub name: String,
    /// The soft limit; `u64::MAX` is unlimited (`RLIM_INFINITY`).
    pub soft: u64,
    /// The hard limit; `u64::MAX` is unlimited.
    pub hard: u64,
}

impl Ulimit {
    /// The resource names Docker accepts (`docker/go-units` `ulimitNameMapping`), each
    /// `RLIMIT_<NAME>` of setrlimit(2).
    pub const NAMES: [&'static str; 15] = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
}

/// Files to create inside the root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySpec {
    /// Entries, parents before children (as [`crate::context::BuildContext::resolve_copy`]
    /// returns them).
    pub entries: Vec<CopyEntry>,
    /// `--chown`: `name|uid[:group|gid]` resolved in the root filesystem; a missing group means
    /// the same number as the user (Dockerfile reference, COPY --chown). `None` is `0:0`.
    #[serde(default)]
    pub chown: Option<String>,
    /// `--chmod`: permission bits for every copied file and directory, overriding the source's.
    #[serde(default)]
    pub chmod: Option<u32>,
    /// `--chmod` in symbolic form, applied to each entry's own mode.
    #[serde(default)]
    pub chmod_symbolic: Option<crate::plan::SymbolicMode>,
    /// `COPY --from`: sources resolved inside the root filesystem made of these layers (mounted
    /// read-only by the helper), copied before `entries`.
    #[serde(default)]
    pub from_layers: Option<LayerSource>,
    /// Layers to look `--chown` names up in instead of the destination root (`COPY --link`
    /// copies onto an empty tree, but names still mean what the image's passwd says).
    #[serde(default)]
    pub ids_from: Option<Vec<PathBuf>>,
}

/// Files of another stage or image to copy: what [`crate::context::BuildContext::rootfs`]
/// resolves inside the mounted layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSource {
    /// The source root filesystem's layers, top-most first (empty for `scratch`).
    pub lowerdirs: Vec<PathBuf>,
    /// Source paths (wildcards allowed), relative to that root.
    pub sources: Vec<String>,
    /// Absolute destination; a trailing `/` means "into this directory".
    pub dest: String,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// Clamp copied mtimes to this (`SOURCE_DATE_EPOCH`).
    pub max_mtime: Option<i64>,
}
