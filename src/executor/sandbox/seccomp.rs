//! The step's seccomp filter: the system calls a container may make under Docker's default
//! profile (moby `profiles/seccomp/default.json`, for a container without `CAP_SYS_ADMIN` and the
//! other capabilities a step does not have), everything else failing with `EPERM`; `clone` only
//! without namespace flags, `personality` only with the harmless values, `socket` not for
//! `AF_VSOCK`, and `clone3` failing with `ENOSYS` so that the C library falls back to `clone`,
//! whose flags the filter can see.
//!
//! The filter is for the host's architecture and its compatibility ABIs (x86 and x32 on
//! x86_64, 32-bit arm on aarch64): an emulated step's qemu-user issues host system calls, so the
//! same filter applies to it. Built with libseccomp, as runc does; nothing hand-assembled.
//!
//! Layer of `sandbox/`: used by exec.rs only, loaded as the very last step before `execve`
//! (after the mounts, the user switch and closing descriptors, which it would block).

use std::sync::{Arc, OnceLock};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use crate::executor::error::ExecError;

/// Allowed without conditions (Docker's default allow list; names a host architecture does not
/// have are skipped).
const ALLOWED: &[&str] = &[
    // files and directories
    "access",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "getxattr",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "name_to_handle_at",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "sendfile",
    "sendfile64",
    "setxattr",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "truncate",
    "truncate64",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vmsplice",
    "write",
    "writev",
    // memory
    "brk",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
    // processes, threads, signals
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "getcpu",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "get_thread_area",
    "gettid",
    "getuid",
    "getuid32",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "process_mrelease",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "restart_syscall",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "tgkill",
    "tkill",
    "ugetrlimit",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    // time (reading it; setting it needs CAP_SYS_TIME, which a step lacks)
    "adjtimex",
    "alarm",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "gettimeofday",
    "nanosleep",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    // waiting, events, asynchronous I/O
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "fanotify_mark",
    "futex",
    "futex_time64",
    "futex_waitv",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
    "_newselect",
    // System V and POSIX IPC (in the step's own IPC namespace)
    "ipc",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    // sockets (`socket` itself is conditional)
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "send",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketcall",
    "socketpair",
    // `CAP_SYS_CHROOT` is in the default set, so Docker's profile allows it (the step's root
    // is a pivot_root'ed mount namespace: walking up from a chroot ends there)
    "chroot",
    // the rest
    "getrandom",
    "ioctl",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "sysinfo",
    "uname",
    // architecture-specific (x86; arm and arm64)
    "arch_prctl",
    "modify_ldt",
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];

/// `personality(2)` values a step may set: Linux, with `UNAME26`, `ADDR_NO_RANDOMIZE` or both,
/// and the query `0xffffffff` (Docker's profile).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Namespace flags `clone(2)` may not carry: `CLONE_NEWNS`, `NEWUTS`, `NEWIPC`, `NEWUSER`,
/// `NEWPID`, `NEWNET`, `NEWCGROUP` (0x7E020000, Docker's mask).
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`: sockets to the hypervisor are refused (Docker's profile).
const AF_VSOCK: u64 = 40;

/// The architectures the filter covers: the host's and the compatibility ABIs its kernel runs.
fn architectures() -> Vec<ScmpArch> {
    match ScmpArch::native() {
        ScmpArch::X8664 => vec![ScmpArch::X86, ScmpArch::X32],
        ScmpArch::Aarch64 => vec![ScmpArch::Arm],
        _ => Vec::new(),
    }
}

fn seccomp_err(what: &'static str) -> impl Fn(libseccomp::error::SeccompError) -> ExecError {
    move |e| ExecError::sys(what, "-", std::io::Error::other(e.to_string()))
}

/// Builds the filter (see the module header). Names the host does not know are skipped.
///
/// Errors: [`ExecError::Sys`] when libseccomp refuses the filter itself.
pub(super) fn build_filter() -> Result<ScmpFilterContext, ExecError> {
    let mut f = ScmpFilterContext::new(ScmpAction::Errno(nix::libc::EPERM))
        .map_err(seccomp_err("create seccomp filter"))?;
    for arch in architectures() {
        f.add_arch(arch)
            .map_err(seccomp_err("add seccomp architecture"))?;
    }
    for name in ALLOWED {
        if let Ok(sc) = ScmpSyscall::from_name(name) {
            // A name some covered architecture lacks is fine: libseccomp adds it where it exists.
            let _ = f.add_rule(ScmpAction::Allow, sc);
        }
    }
    let cond = |arg: u32, op: ScmpCompareOp, datum: u64| ScmpArgCompare::new(arg, op, datum);
    let rule = |f: &mut ScmpFilterContext, name: &str, c: ScmpArgCompare| {
        ScmpSyscall::from_name(name)
            .and_then(|sc| {
                f.add_rule_conditional(ScmpAction::Allow, sc, &[c])
                    .map(|_| ())
            })
            .map_err(seccomp_err("add seccomp rule"))
    };
    for p in PERSONALITIES {
        rule(&mut f, "personality", cond(0, ScmpCompareOp::Equal, *p))?;
    }
    rule(&mut f, "socket", cond(0, ScmpCompareOp::NotEqual, AF_VSOCK))?;
    // s390x passes clone's flags second (Docker's profile says the same).
    let flags_arg = if ScmpArch::native() == ScmpArch::S390X {
        1
    } else {
        0
    };
    rule(
        &mut f,
        "clone",
        cond(
            flags_arg,
            ScmpCompareOp::MaskedEqual(CLONE_NAMESPACE_FLAGS),
            0,
        ),
    )?;
    let clone3 = ScmpSyscall::from_name("clone3").map_err(seccomp_err("add seccomp rule"))?;
    f.add_rule(ScmpAction::Errno(nix::libc::ENOSYS), clone3)
        .map_err(seccomp_err("add seccomp rule"))?;
    Ok(f)
}

/// The filter as libseccomp compiles it for this host (an array of `struct sock_filter`, 8 bytes
/// each), built once per process: compiling it costs tens of milliseconds, so the executor does
/// it once and hands the program to every step's helper in its spec.
///
/// Errors: [`ExecError::Sys`] when libseccomp refuses the filter or cannot export it.
pub(in crate::executor) fn compiled() -> Result<Arc<Vec<u8>>, ExecError> {
    static COMPILED: OnceLock<Result<Arc<Vec<u8>>, String>> = OnceLock::new();
    COMPILED
        .get_or_init(|| export().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(|message| {
            ExecError::sys("build seccomp filter", "-", std::io::Error::other(message))
        })
}

/// Builds the filter and exports its BPF program through a memfd.
fn export() -> Result<Vec<u8>, ExecError> {
    let filter = build_filter()?;
    let fd = rustix::fs::memfd_create("seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| ExecError::sys("memfd_create", "seccomp", std::io::Error::from(e)))?;
    filter
        .export_bpf(&fd)
        .map_err(seccomp_err("export seccomp filter"))?;
    let mut file = std::fs::File::from(fd);
    let mut bpf = Vec::new();
    std::io::Seek::rewind(&mut file)
        .and_then(|_| std::io::Read::read_to_end(&mut file, &mut bpf))
        .map_err(|e| ExecError::sys("read seccomp filter", "memfd", e))?;
    Ok(bpf)
}

/// Loads the filter into the calling process (inherited by everything it executes): `bpf`, the
/// program [`compiled`] made in the executor, or one built here when the spec carries none. Not
/// with `insecure` (`RUN --security=insecure`). `no_new_privs` must be set already.
///
/// Errors: [`ExecError::Sys`] when the filter cannot be built or loaded.
pub(super) fn load(insecure: bool, bpf: Option<&[u8]>) -> Result<(), ExecError> {
    if insecure {
        return Ok(());
    }
    let Some(bpf) = bpf else {
        return build_filter()?
            .load()
            .map_err(seccomp_err("load seccomp filter"));
    };
    use nix::libc;
    let len = bpf.len() / std::mem::size_of::<libc::sock_filter>();
    if len == 0
        || len > usize::from(u16::MAX)
        || bpf.len() % std::mem::size_of::<libc::sock_filter>() != 0
    {
        return Err(ExecError::sys(
            "load seccomp filter",
            "-",
            std::io::Error::other(format!("a BPF program of {} bytes", bpf.len())),
        ));
    }
    // An aligned copy: the bytes are libseccomp's `struct sock_filter` array as exported.
    let mut program: Vec<libc::sock_filter> = bpf
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: len as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `prog` points at `len` valid instructions that outlive the call; the kernel copies
    // them (seccomp(2), SECCOMP_MODE_FILTER through prctl(2) PR_SET_SECCOMP).
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(ExecError::sys(
            "load seccomp filter",
            "-",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
