package node

import (
	"slices"
	"testing"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/origin"
)

// TestFailureStatusDefaultsAgree: the configuration's default
// failure_statuses (what /status and the docs show) are what an origin
// client counts when given none.
func TestFailureStatusDefaultsAgree(t *testing.T) {
	if !slices.Equal(config.DefaultFailureStatuses, origin.DefaultFailureStatuses) {
		t.Errorf("config.DefaultFailureStatuses %v, origin.DefaultFailureStatuses %v: the docs and the origin client disagree",
			config.DefaultFailureStatuses, origin.DefaultFailureStatuses)
	}
}
