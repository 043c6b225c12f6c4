#!/bin/sh
# demo.sh: installs what is missing, builds, and runs sniproxyd on 127.0.0.1:8443 in front
# of two real TLS backends (openssl s_server) on Unix sockets in a demo hosts directory.
#   sh scripts/demo.sh         start (or restart) the demo
#   sh scripts/demo.sh stop    stop it
# DEMO_DIR (default /tmp/sniproxyd-demo) and DEMO_PORT (default 8443) can be overridden.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
demo=${DEMO_DIR:-/tmp/sniproxyd-demo}
port=${DEMO_PORT:-8443}

stop() {
    for pidfile in "$demo"/*.pid; do
        [ -f "$pidfile" ] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    sleep 0.5
}

if [ "${1:-}" = stop ]; then
    stop
    echo "demo stopped"
    exit 0
fi

sh scripts/deps.sh
sh scripts/build.sh
stop
rm -rf "$demo"
mkdir -p "$demo/hosts"
chmod 755 "$demo" "$demo/hosts"

# One backend per name, each with its own self-signed certificate, so you can see which
# one answered. s_server cannot bind long Unix paths: bind short, then move into place.
backend() { # NAME DIRECTORY
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=$1" -addext "subjectAltName=DNS:$1,DNS:*.$1" \
        -keyout "$demo/$2.key" -out "$demo/$2.crt" 2>/dev/null
    short=$(mktemp -u /tmp/sdXXXXXX)
    nohup openssl s_server -quiet -www -unix "$short" -cert "$demo/$2.crt" \
        -key "$demo/$2.key" >"$demo/$2.log" 2>&1 &
    echo $! >"$demo/$2.pid"
    i=0
    while [ ! -S "$short" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    mkdir -p "$demo/hosts/$2"
    chmod 755 "$demo/hosts/$2"
    mv "$short" "$demo/hosts/$2/tls-socket"
    chmod 666 "$demo/hosts/$2/tls-socket" # the worker user must be able to connect
}
backend demo.example demo.example
backend other.example other.example
backend default.example _default
ln -s demo.example "$demo/hosts/www.demo.example"

user_flag=""
if [ "$(id -u)" -eq 0 ]; then
    id _sniproxyd >/dev/null 2>&1 ||
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin _sniproxyd
    user_flag="-u _sniproxyd"
fi

# shellcheck disable=SC2086 # $user_flag is empty or two words
"$top/src/sniproxyctl" check $user_flag "$demo/hosts" || true
# -d keeps the log on stderr (a fresh container has no syslog daemon); nohup detaches it.
# shellcheck disable=SC2086
nohup "$top/src/sniproxyd" -d $user_flag -H "$demo/hosts" -l "127.0.0.1:$port" -w 2 \
    >"$demo/sniproxyd.log" 2>&1 &
echo $! >"$demo/sniproxyd.pid"
sleep 1
if ! kill -0 "$(cat "$demo/sniproxyd.pid")" 2>/dev/null; then
    cat "$demo/sniproxyd.log"
    echo "demo: sniproxyd did not start (is port $port taken? try DEMO_PORT=9443)" >&2
    exit 1
fi

echo
echo "== sniproxyd is running on 127.0.0.1:$port (pid $(cat "$demo/sniproxyd.pid"))"
echo "== a request through it, to the backend of demo.example:"
curl -sk --max-time 5 --resolve "demo.example:$port:127.0.0.1" "https://demo.example:$port/" |
    grep -m1 -o 's_server .*-cert [^ ]*' || { echo "demo: the request failed; see $demo/sniproxyd.log"; exit 1; }
cat <<MSG

Try it:
  curl -vk --resolve demo.example:$port:127.0.0.1 https://demo.example:$port/
  curl -vk --resolve www.demo.example:$port:127.0.0.1 https://www.demo.example:$port/   (alias)
  curl -vk --resolve other.example:$port:127.0.0.1 https://other.example:$port/
  openssl s_client -connect 127.0.0.1:$port -servername unknown.example    (goes to _default)
Each backend answers with its own certificate (CN=demo.example, other.example, default.example).
Hosts directory: $demo/hosts   (add a host: mkdir NAME, put its tls-socket there; no restart)
Log, one line per connection: tail -f $demo/sniproxyd.log
Stop: sh scripts/demo.sh stop
MSG
