#!/bin/sh
# make-demo-hosts.sh: create a sample sniproxyd hosts directory (see sniproxyd.hosts(5)
# and contrib/hosts.example/README) with two names, an alias, a wildcard and _default:
#
#   example.com/tls-socket           backend A
#   example.net/tls-socket           backend B
#   www.example.com -> example.com   alias of example.com
#   *.apps.example.net/tls-socket -> ../example.net/tls-socket
#                                    wildcard, served by backend B
#   _default/tls-socket -> ../example.com/tls-socket
#                                    no SNI or an unknown name: backend A
#
# DIR is created if needed; it may hold other entries, but none of these five. Without
# SOCKET arguments, the backends create their sockets at DIR/example.com/tls-socket and
# DIR/example.net/tls-socket. With them, those two become symbolic links to the given
# sockets. The workers are chrooted into DIR, so a link must stay inside it: a socket
# inside DIR (in another entry) is linked relatively; one outside is refused unless -o
# is given, which is only useful for a test run of sniproxyd without root (no chroot).
#
# Portable sh; changes nothing outside DIR.

set -eu
set -f # no pathname expansion: one of the entries is named *.apps.example.net

prog=${0##*/}

usage() {
	echo "usage: $prog [-o] DIR [SOCKET-A [SOCKET-B]]" >&2
	exit 2
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

allow_outside=no
while getopts o opt; do
	case $opt in
	o) allow_outside=yes ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
	usage
fi

dir=$1
socket_a=${2-}
socket_b=${3-}

# An absolute, symlink-free path for an existing directory.
abs_dir() {
	(cd -- "$1" && pwd -P)
}

# An absolute path for a socket whose directory exists (the socket itself may not yet).
abs_socket() {
	sdir=$(dirname -- "$1")
	[ -d "$sdir" ] || die "$1: no such directory: $sdir"
	printf '%s/%s\n' "$(abs_dir "$sdir")" "$(basename -- "$1")"
}

entries="example.com example.net www.example.com *.apps.example.net _default"

if [ -e "$dir" ] || [ -L "$dir" ]; then
	[ -d "$dir" ] || die "$dir exists and is not a directory"
	for e in $entries; do
		if [ -e "$dir/$e" ] || [ -L "$dir/$e" ]; then
			die "$dir/$e already exists; choose a new directory"
		fi
	done
fi

# Resolve the socket paths first, relative to where we were started.
[ -z "$socket_a" ] || socket_a=$(abs_socket "$socket_a")
[ -z "$socket_b" ] || socket_b=$(abs_socket "$socket_b")

# The root as the chroot will see it, even before DIR exists.
if [ -d "$dir" ]; then
	root=$(abs_dir "$dir")
else
	parent=$(dirname -- "$dir")
	[ -d "$parent" ] || die "$parent: no such directory"
	root=$(abs_dir "$parent")/$(basename -- "$dir")
fi

# link_target SOCKET: what ENTRY/tls-socket should point to, or fail before any change.
link_target() {
	case $1 in
	"$root"/*)
		# Inside the tree: relative to the entry, so it resolves the same in the chroot.
		echo "../${1#"$root"/}"
		;;
	*)
		[ "$allow_outside" = yes ] ||
			die "$1 is outside $root: the chrooted workers cannot reach it" \
				"(create the socket inside the entry, bind-mount its directory, or use -o" \
				"for a test run without root)"
		echo "$prog: warning: $1 is outside the tree;" \
			"only a sniproxyd started without root can follow a link to it" >&2
		echo "$1"
		;;
	esac
}

link_a=''
link_b=''
[ -z "$socket_a" ] || link_a=$(link_target "$socket_a")
[ -z "$socket_b" ] || link_b=$(link_target "$socket_b")

umask 022
mkdir -p -- "$root"
mkdir -- "$root/example.com" "$root/example.net" "$root/*.apps.example.net" "$root/_default"
[ -z "$link_a" ] || ln -s -- "$link_a" "$root/example.com/tls-socket"
[ -z "$link_b" ] || ln -s -- "$link_b" "$root/example.net/tls-socket"
ln -s example.com "$root/www.example.com"
ln -s ../example.net/tls-socket "$root/*.apps.example.net/tls-socket"
ln -s ../example.com/tls-socket "$root/_default/tls-socket"

cat <<EOF
Created $root:
  example.com/tls-socket          ${socket_a:-(backend A creates it)}
  example.net/tls-socket          ${socket_b:-(backend B creates it)}
  www.example.com -> example.com
  *.apps.example.net/tls-socket -> ../example.net/tls-socket
  _default/tls-socket -> ../example.com/tls-socket

Next steps:
  - start the backends; for a test, in each of example.com and example.net:
      umask 007; openssl s_server -unix tls-socket -unlink -www -cert CERT -key KEY
    (the worker user must be able to write the sockets: see sniproxyd.hosts(5))
  - check:  sniproxyctl check $root
  - try:    sniproxyd -d -v -w 1 -H $root -l 127.0.0.1:8443
            openssl s_client -connect 127.0.0.1:8443 -servername www.example.com
EOF
