package main

import (
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/internal/testutil"
)

const module = "github.com/macguard-cni/macguard/"

// TestPluginLinksWhatTheMapSays holds the README's map of the tree to the
// build: the plugin, run on every pod start, links exactly the packages the
// map's first table lists, all of them directly under pkg/, and none of the
// operator's packages under pkg/ctl/, which the second table lists. A new
// package, or a new import that drags one into the plugin, fails here until
// the map says so.
func TestPluginLinksWhatTheMapSays(t *testing.T) {
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme := testutil.RepoFile(t, "README.md")
	pluginTable := mapTable(t, string(readme), "The plugin's packages (`pkg/`)")
	ctlTable := mapTable(t, string(readme), "The operator's packages (`pkg/ctl/`)")

	linked := goList(t, root, "-deps", "./plugins/meta/macguard")
	delete(linked, "plugins/meta/macguard")
	assertSame(t, "packages the plugin links (go list -deps ./plugins/meta/macguard)", linked, "the README's table of the plugin's packages", pluginTable)

	all := goList(t, root, "./pkg/...")
	ctl := map[string]bool{}
	plain := map[string]bool{}
	for p := range all {
		if strings.HasPrefix(p, "pkg/ctl/") {
			ctl[p] = true
		} else {
			plain[p] = true
		}
	}
	assertSame(t, "packages under pkg/ outside pkg/ctl/", plain, "the README's table of the plugin's packages", pluginTable)
	assertSame(t, "packages under pkg/ctl/", ctl, "the README's table of the operator's packages", ctlTable)
}

// goList returns the module's packages `go list` names, relative to the
// module path.
func goList(t *testing.T, root string, args ...string) map[string]bool {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	got := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(p, module); ok {
			got[rel] = true
		}
	}
	if len(got) == 0 {
		t.Fatalf("go list %s named no package of the module", strings.Join(args, " "))
	}
	return got
}

// mapTable returns the packages named in the first column of the markdown
// table that follows the line starting with heading.
func mapTable(t *testing.T, readme, heading string) map[string]bool {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n"+heading)
	if !ok {
		t.Fatalf("README.md has no line starting %q", heading)
	}
	got := map[string]bool{}
	inTable := false
	for _, line := range strings.Split(rest, "\n")[1:] {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		first := strings.TrimSpace(cells[1])
		if strings.HasPrefix(first, "`") && strings.HasSuffix(first, "`") {
			got[strings.Trim(first, "`")] = true
		}
	}
	if len(got) == 0 {
		t.Fatalf("README.md's table after %q names no package", heading)
	}
	return got
}

func assertSame(t *testing.T, gotName string, got map[string]bool, wantName string, want map[string]bool) {
	t.Helper()
	var missing, extra []string
	for p := range got {
		if !want[p] {
			extra = append(extra, p)
		}
	}
	for p := range want {
		if !got[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("%s include %v, which %s does not list: add a row (and mind what the plugin links) or drop the import", gotName, extra, wantName)
	}
	if len(missing) > 0 {
		t.Errorf("%s lists %v, which are not among the %s", wantName, missing, gotName)
	}
}
