// Package readme runs the commands README.md shows, against the binaries
// under test, so that a renamed or removed command breaks a test before it
// breaks a reader.
//
// The rule, for every fenced code block of README.md whose info string is
// sh, bash, shell or console (blocks of other kinds, or none, are output,
// configuration or transcripts, not commands):
//
//   - the line just before the opening fence (blank lines between are not
//     allowed) is either <!-- test:run --> or <!-- test:skip REASON -->; a
//     block with neither fails the test, so no command block is left out
//     silently;
//   - a test:run block is run line by line: every line that is neither
//     empty nor a comment is one command, run by bash (-euo pipefail) in an
//     empty directory whose bin/ holds bin/macguard and bin/macguardctl
//     under test (MACGUARD_BIN, MACGUARDCTL_BIN; `make build`'s by
//     default) and is first on PATH, so both `bin/macguardctl ...` and
//     `macguardctl ...` are the binaries under test. Each must exit 0 and
//     print something on stdout;
//   - test:skip is for what cannot run here (root, a node, a cluster), and
//     says why.
package readme

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// block is one command block of the README.
type block struct {
	line   int      // of the opening fence, 1-based
	marker string   // "run", "skip" or "" (none)
	reason string   // of a skip
	lines  []string // the block's lines, fence indentation removed
}

var (
	fence     = regexp.MustCompile("^(\\s*)```\\s*([A-Za-z]*)")
	runMarker = regexp.MustCompile(`^\s*<!--\s*test:run\s*-->\s*$`)
	skipMark  = regexp.MustCompile(`^\s*<!--\s*test:skip\s+(\S.*?)\s*-->\s*$`)
	shellLang = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}
)

// commandBlocks returns README's shell blocks with their markers.
func commandBlocks(readme []byte) []block {
	var (
		blocks []block
		prev   string
		cur    *block
		indent string
		n      int
	)
	sc := bufio.NewScanner(bytes.NewReader(readme))
	inOther := false
	for sc.Scan() {
		n++
		text := sc.Text()
		m := fence.FindStringSubmatch(text)
		switch {
		case cur != nil && m != nil:
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, strings.TrimPrefix(text, indent))
		case inOther && m != nil:
			inOther = false
		case inOther:
		case m != nil && shellLang[m[2]]:
			cur, indent = &block{line: n}, m[1]
			if runMarker.MatchString(prev) {
				cur.marker = "run"
			} else if sm := skipMark.FindStringSubmatch(prev); sm != nil {
				cur.marker, cur.reason = "skip", sm[1]
			}
		case m != nil:
			inOther = true
		}
		prev = text
	}
	return blocks
}

func TestREADMECommands(t *testing.T) {
	readme := testutil.RepoFile(t, "README.md")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"macguard": testutil.PluginBinary(t), "macguardctl": testutil.ToolBinary(t)} {
		abs, err := filepath.Abs(target)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + dir}

	blocks := commandBlocks(readme)
	ran := 0
	for _, b := range blocks {
		switch b.marker {
		case "skip":
			t.Logf("README.md:%d: not run: %s", b.line, b.reason)
			continue
		case "":
			t.Errorf("README.md:%d: a shell block without <!-- test:run --> or <!-- test:skip REASON --> on the line before it", b.line)
			continue
		}
		for i, line := range b.lines {
			cmdline := strings.TrimSpace(line)
			if cmdline == "" || strings.HasPrefix(cmdline, "#") {
				continue
			}
			ran++
			where := b.line + 1 + i
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", cmdline)
			cmd.Dir, cmd.Env = dir, env
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			t.Logf("README.md:%d: %s\n%s%s", where, cmdline, out.String(), errb.String())
			if err != nil {
				t.Errorf("README.md:%d: `%s` failed: %v\nstderr:\n%s", where, cmdline, err, errb.String())
			} else if out.Len() == 0 {
				t.Errorf("README.md:%d: `%s` printed nothing on stdout", where, cmdline)
			}
		}
	}
	if ran == 0 {
		t.Fatal("README.md has no <!-- test:run --> command: nothing was checked")
	}
}

// TestMarkerRule: the parser finds the blocks and markers the rule
// describes, so that a mistake in it cannot make TestREADMECommands pass
// by running nothing.
func TestMarkerRule(t *testing.T) {
	md := strings.Join([]string{
		"<!-- test:run -->",
		"```sh",
		"echo one # a comment",
		"```",
		"",
		"```",
		"$ not a command block",
		"```",
		"<!-- test:skip needs a cluster -->",
		"```bash",
		"kubectl get pods",
		"```",
		"```json",
		"{}",
		"```",
		"  <!-- test:run -->",
		"  ```console",
		"  macguardctl version",
		"  ```",
		"```sh",
		"unmarked",
		"```",
		"<!-- test:run -->",
		"",
		"```sh",
		"a blank line between marker and fence",
		"```",
	}, "\n")
	got := commandBlocks([]byte(md))
	want := []block{
		{line: 2, marker: "run", lines: []string{"echo one # a comment"}},
		{line: 10, marker: "skip", reason: "needs a cluster", lines: []string{"kubectl get pods"}},
		{line: 17, marker: "run", lines: []string{"macguardctl version"}},
		{line: 20, marker: "", lines: []string{"unmarked"}},
		{line: 25, marker: "", lines: []string{"a blank line between marker and fence"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d blocks %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.line != w.line || g.marker != w.marker || g.reason != w.reason || strings.Join(g.lines, "\n") != strings.Join(w.lines, "\n") {
			t.Errorf("block %d: got %+v, want %+v", i, g, w)
		}
	}
}
