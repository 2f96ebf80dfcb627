# Rebuilds of manifests/examples/rebuild (dependencies installed before the source is copied,
# as the Docker guide teaches) for linux/amd64 + linux/arm64/v8 (qemu), built and pushed:
#  - unchanged: polyarch with its step cache against its own cold build (--no-cache), and
#    buildah build --layers and BuildKit rebuilding the same unchanged context;
#  - one source file changed (src/main.sh): the install step must stay cached; polyarch
#    against buildah build --layers and BuildKit on the same change.
# Each tool keeps its own cache between runs (warmed once before the first run).
bench_rebuild() {
  local platforms=linux/amd64,linux/arm64/v8 i
  ensure_buildkit
  local ctx; ctx=$(mktemp -d)
  cp -a "$REPO/manifests/examples/rebuild/." "$ctx/"
  local pc=() pr=() br=() kr=() pchg=() bchg=() kchg=()
  pa() { "$POLYARCH" build --progress plain --platform "$platforms" -t "$REGISTRY/bench/rebuild:$1" --push "${@:2}" "$ctx"; }
  ba() {
    buildah manifest rm "bench-rebuild" >/dev/null 2>&1 || true
    buildah build --quiet --layers --isolation chroot --platform "$platforms" --manifest bench-rebuild "$ctx" >/dev/null &&
      buildah manifest push --quiet --all --format oci --tls-verify=false bench-rebuild "docker://$REGISTRY/bench/rebuild-buildah:$1"
  }
  bk() {
    local t=$REGISTRY/bench/rebuild-buildkit:$1
    $BUILDKIT_DOCKER build -q --network none --platform linux/amd64 -t "$t-amd64" "$ctx" >/dev/null & local a=$!
    $BUILDKIT_DOCKER build -q --network none --platform linux/arm64/v8 -t "$t-arm64" "$ctx" >/dev/null & local b=$!
    wait $a && wait $b &&
      $BUILDKIT_DOCKER push -q "$t-amd64" >/dev/null && $BUILDKIT_DOCKER push -q "$t-arm64" >/dev/null &&
      $BUILDKIT_DOCKER manifest create --amend --insecure "$t" "$t-amd64" "$t-arm64" >/dev/null &&
      $BUILDKIT_DOCKER manifest push --purge --insecure "$t" >/dev/null
  }
  log "warming each tool's cache"
  pa warm >/dev/null 2>&1 || die "polyarch warm-up failed" 1
  ba warm >/dev/null 2>&1 || die "buildah warm-up failed" 1
  bk warm >/dev/null 2>&1 || die "BuildKit warm-up failed" 1
  for i in $(seq 1 "$RUNS"); do
    timed pc pa "cold$i" --no-cache
    timed pr pa "same$i"
    timed br ba "same$i"
    timed kr bk "same$i"
    printf 'echo "change %s"\n' "$i-$RANDOM" >> "$ctx/src/main.sh"
    timed pchg pa "change$i"
    printf 'echo "change %s"\n' "$i-$RANDOM" >> "$ctx/src/main.sh"
    timed bchg ba "change$i"
    printf 'echo "change %s"\n' "$i-$RANDOM" >> "$ctx/src/main.sh"
    timed kchg bk "change$i"
    printf 'run %d: cold %.2fs, unchanged %.2fs (buildah %.2fs, buildkit %.2fs); one file changed %.2fs (buildah %.2fs, buildkit %.2fs)\n' \
      "$i" "${pc[-1]}" "${pr[-1]}" "${br[-1]}" "${kr[-1]}" "${pchg[-1]}" "${bchg[-1]}" "${kchg[-1]}"
  done
  # shellcheck disable=SC2034 # read by report through namerefs
  local polyarch_unchanged=("${pr[@]}") polyarch_cold=("${pc[@]}") buildah_unchanged=("${br[@]}") \
    buildkit_unchanged=("${kr[@]}") polyarch_one_file=("${pchg[@]}") buildah_one_file=("${bchg[@]}") \
    buildkit_one_file=("${kchg[@]}")
  report "unchanged two-platform rebuild+push" polyarch_unchanged polyarch_cold buildah_unchanged buildkit_unchanged
  report "one-source-file change, two platforms, rebuild+push" polyarch_one_file buildah_one_file buildkit_one_file
  rm -rf "$ctx"
}
