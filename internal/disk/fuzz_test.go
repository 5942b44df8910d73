package disk

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/weir-cdn/weir/internal/store"
)

// FuzzJournalRecord: a journal frame that passed its checksum is still
// untrusted (a bug, or a file from another version): applying any
// payload returns an error or changes the index, never panics.
func FuzzJournalRecord(f *testing.F) {
	var e [1 + entryBytes]byte
	e[0] = jPut
	f.Add(appendEntry(e[:1], 1, entry{seg: 1, head: 10, body: 10, epoch: 3, expires: 9}))
	f.Add(appendRule([]byte{jRule}, ruleRecord{epoch: 5, inv: store.Invalidation{Keys: []string{"k"}, Tags: []string{"t"}, Prefixes: []string{"p/"}}}))
	f.Add([]byte{jDel, 1, 2, 3})
	f.Add([]byte{jCheckpoint, 1, 0, 0, 0, 0, 0, 0, 0, '[', ']'})
	f.Add([]byte{jRetire, 9, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		tr := &Tier{idx: newIndex(), log: discard()}
		tr.apply(p)
	})
}

// FuzzSnapshot: whatever index.snap holds, reading it returns an error
// or a state, never panics.
func FuzzSnapshot(f *testing.F) {
	dir := f.TempDir()
	s := snapshot{gen: 3, epoch: 4, nextSeg: 5, checkpoint: []byte("[]"),
		rules: []ruleRecord{{epoch: 2, inv: store.Invalidation{Tags: []string{"a"}}}},
		entries: func(yield func(uint64, entry)) {
			yield(1, entry{seg: 1, head: 2, body: 3, epoch: 1, expires: 1})
		}}
	if err := writeSnapshot(dir, s); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, snapName))
	f.Add(good)
	f.Add([]byte(snapMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, snapName), data, 0o600)
		readSnapshot(d, func(uint64, entry) {})
	})
}
