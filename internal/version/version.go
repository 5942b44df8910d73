// Package version reports which build of Weir is running.
package version

import (
	"runtime/debug"
	"sync"
)

// Set at link time by build.sh at the repository's root, from git:
//
//	go build -ldflags "-X github.com/weir-cdn/weir/internal/version.version=v1.2.3 -X github.com/weir-cdn/weir/internal/version.commit=abc123 -X github.com/weir-cdn/weir/internal/version.modified=true" ./cmd/weir
//
// A plain go build stamps nothing: then Get reads what the Go toolchain
// recorded, which is nothing either with -buildvcs=false.
var (
	version  = ""
	commit   = ""
	modified = "" // "true" when built from a tree with uncommitted changes
)

// Info identifies a build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	Modified  bool   `json:"modified,omitempty"`
}

var (
	once sync.Once
	info Info
)

// Get returns the build identity: the link-time values when set, else what
// the Go toolchain recorded (module version, VCS revision), else "dev" and
// "unknown".
func Get() Info {
	once.Do(func() {
		info = Info{Version: version, Commit: commit, GoVersion: "unknown", Modified: modified == "true"}
		if bi, ok := debug.ReadBuildInfo(); ok {
			info.GoVersion = bi.GoVersion
			if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				info.Version = bi.Main.Version
			}
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					if info.Commit == "" {
						info.Commit = s.Value
					}
				case "vcs.modified":
					if commit == "" {
						info.Modified = s.Value == "true"
					}
				}
			}
		}
		if info.Version == "" {
			info.Version = "dev"
		}
		if info.Commit == "" {
			info.Commit = "unknown"
		}
	})
	return info
}
