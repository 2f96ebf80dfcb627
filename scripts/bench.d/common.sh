# Helpers shared by the benchmark cases (sourced by scripts/bench).
export BUILDAH_ISOLATION=chroot
# buildah reads and pushes to the loopback registry over plain HTTP.
BUILDAH_REGCONF=$(mktemp)
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REGISTRY" > "$BUILDAH_REGCONF"
export CONTAINERS_REGISTRIES_CONF=$BUILDAH_REGCONF
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# timed VAR CMD...: runs CMD (output discarded), appends its wall time in seconds to array VAR;
# a failing command stops the benchmark with its output.
timed() {
  local -n _acc=$1; shift
  local t0 t1 out
  t0=$(now)
  if ! out=$("$@" 2>&1); then printf '%s\n' "$out" | tail -20 >&2; die "benchmark command failed: $*" 1; fi
  t1=$(now)
  _acc+=("$(echo "$t1 - $t0" | bc -l)")
}
# report NAME BASE_ARRAY OTHER_ARRAY...: medians and ratios BASE/OTHER, e.g.
#   report "cold build" polyarch buildah buildkit
report() {
  local name=$1 base=$2; shift 2
  local -n _b=$base
  local mb; mb=$(printf '%s\n' "${_b[@]}" | median)
  local line; line=$(printf '%s: %s %.2fs' "$name" "$base" "$mb")
  local other
  for other in "$@"; do
    local -n _o=$other
    local mo; mo=$(printf '%s\n' "${_o[@]}" | median)
    line+=$(printf ', %s %.2fs (ratio %s/%s %.2f)' "$other" "$mo" "$base" "$other" "$(echo "$mb / $mo" | bc -l)")
  done
  printf 'median of %d runs, %s\n' "${#_b[@]}" "$line"
}
