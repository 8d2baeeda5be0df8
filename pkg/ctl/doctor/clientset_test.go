package doctor

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// typedClientset is client-go's generated clientset. Importing it (or any
// package under it) registers every built-in API group's types at init.
const typedClientset = "k8s.io/client-go/kubernetes"

func isTypedClientset(path string) bool {
	return path == typedClientset || strings.HasPrefix(path, typedClientset+"/")
}

// TestNoTypedClientset: no non-test Go file under pkg/ or cmd/ imports
// k8s.io/client-go/kubernetes, and macguardctl does not link it through a
// dependency either. macguardctl is also the DaemonSet's agent
// (`macguardctl install --watch`, on every node, and its readiness probe
// every 10 s), and linking the clientset made that agent 21 MB
// resident instead of 11 MB, and the binary 28 MB instead of 12 MB.
// The doctor's cluster checks read pods, the node and NADs through
// k8s.io/client-go/dynamic instead (cluster.go); tests may use the
// clientset.
func TestNoTypedClientset(t *testing.T) {
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	for _, top := range []string{"pkg", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if d.IsDir() {
				if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				return nil
			}
			// Every file, whatever its build constraints: ImportsOnly reads
			// no further than the import block.
			file, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			files++
			for _, imp := range file.Imports {
				p, err := strconv.Unquote(imp.Path.Value)
				if err != nil {
					return err
				}
				if isTypedClientset(p) {
					t.Errorf("%s imports %s: read the objects through k8s.io/client-go/dynamic (see pkg/ctl/doctor/cluster.go); the typed clientset costs macguardctl's agent, on every node, some 10 MB of memory", fset.Position(imp.Pos()), p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 20 {
		t.Fatalf("scanned only %d files under pkg/ and cmd/; is the repository layout different?", files)
	}

	// The binary's whole dependency graph: a package of another module
	// that imports the clientset would bring it back just the same.
	cmd := exec.Command("go", "list", "-deps", "./cmd/macguardctl")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/macguardctl: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps ./cmd/macguardctl listed only %d packages", len(deps))
	}
	var linked []string
	for _, p := range deps {
		if isTypedClientset(p) {
			linked = append(linked, p)
		}
	}
	if len(linked) > 0 {
		t.Errorf("macguardctl links %d packages of the typed clientset (%s): the clientset costs macguardctl's agent, on every node, some 10 MB of memory; go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/macguardctl names who imports them",
			len(linked), strings.Join(first(linked, 3), ", "))
	}
}
