package node

import (
	"fmt"

	"github.com/weir-cdn/weir/internal/config"
)

// applySites puts cfg's hosts and origins (and the other settings the
// site snapshot holds) in force without a restart: it compiles a new
// snapshot, with the registry's clients for origins whose description did
// not change, swaps it in, and releases the old one's clients. Requests
// in flight finish on the snapshot they started with. A cfg that is
// invalid, or that changes anything a running node cannot apply (the
// node's name, a listener, the cache's size), changes nothing; the error
// says what and why.
//
// The reload path (SIGHUP, POST /reload) is to call it; it is the seam
// that path needs.
func (n *Node) applySites(cfg *config.Config) (config.Changes, error) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration, nothing changed:\n%w", err)
	}
	changes := config.Plan(n.cfg, cfg)
	if refused := changes.Refused(); len(refused) > 0 {
		return changes, fmt.Errorf("configuration not applied, nothing changed: %s", config.Changes(refused))
	}
	if changes.Empty() {
		return changes, nil
	}
	snap, err := n.builder.Build(cfg, n.sites.Load())
	if err != nil {
		return changes, fmt.Errorf("configuration not applied, nothing changed: %w", err)
	}
	n.builder.Release(n.sites.Swap(snap))
	n.cfg = cfg
	n.log.Info("site configuration applied", "changes", changes.String())
	return changes, nil
}
