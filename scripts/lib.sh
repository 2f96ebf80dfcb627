# Shared set-up for scripts/example, scripts/test and scripts/bench. Sourced, not run.
# Every step is idempotent: a second run only checks and reuses what the first one made.
# Touches the network only through apt (Debian's archive) and cargo (crates.io); everything
# else is on loopback.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${POLYARCH_DEV_STATE:-$REPO/.state}
REGISTRY=${POLYARCH_DEV_REGISTRY:-127.0.0.1:5000}
# Debian architectures of the base image (Debian's busybox-static for each).
BASE_ARCHES=${POLYARCH_BASE_ARCHES:-"amd64 arm64 armhf ppc64el s390x"}
BUSYBOX_TAG=1.35.0
BASE_IMAGE="$REGISTRY/library/busybox:$BUSYBOX_TAG"
export POLYARCH_STATE_DIR=${POLYARCH_STATE_DIR:-$STATE/polyarch}
PACKAGES=(docker-registry skopeo umoci qemu-user-static busybox-static curl ca-certificates openssl apache2-utils openssh-server openssh-client tmux)
# The RUN sandbox (issue 12): pasta for the default network, libseccomp to build against, and
# compilers for the static attack programs of tests/integration/sandbox.rs.
PACKAGES+=(passt libseccomp-dev gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
# mmdebstrap: a real Debian root filesystem tar for the layer fidelity tests and the ADD benchmark.
PACKAGES+=(mmdebstrap)
# podman (with runc, which this machine's cgroups take) reads the type=docker archives and runs
# them in the output tests; --load loads into it.
PACKAGES+=(podman runc)
# git: BUILDX_GIT_LABELS reads the context's work tree (the annotations test makes one).
PACKAGES+=(git)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit "${2:-4}"; }

need_root() {
  [ "$(id -u)" = 0 ] || die "set-up installs packages and registers binfmt handlers: run as root" 4
}

# apt-get update fails transiently now and then ("Mirror sync in progress?"), more often right
# after several foreign architectures were added: retry it. With $1 = lenient, a last failure is
# only a warning: the indexes that did arrive may be all that is needed (the caller then fails
# clearly if a package cannot be found).
apt_update() {
  local i
  for i in 1 2 3 4 5; do
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; then return 0; fi
    log "apt-get update failed (try $i), retrying"; sleep $((i * 3))
  done
  [ "${1:-}" = lenient ] && { log "apt-get update kept failing; going on with the indexes it got"; return 0; }
  die "apt-get update kept failing" 4
}

ensure_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # Lenient: once foreign architectures are added (the base's busybox), an index of one of
    # them failing to download must not stop installing a package of this machine's own.
    apt_update lenient
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Debian's busybox-static for each base architecture, unpacked under $STATE/debs/<arch>.
ensure_busybox_debs() {
  local arch need_update=0
  mkdir -p "$STATE/debs"
  for arch in $BASE_ARCHES; do
    [ -x "$STATE/debs/$arch/bin/busybox" ] && continue
    if [ "$arch" != "$(dpkg --print-architecture)" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
      dpkg --add-architecture "$arch"; need_update=1
    fi
  done
  if [ "$need_update" = 1 ]; then apt_update lenient; fi
  for arch in $BASE_ARCHES; do
    [ -x "$STATE/debs/$arch/bin/busybox" ] && continue
    log "fetching busybox-static:$arch"
    local dl; dl=$(mktemp -d)
    (cd "$dl" && apt-get download -qq "busybox-static:$arch" >/dev/null 2>&1) || { apt_update lenient; (cd "$dl" && apt-get download -qq "busybox-static:$arch" >/dev/null); }
    rm -rf "$STATE/debs/$arch.tmp" && mkdir -p "$STATE/debs/$arch.tmp"
    dpkg -x "$dl"/busybox-static_*.deb "$STATE/debs/$arch.tmp"
    rm -rf "$dl" "$STATE/debs/$arch" && mv "$STATE/debs/$arch.tmp" "$STATE/debs/$arch"
  done
}

# A Debian architecture's OCI platform ($1 = amd64, arm64, armhf, ppc64el, s390x, riscv64).
debian_platform() {
  case "$1" in
    amd64) echo linux/amd64 ;; arm64) echo linux/arm64/v8 ;; armhf) echo linux/arm/v7 ;;
    ppc64el) echo linux/ppc64le ;; s390x) echo linux/s390x ;; riscv64) echo linux/riscv64 ;;
    *) die "no OCI platform known for Debian architecture $1" 4 ;;
  esac
}

# The same platform's architecture (TARGETARCH; the base image's rootfs/<arch> directory).
debian_goarch() { local p; p=$(debian_platform "$1"); p=${p#linux/}; echo "${p%%/*}"; }

# qemu-user handlers for the base architectures, registered and verified by polyarch itself
# (Debian's *-binfmt-P interpreters with flags POF: argv[0] preserved, interpreter opened at
# registration so chroots need no qemu inside). Needs the binary: run after ensure_build.
ensure_binfmt() {
  local arch platforms=()
  for arch in $BASE_ARCHES; do
    [ "$arch" = "$(dpkg --print-architecture)" ] && continue
    platforms+=("$(debian_platform "$arch")")
  done
  [ ${#platforms[@]} -eq 0 ] && return 0
  log "polyarch qemu install ${platforms[*]}"
  "$POLYARCH" qemu install "${platforms[@]}" >&2 || die "polyarch qemu install failed" 4
}

registry_up() { curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; }

# Debian's docker-registry (distribution 2.8) on loopback, data under $STATE/registry, left
# running for the next script.
ensure_registry() {
  registry_up && return 0
  local host=${REGISTRY%:*} port=${REGISTRY##*:}
  mkdir -p "$STATE/registry/data"
  cat > "$STATE/registry/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry/data
  delete:
    enabled: true
http:
  addr: $host:$port
YAML
  log "starting docker-registry on $REGISTRY"
  setsid nohup docker-registry serve "$STATE/registry/config.yml" >"$STATE/registry/log" 2>&1 < /dev/null &
  echo $! > "$STATE/registry/pid"
  local i
  for i in $(seq 1 100); do registry_up && return 0; sleep 0.1; done
  cat "$STATE/registry/log" >&2
  die "docker-registry did not answer on http://$REGISTRY/v2/" 4
}

# cargo build; sets POLYARCH to the binary. $1: release or debug.
ensure_build() {
  local profile=${1:-release}
  log "cargo build ($profile)"
  if [ "$profile" = release ]; then
    log "(the first release build compiles every dependency: several minutes on 2 cores)"
    (cd "$REPO" && cargo build --release --locked -q)
  else
    (cd "$REPO" && cargo build --locked -q)
  fi
  POLYARCH="$REPO/target/$profile/polyarch"
}

# A busybox root filesystem at $2 from the busybox binary $1: the usual directories, applet links
# (relative, so that nothing in a build context points at the host's files; the list is the
# amd64 build's, run here natively), root and nobody in /etc/passwd and /etc/group.
busybox_root() {
  local bin=$1 root=$2 applet up
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,dev,sys,tmp,root,var}
  chmod 1777 "$root/tmp"; chmod 700 "$root/root"
  cp "$bin" "$root/bin/busybox"
  while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    up=$(dirname "$applet" | sed 's|[^/]*|..|g')
    mkdir -p "$root/$(dirname "$applet")"
    ln -sfn "$up/bin/busybox" "$root/$applet"
  done < <("$STATE/debs/amd64/bin/busybox" --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
}

# The multi-platform busybox base image, built with polyarch itself (FROM scratch + COPY). An
# existing tag is reused only if it offers every platform of $BASE_ARCHES.
ensure_base_image() {
  local raw arch missing=()
  if raw=$(skopeo inspect --raw --tls-verify=false "docker://$BASE_IMAGE" 2>/dev/null); then
    for arch in $BASE_ARCHES; do
      grep -q "\"architecture\":\"$(debian_goarch "$arch")\"" <<<"$raw" || missing+=("$arch")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "$BASE_IMAGE lacks ${missing[*]}: rebuilding it"
  fi
  local ctx="$STATE/base-busybox" platforms=()
  rm -rf "$ctx" && mkdir -p "$ctx/rootfs"
  for arch in $BASE_ARCHES; do
    # The Dockerfile copies rootfs/${TARGETARCH}/: one directory per OCI architecture.
    busybox_root "$STATE/debs/$arch/bin/busybox" "$ctx/rootfs/$(debian_goarch "$arch")"
    platforms+=("$(debian_platform "$arch")")
  done
  log "building $BASE_IMAGE for ${platforms[*]}"
  local IFS=,
  SOURCE_DATE_EPOCH=0 "$POLYARCH" build --progress plain -f "$REPO/manifests/base/busybox/Dockerfile" \
    --platform "${platforms[*]}" --provenance=false -t "$BASE_IMAGE" --push "$ctx"
}

# --- The ten-platform base (issue 16) ------------------------------------------------------
# Docker's official busybox image publishes ten platforms; this base offers the same ten, each
# from Debian's busybox-static: bookworm's for nine and trixie's for riscv64 (bookworm has no
# riscv64 port). `Debian architecture:platform`. linux/arm/v5 and linux/arm/v6 both get armel
# (ARMv5TE code, which an ARMv6 board runs): Debian has no ARMv6 build, and its armhf needs ARMv7
# (Thumb-2, VFPv3-D16), so armel is the one Debian binary that runs on an ARMv6 board.
TEN_BASE_IMAGE=${POLYARCH_DEV_TEN_BASE:-$REGISTRY/library/busybox-ten:1}
TEN_PLATFORMS=(amd64:linux/amd64 armel:linux/arm/v5 armel:linux/arm/v6 armhf:linux/arm/v7
  arm64:linux/arm64/v8 i386:linux/386 mips64el:linux/mips64le ppc64el:linux/ppc64le
  riscv64:linux/riscv64 s390x:linux/s390x)

# apt-get with a state of its own under $STATE/apt/<suite>-<arch> and a one-line sources list
# for that suite and architecture only: the machine's apt sources, dpkg architectures and
# indexes stay as they were, and only that architecture's index is fetched (a few seconds).
# $1 suite, $2 Debian architecture, then apt-get's arguments.
private_apt() {
  local suite=$1 arch=$2; shift 2
  local d="$STATE/apt/$suite-$arch"
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
  [ -e "$d/status" ] || : > "$d/status"
  echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) $suite main" > "$d/sources.list"
  apt-get -q -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$d/lists" -o Dir::State::status="$d/status" -o Dir::Cache="$d/cache" \
    -o APT::Architecture="$arch" -o APT::Architectures::="$arch" -o Acquire::Languages=none \
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false "$@"
}

# busybox-static for Debian architecture $1 from suite $2 through private_apt, unpacked under
# $STATE/debs/<arch> (skipped when there).
ensure_private_busybox_deb() {
  local arch=$1 suite=$2 i dl
  [ -x "$STATE/debs/$arch/bin/busybox" ] && return 0
  log "fetching busybox-static:$arch from $suite (private apt state)"
  for i in 1 2 3; do
    private_apt "$suite" "$arch" update >/dev/null 2>&1 && break
    [ "$i" = 3 ] && die "apt-get update for $suite/$arch kept failing (is $(debian_mirror) reachable?)" 4
    # A Debian 12 installed before 12.5 has a keyring without trixie's keys (added in
    # debian-archive-keyring 2023.3+deb12u1): bring it up to date once.
    if [ "$i" = 1 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --only-upgrade debian-archive-keyring >/dev/null 2>&1 || true
    fi
    sleep $((i * 3))
  done
  dl=$(mktemp -d)
  (cd "$dl" && private_apt "$suite" "$arch" download "busybox-static:$arch" >/dev/null 2>&1) \
    || die "busybox-static:$arch not found in $suite" 4
  rm -rf "$STATE/debs/$arch.tmp" && mkdir -p "$STATE/debs/$arch.tmp"
  dpkg -x "$dl"/busybox-static_*.deb "$STATE/debs/$arch.tmp"
  # trixie ships it as /usr/bin/busybox (merged /usr); keep the bin/busybox layout of bookworm.
  if [ ! -e "$STATE/debs/$arch.tmp/bin/busybox" ] && [ -x "$STATE/debs/$arch.tmp/usr/bin/busybox" ]; then
    mkdir -p "$STATE/debs/$arch.tmp/bin"
    mv "$STATE/debs/$arch.tmp/usr/bin/busybox" "$STATE/debs/$arch.tmp/bin/busybox"
  fi
  rm -rf "$dl" "$STATE/debs/$arch" && mv "$STATE/debs/$arch.tmp" "$STATE/debs/$arch"
}

# The ten-platform base image $TEN_BASE_IMAGE, built with polyarch itself
# (manifests/base/busybox-ten/Dockerfile), and the qemu handlers its platforms need. An existing
# tag is reused when it offers all ten (with their variants). Run after setup_all.
ensure_ten_base_image() {
  local entry arch platform a v raw dir missing=() ctx="$STATE/base-busybox-ten" platforms=()
  log "polyarch qemu install for the ten platforms"
  "$POLYARCH" qemu install linux/arm/v7 linux/arm64/v8 linux/ppc64le linux/s390x \
    linux/mips64le linux/riscv64 >&2 || die "polyarch qemu install failed" 4
  raw=$(skopeo inspect --raw --tls-verify=false "docker://$TEN_BASE_IMAGE" 2>/dev/null) || raw=
  for entry in "${TEN_PLATFORMS[@]}"; do
    platform=${entry#*:}; a=${platform#linux/}; v=
    case "$a" in */*) v=${a#*/}; a=${a%%/*} ;; esac
    if [ -n "$v" ]; then
      grep -q "\"architecture\":\"$a\",\"os\":\"linux\",\"variant\":\"$v\"" <<<"$raw" || missing+=("$platform")
    else
      grep -q "\"architecture\":\"$a\",\"os\":\"linux\"}" <<<"$raw" || missing+=("$platform")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  ensure_private_busybox_deb armel bookworm
  ensure_private_busybox_deb i386 bookworm
  ensure_private_busybox_deb mips64el bookworm
  ensure_private_busybox_deb riscv64 trixie
  rm -rf "$ctx" && mkdir -p "$ctx/rootfs"
  for entry in "${TEN_PLATFORMS[@]}"; do
    arch=${entry%%:*}; platform=${entry#*:}
    # rootfs/${TARGETARCH}${TARGETVARIANT}: TARGETVARIANT is the normalised variant, empty for
    # arm64/v8.
    dir=${platform#linux/}; dir=${dir%/v8}; dir=${dir//\//}
    busybox_root "$STATE/debs/$arch/bin/busybox" "$ctx/rootfs/$dir"
    platforms+=("$platform")
  done
  log "building $TEN_BASE_IMAGE for ${platforms[*]}"
  local IFS=,
  SOURCE_DATE_EPOCH=0 "$POLYARCH" build --progress plain -f "$REPO/manifests/base/busybox-ten/Dockerfile" \
    --platform "${platforms[*]}" --provenance=false -t "$TEN_BASE_IMAGE" --push "$ctx"
}

# The machine's configured Debian mirror (the first `deb` URI of its apt sources).
debian_mirror() {
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 | sed -E 's/^URIs:[[:space:]]*//; s/^deb (\[[^]]*\] )?//' | awk '{print $1}') || true
  echo "${uri:-http://deb.debian.org/debian}"
}

# A Debian bookworm minbase root filesystem as a tar (mmdebstrap --variant=minbase, about
# 170 MB: device nodes, hard links, setuid files), made once under $STATE/rootfs and reused.
# Sets ROOTFS_TAR. $1: Debian architecture (default amd64).
ensure_rootfs_tar() {
  local arch=${1:-amd64}
  ROOTFS_TAR="$STATE/rootfs/debian-minbase-$arch.tar"
  [ -s "$ROOTFS_TAR" ] && return 0
  mkdir -p "$STATE/rootfs"
  log "mmdebstrap --variant=minbase bookworm ($arch) into $ROOTFS_TAR"
  mmdebstrap --quiet --format=tar --variant=minbase --architectures="$arch" bookworm \
    "$ROOTFS_TAR.tmp" "$(debian_mirror)" >&2 || die "mmdebstrap failed" 4
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
}

# Everything the example and the tests need. $1: cargo profile.
setup_all() {
  need_root
  ensure_packages
  ensure_busybox_debs
  ensure_registry
  ensure_build "${1:-release}"
  ensure_binfmt
  ensure_base_image
}

# BuildKit, the peer benchmarks compare with: Debian's docker.io (dockerd 20.10 with BuildKit
# inside), started apart from everything else (its own data, exec root and socket under
# $STATE/buildkit; no iptables, no bridge: RUN steps need `--network none` or `host`). Sets
# BUILDKIT_DOCKER to a `docker` command line that talks to it (the 20.10 client, which still
# has `docker build` with BuildKit and `docker manifest`). For benchmarks only.
ensure_buildkit() {
  local d="$STATE/buildkit"
  PACKAGES+=(docker.io)
  ensure_packages
  BUILDKIT_DOCKER="env DOCKER_HOST=unix://$d/docker.sock DOCKER_BUILDKIT=1 DOCKER_CLI_EXPERIMENTAL=enabled DOCKER_CONFIG=$d/client /usr/bin/docker"
  if $BUILDKIT_DOCKER version >/dev/null 2>&1; then return 0; fi
  mkdir -p "$d/data" "$d/exec" "$d/client"
  log "starting dockerd (BuildKit) on unix://$d/docker.sock"
  setsid nohup /usr/sbin/dockerd --iptables=false --ip6tables=false --bridge=none \
    --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/pid" \
    -H "unix://$d/docker.sock" >"$d/log" 2>&1 </dev/null &
  local i
  for i in $(seq 1 100); do $BUILDKIT_DOCKER version >/dev/null 2>&1 && return 0; sleep 0.2; done
  tail -20 "$d/log" >&2
  die "dockerd did not start (see $d/log)" 4
}
