package node

import (
	"errors"
	"fmt"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
)

// Reload re-reads the API tokens file, the cluster key file and the TLS
// certificates, and reopens the audit log (after rotation); on error the
// previous tokens, keys, certificates, or file, stay in use.
func (n *Node) Reload() error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	var errs []error
	if err := n.reloadKeys(); err != nil {
		errs = append(errs, err)
	}
	if err := n.reloadCerts(); err != nil {
		errs = append(errs, err)
	}
	if err := n.auth.Reload(); err != nil {
		n.log.Error("reload: API tokens file not reloaded; the previous tokens stay in force", "path", n.auth.Path(), "error", err.Error())
		errs = append(errs, err)
	} else {
		n.log.Info("reload: API tokens file re-read", "path", n.auth.Path())
	}
	if n.auth.KeysPath() != "" {
		if err := n.auth.ReloadKeys(); err != nil {
			n.log.Error("reload: token keys file not reloaded; the previous keys stay in force", "path", n.auth.KeysPath(), "error", err.Error())
			errs = append(errs, err)
		} else {
			n.log.Info("reload: token keys file re-read", "path", n.auth.KeysPath())
		}
	}
	if err := n.audit.Reopen(); err != nil {
		n.log.Error("reload: audit log not reopened", "error", err.Error())
		errs = append(errs, err)
	}
	if n.accessFile != nil {
		if err := n.accessFile.Reopen(); err != nil {
			n.log.Error("reload: access log not reopened; the file open before stays in use", "path", n.accessFile.Path(), "error", err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reloadKeys re-reads the cluster key file and puts its keys in force for
// gossip, peer fills and purge messages: the key rotation steps need no
// restart. A file that others can read is warned about as at start-up,
// whether or not its keys are accepted: it may hold the next keys.
func (n *Node) reloadKeys() error {
	if n.keys == nil { // standalone, or an insecure cluster
		return nil
	}
	path := n.cfg.Cluster.KeyFile
	if warn := cluster.KeyFileModeWarning(path); warn != "" {
		n.log.Warn(warn)
	}
	keys, err := cluster.LoadKeyFile(path)
	if err == nil {
		err = n.cluster.SetKeys(keys)
	}
	if err != nil {
		n.log.Error("reload: cluster key file not reloaded; the previous keys stay in force", "path", path, "keys", n.keys, "error", err.Error())
		return err
	}
	n.purge.SetKeyring(keys)
	n.keys = keys
	if n.tls.tickets != nil {
		n.tls.tickets.SetSecrets(ticketSecrets(keys))
	}
	n.log.Info("reload: cluster key file re-read", "path", path, "keys", keys)
	return nil
}

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
