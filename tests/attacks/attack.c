/*
 * Escape attempts a hostile RUN step would make (issue 12), each with a harmless control that
 * uses the same program and the same kind of call, so one binary proves both that it runs and
 * that the attack fails. Built static for amd64 and arm64 by the integration test set-up
 * (tests/integration/sandbox.rs) and run inside a RUN step.
 *
 *   attack NAME control|attack [ARG]   one check
 *   attack all MARKER PORT FD          every check, both modes
 *
 * Each check prints one line and the program exits 0 whatever happened:
 *   VERDICT <name> <mode> ok|blocked <detail>
 * "ok" means the operation succeeded (wanted for a control), "blocked" that it failed (wanted
 * for an attack). An attack that would change the host if it succeeded is written so that its
 * success changes nothing (it writes back the value it read, removes what it registered).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void verdict(const char *name, const char *mode, int ok, const char *detail) {
    printf("VERDICT %s %s %s %s\n", name, mode, ok ? "ok" : "blocked", detail);
    fflush(stdout);
}

static const char *err(void) { return strerror(errno); }

/* Reads up to 64 bytes of PATH; returns the count, or -1. */
static ssize_t read_some(const char *path) {
    char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n;
}

/* The classic chroot escape: chroot into a subdirectory while keeping the working directory
 * outside it, walk up with "..", chroot there, then read MARKER (a file the test left on the
 * host). The control reads a file of the image the same way, without the escape. */
static void chroot_escape(const char *mode, const char *marker) {
    if (strcmp(mode, "control") == 0) {
        ssize_t n = read_some("/etc/passwd");
        verdict("chroot-escape", mode, n > 0, n > 0 ? "read /etc/passwd" : err());
        return;
    }
    mkdir("/tmp/escape", 0700);
    if (chroot("/tmp/escape") != 0) {
        verdict("chroot-escape", mode, 0, err());
        return;
    }
    for (int i = 0; i < 256; i++) chdir("..");
    chroot(".");
    ssize_t n = read_some(marker);
    verdict("chroot-escape", mode, n > 0, n > 0 ? "read the host's marker" : "marker not reachable");
}

static void mount_tmpfs(const char *mode) {
    mkdir("/tmp/m", 0700);
    if (strcmp(mode, "control") == 0) {
        struct stat st;
        int ok = stat("/tmp/m", &st) == 0;
        verdict("mount-tmpfs", mode, ok, ok ? "made a directory" : err());
        return;
    }
    int ok = mount("tmpfs", "/tmp/m", "tmpfs", 0, "size=1m") == 0;
    verdict("mount-tmpfs", mode, ok, ok ? "mounted" : err());
    if (ok) umount("/tmp/m");
}

/* Writes back the value just read, so a write that succeeds changes nothing host-wide. */
static void proc_sys_write(const char *mode) {
    const char *path = "/proc/sys/vm/swappiness";
    char buf[32] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    if (strcmp(mode, "control") == 0) {
        verdict("proc-sys-write", mode, n > 0, n > 0 ? "read vm.swappiness" : err());
        return;
    }
    fd = open(path, O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0 && n > 0 && write(fd, buf, (size_t)n) == n;
    verdict("proc-sys-write", mode, ok, ok ? "wrote vm.swappiness" : err());
    if (fd >= 0) close(fd);
}

/* Opening for writing is the attack: nothing is written even when it opens. */
static void sysrq_trigger(const char *mode) {
    if (strcmp(mode, "control") == 0) {
        int ok = access("/proc/self/status", R_OK) == 0;
        verdict("sysrq-trigger", mode, ok, ok ? "procfs readable" : err());
        return;
    }
    int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
    verdict("sysrq-trigger", mode, fd >= 0, fd >= 0 ? "opened for writing" : err());
    if (fd >= 0) close(fd);
}

/* Mounts binfmt_misc (the step's proc has none) and registers a handler; removes it again if
 * that ever worked. */
static void binfmt_register(const char *mode) {
    const char *dir = "/proc/sys/fs/binfmt_misc";
    if (strcmp(mode, "control") == 0) {
        struct stat st;
        int ok = stat("/proc/sys/fs", &st) == 0;
        verdict("binfmt-register", mode, ok, ok ? "saw /proc/sys/fs" : err());
        return;
    }
    mount("binfmt_misc", dir, "binfmt_misc", 0, NULL);
    int fd = open("/proc/sys/fs/binfmt_misc/register", O_WRONLY | O_CLOEXEC);
    const char *rule = ":polyarch-attack:E::pa-attack::/bin/true:";
    int ok = fd >= 0 && write(fd, rule, strlen(rule)) == (ssize_t)strlen(rule);
    verdict("binfmt-register", mode, ok, ok ? "registered a handler" : err());
    if (fd >= 0) close(fd);
    if (ok) {
        fd = open("/proc/sys/fs/binfmt_misc/polyarch-attack", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            write(fd, "-1", 2);
            close(fd);
        }
    }
}

static void setns_net(const char *mode) {
    /* The control opens its own namespace: under emulation PID 1 is the step's init, which
     * the step may not inspect. */
    int control = strcmp(mode, "control") == 0;
    int fd = open(control ? "/proc/self/ns/net" : "/proc/1/ns/net", O_RDONLY | O_CLOEXEC);
    if (control) {
        verdict("setns-net", mode, fd >= 0, fd >= 0 ? "opened /proc/self/ns/net" : err());
    } else {
        int ok = fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
        verdict("setns-net", mode, ok, ok ? "entered the namespace" : err());
    }
    if (fd >= 0) close(fd);
}

/* The control makes a child without namespace flags (plain fork), the attack a user
 * namespace, where a step would be root with every capability again. */
static void unshare_userns(const char *mode) {
    if (strcmp(mode, "control") == 0) {
        pid_t p = fork();
        if (p == 0) _exit(0);
        int ok = p > 0 && waitpid(p, NULL, 0) == p;
        verdict("unshare-userns", mode, ok, ok ? "forked a child" : err());
        return;
    }
    int ok = unshare(CLONE_NEWUSER) == 0;
    verdict("unshare-userns", mode, ok, ok ? "new user namespace" : err());
}

/* The attack reads through descriptor FD, which the test left open in polyarch's parent; the
 * control opens a file itself and reads it through /proc/self/fd the same way. */
static void inherited_fd(const char *mode, const char *fdnum) {
    char path[64];
    if (strcmp(mode, "control") == 0) {
        int fd = open("/etc/passwd", O_RDONLY);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = read_some(path);
        verdict("inherited-fd", mode, n > 0, n > 0 ? "read its own descriptor" : err());
        return;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%s", fdnum);
    ssize_t n = read_some(path);
    verdict("inherited-fd", mode, n > 0, n > 0 ? "read the caller's file" : err());
}

/* /cache is a read-only cache mount: the attack remounts it read-write and writes. */
static void remount_cache(const char *mode) {
    if (strcmp(mode, "control") == 0) {
        struct stat st;
        int ok = stat("/cache", &st) == 0;
        verdict("remount-cache", mode, ok, ok ? "saw /cache" : err());
        return;
    }
    mount(NULL, "/cache", NULL, MS_REMOUNT | MS_BIND, NULL);
    int fd = open("/cache/written-by-step", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    verdict("remount-cache", mode, fd >= 0, fd >= 0 ? "wrote into the read-only cache" : err());
    if (fd >= 0) close(fd);
}

static void proc_keys(const char *mode) {
    const char *path = strcmp(mode, "control") == 0 ? "/proc/self/status" : "/proc/keys";
    ssize_t n = read_some(path);
    verdict("proc-keys", mode, n > 0, n > 0 ? "read something" : (n == 0 ? "empty" : err()));
}

/* Connects to 127.0.0.1:PORT: the attack to the test's listener on the host, the control to a
 * listener it makes itself inside the step first. */
static void host_loopback(const char *mode, const char *port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int own = -1;
    if (strcmp(mode, "control") == 0) {
        own = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        socklen_t len = sizeof a;
        if (own < 0 || bind(own, (struct sockaddr *)&a, sizeof a) != 0 || listen(own, 1) != 0 ||
            getsockname(own, (struct sockaddr *)&a, &len) != 0) {
            verdict("host-loopback", mode, 0, err());
            return;
        }
    } else {
        a.sin_port = htons((unsigned short)atoi(port));
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    verdict("host-loopback", mode, ok, ok ? "connected" : err());
    if (s >= 0) close(s);
    if (own >= 0) close(own);
}

static void *spin(void *arg) {
    long *n = arg;
    for (int i = 0; i < 100000; i++) (*n)++;
    return NULL;
}

/* Not an attack: threads must still work under the filter (clone with thread flags). */
static void threads(const char *mode) {
    pthread_t t[4];
    long n[4] = {0};
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= pthread_create(&t[i], NULL, spin, &n[i]) == 0;
    for (int i = 0; i < 4; i++) ok &= pthread_join(t[i], NULL) == 0 && n[i] == 100000;
    verdict("threads", mode, ok, ok ? "4 threads joined" : "a thread failed");
}

static void one(const char *name, const char *mode, const char *arg) {
    if (!strcmp(name, "chroot-escape")) chroot_escape(mode, arg);
    else if (!strcmp(name, "mount-tmpfs")) mount_tmpfs(mode);
    else if (!strcmp(name, "proc-sys-write")) proc_sys_write(mode);
    else if (!strcmp(name, "sysrq-trigger")) sysrq_trigger(mode);
    else if (!strcmp(name, "binfmt-register")) binfmt_register(mode);
    else if (!strcmp(name, "setns-net")) setns_net(mode);
    else if (!strcmp(name, "unshare-userns")) unshare_userns(mode);
    else if (!strcmp(name, "inherited-fd")) inherited_fd(mode, arg);
    else if (!strcmp(name, "remount-cache")) remount_cache(mode);
    else if (!strcmp(name, "proc-keys")) proc_keys(mode);
    else if (!strcmp(name, "host-loopback")) host_loopback(mode, arg);
    else if (!strcmp(name, "threads")) threads(mode);
    else verdict(name, mode, 0, "unknown check");
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "all")) {
        const char *marker = argv[2], *port = argv[3], *fd = argv[4];
        const char *modes[] = {"control", "attack"};
        for (int m = 0; m < 2; m++) {
            /* Forked: the chroot escape changes the process's root, a success must not
             * affect the checks after it. */
            const char *names[] = {"mount-tmpfs", "proc-sys-write", "sysrq-trigger",
                                   "binfmt-register", "setns-net", "unshare-userns",
                                   "inherited-fd", "remount-cache", "proc-keys",
                                   "host-loopback", "chroot-escape"};
            for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
                const char *arg = !strcmp(names[i], "chroot-escape") ? marker
                                  : !strcmp(names[i], "host-loopback") ? port
                                  : fd;
                pid_t p = fork();
                if (p == 0) {
                    one(names[i], modes[m], arg);
                    _exit(0);
                }
                waitpid(p, NULL, 0);
            }
        }
        threads("control");
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: attack NAME control|attack [ARG] | attack all MARKER PORT FD\n");
        return 2;
    }
    one(argv[1], argv[2], argc > 3 ? argv[3] : "");
    return 0;
}
