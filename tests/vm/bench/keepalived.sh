# tests/vm/bench/keepalived.sh -- sourced by the VM benchmarks (tests/vm/bench/run, tests/vm/bench/health).
# Needs KA_DIR (where to extract), and say / die from the caller. Defines KA_BIN, KA_LIBS and
# prepare_keepalived, which fetches Debian's keepalived once (apt-get download + dpkg-deb -x; nothing is
# installed) and checks that it runs.
# ------------------------------------------------------------- keepalived
# Debian's keepalived and the shared libraries it needs that the host does not
# have, extracted (not installed): the VM sees the host filesystem, so the
# binary runs there with LD_LIBRARY_PATH pointing at the extracted libs.
KA_BIN="$KA_DIR/usr/sbin/keepalived"
KA_LIBS="$KA_DIR/usr/lib/x86_64-linux-gnu"
ka_ok() {
  [ -f "$KA_DIR/.complete" ] && [ -x "$KA_BIN" ] || return 1
  local out; out=$(LD_LIBRARY_PATH="$KA_LIBS" ldd "$KA_BIN" 2>&1) || return 1
  case "$out" in *'not found'*) return 1 ;; esac
}
prepare_keepalived() {
  ka_ok && return 0
  command -v apt-get >/dev/null || die "apt-get not found: keepalived comes from Debian's package"
  say "fetching Debian's keepalived into $KA_DIR"
  mkdir -p "$(dirname "$KA_DIR")"
  local tmp; tmp=$(mktemp -d "$(dirname "$KA_DIR")/.keepalived.XXXXXX")
  # keepalived, its libraries, and those of libsnmp40 (which pulls most)
  local want=(keepalived libnftnl11 libsnmp40 libpci3 libwrap0 libsensors5)
  local dep
  for dep in $(apt-cache depends keepalived libsnmp40 2>/dev/null \
                 | sed -n 's/^ *Depends: \(lib[^ <>]*\)$/\1/p' | sort -u); do
    want+=("$dep")
  done
  local pkgs=() p st
  for p in $(printf '%s\n' "${want[@]}" | sort -u); do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    # the libraries the host already has are used from the host
    if [ "$p" = keepalived ] || [ "$st" != installed ]; then pkgs+=("$p"); fi
  done
  if ! (cd "$tmp" && apt-get download -qq "${pkgs[@]}" </dev/null >/dev/null 2>&1); then
    say "apt-get update (package lists missing or stale)"
    apt-get update -qq </dev/null >/dev/null || { rm -rf "$tmp"; die "apt-get update failed"; }
    (cd "$tmp" && apt-get download -qq "${pkgs[@]}" </dev/null >/dev/null) \
      || { rm -rf "$tmp"; die "apt-get download ${pkgs[*]} failed"; }
  fi
  mkdir -p "$tmp/root"
  local deb
  for deb in "$tmp"/*.deb; do
    dpkg-deb -x "$deb" "$tmp/root" || { rm -rf "$tmp"; die "dpkg-deb -x $deb failed"; }
  done
  local missing
  missing=$(LD_LIBRARY_PATH="$tmp/root/usr/lib/x86_64-linux-gnu" ldd "$tmp/root/usr/sbin/keepalived" 2>&1 \
              | grep 'not found' || true)
  if [ -n "$missing" ]; then
    rm -rf "$tmp"
    die "keepalived still lacks shared libraries after extracting ${pkgs[*]}:"$'\n'"$missing"
  fi
  touch "$tmp/root/.complete"
  rm -rf "$KA_DIR"
  mv "$tmp/root" "$KA_DIR"
  rm -rf "$tmp"
  ka_ok || die "keepalived in $KA_DIR does not run"
}
