# The fan-out of one build over the ten platforms of Docker's official images (issue 16): a
# CPU-bound step (a busybox shell loop; under qemu for the eight emulated platforms) built for
# all ten in one invocation, against the sum of the same ten built one at a time. Both cold
# (--no-cache, a changing build arg), written as OCI layouts (no push, so it is the steps that
# count). Target: the ten at once take at most 0.6x the sum (both cores busy). Needs the
# ten-platform base (scripts/lib.sh ensure_ten_base_image). POLYARCH_BENCH_LOOP sets the loop's
# length (default 40000 iterations).
bench_ten_platforms() {
  ensure_ten_base_image
  local ctx; ctx=$(mktemp -d)
  local n=${POLYARCH_BENCH_LOOP:-40000} entry all=() platforms=() i
  cat > "$ctx/Dockerfile" <<DF
FROM $TEN_BASE_IMAGE
ARG RUN_ID
RUN i=0; while [ \$i -lt $n ]; do i=\$((i+1)); done; echo "\$RUN_ID \$i" > /done
DF
  for entry in "${TEN_PLATFORMS[@]}"; do platforms+=("${entry#*:}"); done
  local IFS=,; local list="${platforms[*]}"; unset IFS
  local sum=()
  one() { "$POLYARCH" build --progress plain --no-cache --build-arg "RUN_ID=$2" --platform "$1" \
    --output "type=oci,dest=$ctx/out-$RANDOM" "$ctx"; }
  for i in $(seq 1 "$RUNS"); do
    local id="$i-$RANDOM$RANDOM" t=0 p one_t=()
    timed all one "$list" "$id"
    for p in "${platforms[@]}"; do
      timed one_t one "$p" "$id"
      t=$(echo "$t + ${one_t[-1]}" | bc -l)
    done
    sum+=("$t")
    printf 'run %d: ten at once %.2fs, one at a time %.2fs (sum; ratio %.2f)\n' "$i" "${all[-1]}" "$t" \
      "$(echo "${all[-1]} / $t" | bc -l)"
    rm -rf "$ctx"/out-*
  done
  report "ten platforms, CPU-bound step" all sum
  rm -rf "$ctx"
}
