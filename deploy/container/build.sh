#!/bin/sh
# build.sh builds the Weir container image with podman (or buildah, or
# docker), without a registry: the static binary is built here with the
# repository's build.sh (CGO_ENABLED=0, version and commit stamped), and
# the image is FROM scratch.
#
#	deploy/container/build.sh [TAG]      # default TAG: weir:VERSION (git describe)
#
# WEIR_BINARY=path uses a static binary built already instead. CA_FILE
# (default /etc/ssl/certs/ca-certificates.crt, Debian's ca-certificates)
# is the CA bundle copied into the image for https origins. The tool is
# the first of podman, buildah and docker found, or $CONTAINER_TOOL.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ca=${CA_FILE:-/etc/ssl/certs/ca-certificates.crt}
tool=${CONTAINER_TOOL:-}
if [ -z "$tool" ]; then
	for t in podman buildah docker; do
		if command -v "$t" >/dev/null; then tool=$t; break; fi
	done
fi
[ -n "$tool" ] || { echo "build.sh: no podman, buildah or docker (Debian: apt-get install podman)" >&2; exit 1; }
[ -r "$ca" ] || { echo "build.sh: no CA bundle at $ca for https origins (Debian: apt-get install ca-certificates, or set CA_FILE)" >&2; exit 1; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
if [ -n "${WEIR_BINARY:-}" ]; then
	cp "$WEIR_BINARY" "$ctx/weir"
else
	CGO_ENABLED=0 "$root/build.sh" -o "$ctx/weir"
fi
# FROM scratch has no C library: the binary must not need one.
if ! go version -m "$ctx/weir" | grep -q 'CGO_ENABLED=0'; then
	echo "build.sh: ${WEIR_BINARY:-the binary} was not built with CGO_ENABLED=0, so it needs a C library the image does not have" >&2
	exit 1
fi
version=$("$ctx/weir" version | awk '{print $2}')
cp "$ca" "$ctx/ca-certificates.crt"
cp "$here/Containerfile" "$ctx/Containerfile"
tag=${1:-weir:$version}
case $tool in
	buildah) buildah bud --build-arg "VERSION=$version" -t "$tag" -f "$ctx/Containerfile" "$ctx" ;;
	*) "$tool" build --build-arg "VERSION=$version" -t "$tag" -f "$ctx/Containerfile" "$ctx" ;;
esac
echo "$tag"
