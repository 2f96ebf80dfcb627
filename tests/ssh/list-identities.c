/* Lists the identities of the SSH agent at $SSH_AUTH_SOCK, one comment per line, as
 * `ssh-add -l` would (without the fingerprints): a static stand-in for ssh-add in a busybox
 * image (tests/integration/buildx.rs, `--ssh`). Protocol: draft-miller-ssh-agent
 * SSH_AGENTC_REQUEST_IDENTITIES (11) -> SSH_AGENT_IDENTITIES_ANSWER (12): uint32 nkeys, then
 * per key string key_blob, string comment. Exit 2 when there is no agent, 3 on a bad answer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int read_full(int fd, unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int main(void) {
    const char *path = getenv("SSH_AUTH_SOCK");
    if (!path) { fprintf(stderr, "SSH_AUTH_SOCK is not set\n"); return 2; }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {0};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("connect"); return 2;
    }
    unsigned char req[5] = {0, 0, 0, 1, 11};
    if (write(fd, req, 5) != 5) { perror("write"); return 2; }
    unsigned char hdr[4];
    if (read_full(fd, hdr, 4) != 0) return 3;
    uint32_t len = be32(hdr);
    if (len < 5 || len > (1u << 20)) return 3;
    unsigned char *msg = malloc(len);
    if (!msg || read_full(fd, msg, len) != 0 || msg[0] != 12) return 3;
    uint32_t n = be32(msg + 1), off = 5;
    for (uint32_t i = 0; i < n; i++) {
        if (off + 4 > len) return 3;
        off += 4 + be32(msg + off);            /* key blob */
        if (off + 4 > len) return 3;
        uint32_t clen = be32(msg + off);
        off += 4;
        if (off + clen > len) return 3;
        printf("%.*s\n", (int)clen, (const char *)msg + off);
        off += clen;
    }
    printf("%u identities\n", n);
    return 0;
}
