package testutil

// Helpers that read macguard's dataDir the way DEL and GC see it.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/pkg/state"
)

// StateFiles splits a dataDir's entries into records (what DEL and GC act
// on) and anything else but the lock file (temporary files a writer left).
func StateFiles(dir string) (records, other []string, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing dataDir %s: %w", dir, err)
	}
	for _, e := range entries {
		switch {
		case e.Name() == ".lock":
		case strings.HasPrefix(e.Name(), "."):
			other = append(other, e.Name())
		default:
			records = append(records, e.Name())
		}
	}
	return records, other, nil
}

// StateRecords is StateFiles for the test goroutine: it returns the records
// in dir, fails the test if dir cannot be listed, and reports anything else
// there but the lock file as an error, since macguard renames every write
// into place and a temporary file left behind is a bug.
func StateRecords(t testing.TB, dir string) []string {
	t.Helper()
	records, other, err := StateFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(other) != 0 {
		t.Errorf("dataDir %s holds stray files %v", dir, other)
	}
	return records
}

// RecordName is the file name of an attachment's record in dataDir, as
// package state names it.
func RecordName(network, containerID, ifName string) string {
	return state.Key{Network: network, ContainerID: containerID, IfName: ifName}.FileName()
}
