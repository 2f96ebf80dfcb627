# ADD of a Debian bookworm minbase root filesystem tar (mmdebstrap, about 170 MB: device nodes,
# hard links, setuid files) FROM scratch for linux/amd64 and linux/arm64/v8, built and pushed:
# polyarch against BuildKit (one `docker build --no-cache` per platform at once, `docker push`
# each, `docker manifest create` + `push`). Nothing runs under emulation: the cost is unpacking,
# copying and compressing the layer. polyarch starts each run from an empty state directory, so
# it compresses the layer every time; BuildKit's docker keeps what it pushed before (it knows the
# layer's compressed digest and the registry has it), so only its first run compresses: the
# comparison is conservative for polyarch.
bench_add_rootfs() {
  local ctx="$STATE/bench-add-rootfs" i
  ensure_buildkit
  ensure_rootfs_tar amd64
  mkdir -p "$ctx"
  ln -f "$ROOTFS_TAR" "$ctx/rootfs.tar" 2>/dev/null || cp "$ROOTFS_TAR" "$ctx/rootfs.tar"
  printf 'FROM scratch\nADD rootfs.tar /\n' > "$ctx/Dockerfile"
  local polyarch=() buildkit=()
  for i in $(seq 1 "$RUNS"); do
    local fresh; fresh=$(mktemp -d "$STATE/bench-state.XXXXXX")
    timed polyarch env POLYARCH_STATE_DIR="$fresh" "$POLYARCH" build --progress plain \
      --platform linux/amd64,linux/arm64/v8 -t "$REGISTRY/bench/polyarch:rootfs$i" --push "$ctx"
    rm -rf "$fresh"
    timed buildkit bash -c "
      $BUILDKIT_DOCKER build -q --no-cache --platform linux/amd64 \
        -t $REGISTRY/bench/buildkit:rootfs$i-amd64 $ctx >/dev/null & a=\$!
      $BUILDKIT_DOCKER build -q --no-cache --platform linux/arm64/v8 \
        -t $REGISTRY/bench/buildkit:rootfs$i-arm64 $ctx >/dev/null & b=\$!
      wait \$a && wait \$b &&
      $BUILDKIT_DOCKER push -q $REGISTRY/bench/buildkit:rootfs$i-amd64 >/dev/null &&
      $BUILDKIT_DOCKER push -q $REGISTRY/bench/buildkit:rootfs$i-arm64 >/dev/null &&
      $BUILDKIT_DOCKER manifest create --amend --insecure $REGISTRY/bench/buildkit:rootfs$i \
        $REGISTRY/bench/buildkit:rootfs$i-amd64 $REGISTRY/bench/buildkit:rootfs$i-arm64 >/dev/null &&
      $BUILDKIT_DOCKER manifest push --purge --insecure $REGISTRY/bench/buildkit:rootfs$i >/dev/null &&
      $BUILDKIT_DOCKER rmi -f $REGISTRY/bench/buildkit:rootfs$i-amd64 $REGISTRY/bench/buildkit:rootfs$i-arm64 >/dev/null"
    printf 'run %d: polyarch %.2fs  buildkit %.2fs\n' "$i" "${polyarch[-1]}" "${buildkit[-1]}"
  done
  report "ADD of a 170 MB root filesystem tar, two platforms, build+push" polyarch buildkit
}
