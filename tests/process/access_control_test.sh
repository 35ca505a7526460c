#!/usr/bin/env bash
# Process test: who may reach feosd's API. The real feosd (on an empty fake host: no VM, no guest
# needed) and the real feosctl.
# - Unix socket: 0600 owned by root by default, so another user (nobody) cannot connect; with
#   --socket-group it is 0660 root:GROUP and that group's members can; an unknown group, a symbolic
#   link or a non-socket file at the socket path, or a directory others could write refuse startup.
# - TCP: --listen-plaintext only on loopback addresses (others refuse startup), reachable by any
#   local user; --listen without --tls-cert/--tls-key/--tls-client-ca refuses startup, as do unreadable or
#   mismatched TLS files; with TLS, only a client certificate from --tls-client-ca's CA gets in: no
#   certificate, another CA's certificate and plaintext all fail, and the client checks the server's
#   certificate (name and CA) too; feosctl refuses unreadable, malformed or mismatched --tls-* files
#   as usage errors (exit 2).
# Certificates are made here with openssl (nothing is checked in). Needs root (setpriv, groupadd).
# Usage: access_control_test.sh BIN_DIR     Exit 77 (skipped) when not root.
BIN=$(cd "$1" && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (runs feosctl as nobody, creates a group)"
  exit 77
fi
. "$(dirname "$0")/lib.sh"

# Other users must be able to reach the sockets' directories: then only the socket's own mode keeps
# them out. feosctl is copied where nobody may execute it.
chmod 0711 "$WORK"
install -m 0755 "$BIN/feosctl" "$WORK/feosctl"
mkdir -p "$WORK/sys" "$WORK/dev"
HOST_ARGS=(--sysfs-root "$WORK/sys" --dev-root "$WORK/dev" --pci-ids "$WORK/no-pci.ids")

GROUP=feos-test-$$
if groupadd -r "$GROUP" 2>/dev/null; then
  trap 'cleanup; groupdel "$GROUP" 2>/dev/null || true' EXIT
else
  GROUP=daemon  # no groupadd: a system group that nobody is not in
fi
GID=$(getent group "$GROUP" | cut -d: -f3)

# serve ARGS...: start feosd on $SOCK with the fake host and ARGS; a daemon that does not come up
# is a failed check and ends the test.
serve() {
  start_daemon "${HOST_ARGS[@]}" "$@" || { fail "feosd did not start${*:+ with $*}"; finish; }
}

# as_nobody [--groups GID] ARGS...: feosctl as user nobody, group nogroup, no other groups unless
# --groups gives some.
as_nobody() {
  local groups=(--clear-groups)
  if [ "$1" = --groups ]; then groups=(--groups "$2"); shift 2; fi
  setpriv --reuid=nobody --regid=nogroup "${groups[@]}" "$WORK/feosctl" --timeout 5 "$@"
}

# expect_refused WHAT MESSAGE FEOSD_ARGS...: feosd must exit non-zero at startup, saying MESSAGE,
# and leave no socket behind.
expect_refused() {
  local what=$1 message=$2 out rc=0
  shift 2
  rm -rf "$WORK/neg-state"
  out=$(timeout 20 "$BIN/feosd" --state-dir "$WORK/neg-state" --accel tcg "${HOST_ARGS[@]}" "$@" 2>&1) || rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qF -- "$message" <<<"$out"; then
    pass "$what: feosd refused ($(grep -F -- "$message" <<<"$out" | head -1 | sed 's/^.*\] //'))"
  else
    fail "$what: expected exit != 0 with '$message', got rc=$rc: $(tail -3 <<<"$out")"
  fi
}

# expect_ctl_fails WHAT OUTPUT_PATTERN SERVER_REASON FEOSCTL_ARGS...: feosctl must exit 3
# (unreachable), with a one-line UNAVAILABLE error matching the extended regex OUTPUT_PATTERN; when
# SERVER_REASON is not empty, feosd's log must show that it refused the handshake for that reason.
expect_ctl_fails() {
  local what=$1 pattern=$2 reason=$3 out rc=0 seen
  shift 3
  seen=$(wc -l <"$WORK/feosd.log")
  out=$("$BIN/feosctl" --timeout 5 "$@" 2>&1) || rc=$?
  if [ $rc -ne 3 ] || ! grep -qE "^feosctl: error: UNAVAILABLE: .*($pattern)" <<<"$out" \
      || [ "$(wc -l <<<"$out")" -ne 1 ]; then
    fail "$what: expected exit 3 and /$pattern/, got rc=$rc: $out"
  elif [ -n "$reason" ] && ! tail -n +$((seen + 1)) "$WORK/feosd.log" | grep -qF "$reason"; then
    fail "$what: feosd's log does not say '$reason': $(tail -n +$((seen + 1)) "$WORK/feosd.log")"
  else
    pass "$what: exit 3${reason:+, feosd says '$reason'} ($out)"
  fi
}

# --- certificates: CA, server (127.0.0.1 and localhost), client; another CA with its client ---
PKI=$WORK/pki
mkdir -p "$PKI"
EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
make_ca() {  # NAME
  openssl req -x509 "${EC[@]}" -keyout "$PKI/$1.key" -out "$PKI/$1.pem" -days 2 \
    -subj "/CN=feos test $1" 2>>"$PKI/openssl.log"
}
make_cert() {  # NAME CA EXTENSIONS
  printf '%b' "$3" >"$PKI/$1.ext"
  openssl req "${EC[@]}" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "/CN=feos test $1" \
    2>>"$PKI/openssl.log"
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$2.pem" -CAkey "$PKI/$2.key" -CAcreateserial \
    -out "$PKI/$1.pem" -days 2 -extfile "$PKI/$1.ext" 2>>"$PKI/openssl.log"
}
if make_ca ca && make_cert server ca 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' \
    && make_cert client ca 'extendedKeyUsage=clientAuth\n' && make_ca other-ca \
    && make_cert other-client other-ca 'extendedKeyUsage=clientAuth\n'; then
  log "certificates made with $(openssl version)"
else
  fail "openssl could not make the test certificates: $(tail -5 "$PKI/openssl.log")"
  finish
fi
SERVER_TLS=(--tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key" --tls-client-ca "$PKI/ca.pem")
PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# --- the unix socket: default 0600 root only ---
serve
perms=$(stat -c '%a %U %G' "$SOCK" 2>&1 || true)
[ "$perms" = "600 root root" ] && pass "default socket is 0600 root:root" || fail "default socket: $perms"
out=$(as_nobody --socket "$SOCK" vm list 2>&1) && rc=0 || rc=$?
[ $rc -eq 3 ] && grep -q "Permission denied" <<<"$out" \
  && pass "nobody cannot use the default socket: exit 3 ($out)" || fail "nobody on the 0600 socket: rc=$rc $out"
stop_daemon

# --- --socket-group: 0660 root:GROUP; members get in, others still do not ---
serve --socket-group "$GROUP"
perms=$(stat -c '%a %U %G' "$SOCK" 2>&1 || true)
[ "$perms" = "660 root $GROUP" ] && pass "--socket-group $GROUP: socket is 0660 root:$GROUP" \
  || fail "--socket-group socket: $perms"
out=$(as_nobody --groups "$GID" --socket "$SOCK" vm list 2>&1) && rc=0 || rc=$?
[ $rc -eq 0 ] && pass "nobody in group $GROUP lists VMs" || fail "nobody in $GROUP: rc=$rc $out"
out=$(as_nobody --socket "$SOCK" vm list 2>&1) && rc=0 || rc=$?
[ $rc -eq 3 ] && grep -q "Permission denied" <<<"$out" \
  && pass "nobody outside group $GROUP is still refused: exit 3" || fail "nobody outside $GROUP: rc=$rc $out"
# A restart replaces the stale socket of the previous daemon (and a live one is never taken over).
out=$(timeout 20 "$BIN/feosd" --socket "$SOCK" --state-dir "$WORK/state-2" "${HOST_ARGS[@]}" 2>&1) && rc=0 || rc=$?
[ $rc -ne 0 ] && grep -q "another server listens on $SOCK" <<<"$out" \
  && pass "a second feosd does not take over a live socket" || fail "live socket takeover: rc=$rc $out"
stop_daemon KILL
serve
[ "$(stat -c '%a %G' "$SOCK")" = "600 root" ] && pass "restart replaces the stale socket, back to 0600 root" \
  || fail "after restart: $(stat -c '%a %U %G' "$SOCK")"
stop_daemon

# --- startup refusals ---
expect_refused "unknown --socket-group" "--socket-group: no such group 'feos-no-such-group-$$'" \
  --socket "$WORK/neg.sock" --socket-group "feos-no-such-group-$$"
ln -s /etc/hostname "$WORK/link.sock"
expect_refused "symlink at the socket path" "is a symbolic link; refusing to replace it" --socket "$WORK/link.sock"
[ -L "$WORK/link.sock" ] && pass "the symlink is left alone" || fail "the symlink at the socket path was removed"
echo keep >"$WORK/file.sock"
expect_refused "regular file at the socket path" "exists and is not a socket; refusing to replace it" \
  --socket "$WORK/file.sock"
[ "$(cat "$WORK/file.sock")" = keep ] && pass "the file is left alone" || fail "the file at the socket path changed"
mkdir -m 0777 "$WORK/open" && chmod 0777 "$WORK/open"
expect_refused "world-writable socket directory" "is writable by other users and not sticky" \
  --socket "$WORK/open/feosd.sock"
expect_refused "--listen without TLS" \
  "--listen requires TLS: --tls-cert, --tls-key and --tls-client-ca (clients must present certificates)" \
  --socket "$WORK/neg.sock" --listen "127.0.0.1:$PORT"
expect_refused "--listen without a client CA" "--listen requires TLS" \
  --socket "$WORK/neg.sock" --listen "127.0.0.1:$PORT" --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key"
expect_refused "TLS files without --listen" "only apply to --listen" --socket "$WORK/neg.sock" "${SERVER_TLS[@]}"
expect_refused "missing --tls-cert file" "--tls-cert: read $PKI/missing.pem: No such file or directory" \
  --socket "$WORK/neg.sock" --listen "127.0.0.1:$PORT" --tls-cert "$PKI/missing.pem" --tls-key "$PKI/server.key" \
  --tls-client-ca "$PKI/ca.pem"
expect_refused "key of another certificate" "--tls-key: $PKI/client.key does not match the certificate in --tls-cert" \
  --socket "$WORK/neg.sock" --listen "127.0.0.1:$PORT" --tls-cert "$PKI/server.pem" --tls-key "$PKI/client.key" \
  --tls-client-ca "$PKI/ca.pem"
expect_refused "client CA file without a certificate" "--tls-client-ca: $PKI/server.key is not a PEM certificate file" \
  --socket "$WORK/neg.sock" --listen "127.0.0.1:$PORT" --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key" \
  --tls-client-ca "$PKI/server.key"
[ ! -e "$WORK/neg.sock" ] && pass "no refused feosd left a socket" || fail "a refused feosd created $WORK/neg.sock"

# --- TCP with TLS and client certificates ---
SOCK=$WORK/run/sub/feosd.sock  # a missing directory: created 0755
serve --listen "127.0.0.1:$PORT" "${SERVER_TLS[@]}"
[ "$(stat -c '%a %U' "$WORK/run/sub")" = "755 root" ] && pass "missing socket directory created 0755" \
  || fail "socket directory: $(stat -c '%a %U' "$WORK/run/sub")"
CLIENT=(--tls-ca "$PKI/ca.pem" --tls-cert "$PKI/client.pem" --tls-key "$PKI/client.key")
out=$("$BIN/feosctl" --timeout 5 --address "127.0.0.1:$PORT" "${CLIENT[@]}" vm list 2>&1) && rc=0 || rc=$?
[ $rc -eq 0 ] && pass "client certificate of the CA: vm list over TLS" || fail "TLS vm list: rc=$rc $out"
out=$("$BIN/feosctl" --timeout 5 --address "localhost:$PORT" "${CLIENT[@]}" -o json vm list 2>&1) && rc=0 || rc=$?
[ $rc -eq 0 ] && pass "server certificate matches DNS:localhost" || fail "localhost: rc=$rc $out"
out=$("$BIN/feosctl" --timeout 5 --address "127.0.0.1:$PORT" "${CLIENT[@]}" --tls-server-name localhost vm list 2>&1) \
  && rc=0 || rc=$?
[ $rc -eq 0 ] && pass "--tls-server-name localhost" || fail "--tls-server-name localhost: rc=$rc $out"
expect_ctl_fails "no client certificate" "Socket closed" "peer did not return a certificate" \
  --address "127.0.0.1:$PORT" --tls-ca "$PKI/ca.pem" vm list
expect_ctl_fails "client certificate of another CA" "Socket closed" "certificate verify failed" \
  --address "127.0.0.1:$PORT" --tls-ca "$PKI/ca.pem" --tls-cert "$PKI/other-client.pem" \
  --tls-key "$PKI/other-client.key" vm list
expect_ctl_fails "plaintext client" "connection to 127.0.0.1:$PORT failed: .*Socket closed" \
  "wrong version number" --address "127.0.0.1:$PORT" vm list
expect_ctl_fails "server certificate not from the client's CA" "Ssl handshake failed.*certificate verify failed" "" \
  --address "127.0.0.1:$PORT" --tls-ca "$PKI/other-ca.pem" --tls-cert "$PKI/client.pem" \
  --tls-key "$PKI/client.key" vm list
expect_ctl_fails "server name not in the certificate" "Peer name feosd.example is not in peer certificate" "" \
  --address "127.0.0.1:$PORT" "${CLIENT[@]}" --tls-server-name feosd.example vm list
# expect_ctl_usage WHAT MESSAGE FEOSCTL_ARGS...: feosctl must exit 2 with INVALID_ARGUMENT: MESSAGE.
expect_ctl_usage() {
  local what=$1 message=$2 out rc=0
  shift 2
  out=$("$BIN/feosctl" --timeout 5 "$@" 2>&1) || rc=$?
  [ $rc -eq 2 ] && grep -qF "feosctl: error: INVALID_ARGUMENT: $message" <<<"$out" \
    && pass "$what: usage error, exit 2 ($out)" || fail "$what: expected exit 2 and '$message', got rc=$rc: $out"
}
printf -- '-----BEGIN PRIVATE KEY-----\nAAAAgarbage\n-----END PRIVATE KEY-----\n' >"$PKI/garbage.key"
expect_ctl_usage "missing --tls-ca file" "--tls-ca: cannot read '$PKI/missing.pem'" \
  --address "127.0.0.1:$PORT" --tls-ca "$PKI/missing.pem" vm list
expect_ctl_usage "malformed --tls-key" "--tls-key is not an unencrypted PEM private key" \
  --address "127.0.0.1:$PORT" --tls-ca "$PKI/ca.pem" --tls-cert "$PKI/client.pem" --tls-key "$PKI/garbage.key" vm list
expect_ctl_usage "--tls-key of another certificate" "--tls-key does not match the certificate in --tls-cert" \
  --address "127.0.0.1:$PORT" --tls-ca "$PKI/ca.pem" --tls-cert "$PKI/client.pem" \
  --tls-key "$PKI/other-client.key" vm list
ctl vm list >/dev/null && pass "the unix socket still serves beside TLS" || fail "unix socket with --listen"
out=$("$BIN/feosctl" --timeout 5 --address "127.0.0.1:$PORT" "${CLIENT[@]}" vm list 2>&1) && rc=0 || rc=$?
[ $rc -eq 0 ] && pass "TLS still serves after the refused clients" || fail "TLS after refusals: rc=$rc $out"
stop_daemon

# --- plaintext TCP for FeOS's clients: loopback only ---
for addr in "0.0.0.0:$PORT" "192.0.2.1:$PORT" "[::]:$PORT" "feosd.example:$PORT" "127.0.0.1:0" "127.0.0.1"; do
  expect_refused "--listen-plaintext $addr" "--listen-plaintext $addr: " --socket "$WORK/neg.sock" \
    --listen-plaintext "$addr"
done
SOCK=$WORK/plain.sock
serve --listen-plaintext "localhost:$PORT"
out=$("$BIN/feosctl" --timeout 5 --address "127.0.0.1:$PORT" vm list 2>&1) && rc=0 || rc=$?
[ $rc -eq 0 ] && pass "--listen-plaintext localhost: plaintext vm list on 127.0.0.1" || fail "plaintext vm list: rc=$rc $out"
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$WORK/feosctl" --timeout 5 --address "127.0.0.1:$PORT" vm list 2>&1) \
  && rc=0 || rc=$?
[ $rc -eq 0 ] && pass "... which any local user reaches (the documented trade-off)" || fail "nobody over plaintext: rc=$rc $out"
stop_daemon

finish
