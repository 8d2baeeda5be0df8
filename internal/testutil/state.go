package testutil

// Helpers that read macguard's dataDir the way DEL and GC see it.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
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
