#!/bin/sh
# build.sh builds weir (./weir by default) with its version and commit
# stamped in from git, so that `weir version` and /status name the build
# even where Go records no VCS information (GOFLAGS=-buildvcs=false, as CI
# and many container builds set, or a source tree without .git).
#
#	./build.sh [go build flags]        e.g. ./build.sh -o /usr/local/bin/weir
#
# The version is `git describe --tags --always --dirty` (a tag, or the
# abbreviated commit, with -dirty for uncommitted changes); the commit is
# `git rev-parse HEAD`. Outside a git checkout, or without git, nothing is
# stamped and weir falls back to what the Go toolchain recorded, else
# "dev" and "unknown". Flags given here come after this script's own, so
# -o overrides the output; -ldflags would replace the stamp.
set -eu
cd "$(dirname "$0")"
pkg=github.com/weir-cdn/weir/internal/version
ldflags=
# Only this tree's own repository counts, not one it happens to sit in.
if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ] && commit=$(git rev-parse HEAD 2>/dev/null); then
	version=$(git describe --tags --always --dirty)
	ldflags="-X $pkg.version=$version -X $pkg.commit=$commit"
	if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
		ldflags="$ldflags -X $pkg.modified=true"
	fi
else
	echo "build.sh: not a git checkout (or no git): version and commit are not stamped" >&2
fi
exec go build -ldflags "$ldflags" -o weir "$@" ./cmd/weir
