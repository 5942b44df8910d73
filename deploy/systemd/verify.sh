#!/bin/sh
# verify.sh checks weir.service as systemd would load it, without
# installing it or needing systemd to run: systemd-analyze verify (syntax,
# unknown settings, that the binaries it runs exist) and an offline
# security review whose exposure must stay at most 2.0 (of 10).
#
#	deploy/systemd/verify.sh [WEIR-BINARY]
#
# verify looks for /usr/local/bin/weir, so a copy of the unit is checked
# with that path replaced by WEIR-BINARY, or by a weir built here when it
# is not given. Any warning fails the check. CI (.ci/run) runs it, and so
# does the deploy package's test when systemd-analyze is installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v systemd-analyze >/dev/null || {
	echo "verify.sh: systemd-analyze is not installed (Debian: apt-get install systemd)" >&2
	exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${1:-}
if [ -z "$bin" ]; then
	(cd "$root" && go build -o "$tmp/weir" ./cmd/weir)
	bin=$tmp/weir
fi
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
sed "s|/usr/local/bin/weir|$bin|g" "$here/weir.service" >"$tmp/weir.service"
if ! out=$(systemd-analyze verify "$tmp/weir.service" 2>&1); then
	printf 'verify.sh: systemd-analyze verify failed on deploy/systemd/weir.service:\n%s\n' "$out" >&2
	exit 1
fi
if [ -n "$out" ]; then
	printf 'verify.sh: systemd-analyze verify warned about deploy/systemd/weir.service:\n%s\n' "$out" >&2
	exit 1
fi
if ! systemd-analyze security --offline=yes --threshold=20 "$tmp/weir.service" >"$tmp/security" 2>&1; then
	cat "$tmp/security" >&2
	echo "verify.sh: deploy/systemd/weir.service is less hardened than it was (exposure above 2.0): see the ✗ lines above" >&2
	exit 1
fi
echo "deploy/systemd/weir.service: $(grep -o 'Overall exposure level.*' "$tmp/security")"
