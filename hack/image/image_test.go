package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/macguard-cni/macguard/hack/image/ociarchive"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// hello builds, for arch, one tiny static program per image file that
// prints "hello <file> <arch>", and returns the directory holding them; they
// stand in for macguard and macguardctl in the self-contained tests.
func hello(t *testing.T, arch string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range Files {
		name := filepath.Base(f)
		src := filepath.Join(t.TempDir(), "main.go")
		prog := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello " + name + " " + arch + "\") }\n"
		if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, name), src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GO111MODULE=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the %s %s stand-in: %v\n%s", name, arch, err, b)
		}
	}
	return dir
}

// extract unpacks an oci-archive into a new directory, refusing anything
// but plain files and directories inside it.
func extract(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", archive, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("%s: entry %q escapes the archive", archive, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: unexpected entry type %c for %s", archive, h.Typeflag, h.Name)
		}
	}
	return dir
}

// platformImage is one image of the index as read back.
type platformImage struct {
	platform string
	config   *v1.ConfigFile
	files    map[string]*tar.Header
	// binaries holds the content of each of Files, by image path.
	binaries map[string][]byte
}

// readArchive opens an oci-archive with go-containerregistry's layout
// reader (not the code that wrote it) and returns its single index, the
// name the layout gives it, and every image by platform. The name is the
// same under the OCI annotation and containerd's, or the test fails.
func readArchive(t *testing.T, archive string) (v1.ImageIndex, string, map[string]platformImage) {
	t.Helper()
	p, err := layout.FromPath(extract(t, archive))
	if err != nil {
		t.Fatalf("%s is not an OCI layout: %v", archive, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json: want exactly one image index, got %+v", tm.Manifests)
	}
	tag := tm.Manifests[0].Annotations[ociarchive.RefName]
	if ctrd := tm.Manifests[0].Annotations[ociarchive.ContainerdName]; ctrd != tag {
		t.Errorf("index.json names the image %q for containerd and %q for OCI readers; want one name", ctrd, tag)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	imgs := map[string]platformImage{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("manifest %s media type %s, want %s", d.Digest, d.MediaType, types.OCIManifestSchema1)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		pi := platformImage{platform: d.Platform.String(), config: cf, files: map[string]*tar.Header{}, binaries: map[string][]byte{}}
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				pi.files[h.Name] = h
				if h.Typeflag == tar.TypeReg {
					pi.binaries["/"+h.Name], _ = io.ReadAll(tr)
				}
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
		}
		imgs[pi.platform] = pi
	}
	return idx, tag, imgs
}

// checkImages asserts the properties every macguard image has.
func checkImages(t *testing.T, imgs map[string]platformImage, version string) {
	t.Helper()
	var plats []string
	for p := range imgs {
		plats = append(plats, p)
	}
	sort.Strings(plats)
	if got := strings.Join(plats, " "); got != "linux/amd64 linux/arm64/v8" {
		t.Errorf("platforms %q, want linux/amd64 and linux/arm64/v8", got)
	}
	for p, img := range imgs {
		c := img.config
		if strings.Join(c.Config.Entrypoint, " ") != strings.Join(Entrypoint, " ") || len(c.Config.Cmd) != 0 {
			t.Errorf("%s: entrypoint %q cmd %q, want %q and none", p, c.Config.Entrypoint, c.Config.Cmd, Entrypoint)
		}
		if c.Config.Labels[LabelVersion] != version || c.Config.Labels[LabelSource] != DefaultSource {
			t.Errorf("%s: labels %v, want %s=%s and %s=%s", p, c.Config.Labels, LabelVersion, version, LabelSource, DefaultSource)
		}
		if plat := c.Platform(); plat == nil || plat.String() != p {
			t.Errorf("%s: config says platform %v", p, plat)
		}
		// FROM scratch: the two binaries and nothing else.
		var names []string
		for n := range img.files {
			names = append(names, "/"+n)
		}
		sort.Strings(names)
		if strings.Join(names, " ") != strings.Join(Files, " ") {
			t.Errorf("%s: files %q, want only %q", p, names, Files)
			continue
		}
		for _, name := range Files {
			h := img.files[strings.TrimPrefix(name, "/")]
			if h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 {
				t.Errorf("%s: %s mode %o owner %d:%d, want 755 root", p, name, h.Mode, h.Uid, h.Gid)
			}
			f, err := elf.NewFile(bytes.NewReader(img.binaries[name]))
			if err != nil {
				t.Errorf("%s: %s is not ELF: %v", p, name, err)
				continue
			}
			if f.Machine != elfMachine[c.Architecture] {
				t.Errorf("%s: %s is for %s", p, name, f.Machine)
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Errorf("%s: %s is dynamically linked", p, name)
				}
			}
		}
	}
}

// runAMD64 writes the amd64 image's files into one directory, as the image
// has them, and runs the one at path with args.
func runAMD64(t *testing.T, imgs map[string]platformImage, path string, args ...string) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("cannot run an amd64 binary on %s", runtime.GOARCH)
	}
	img, ok := imgs["linux/amd64"]
	if !ok {
		t.Fatal("no linux/amd64 image")
	}
	dir := t.TempDir()
	for name, b := range img.binaries {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(name)), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, filepath.Base(path))
	out, err := exec.Command(p, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", p, args, err, out)
	}
	return string(out)
}

func TestBuildWritesAReadableReproducibleIndex(t *testing.T) {
	bins := map[string]string{"linux/amd64": hello(t, "amd64"), "linux/arm64": hello(t, "arm64")}
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	build := func(out string) {
		spec := Spec{Binaries: bins, Version: "v9.8.7", Revision: "abc123", Source: DefaultSource, Created: created}
		idx, err := Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		dir := strings.TrimSuffix(out, ".tar") + ".d"
		if err := ociarchive.WriteLayout(dir, idx, spec.Name()); err != nil {
			t.Fatal(err)
		}
		if err := ociarchive.WriteArchive(dir, out, created); err != nil {
			t.Fatal(err)
		}
	}
	a, b := filepath.Join(t.TempDir(), "a.tar"), filepath.Join(t.TempDir(), "b.tar")
	build(a)
	build(b)
	if sum(t, a) != sum(t, b) {
		t.Error("two builds of the same inputs differ")
	}
	_, tag, imgs := readArchive(t, a)
	if want := DefaultRepository + ":v9.8.7"; tag != want {
		t.Errorf("layout names the image %q, want %q", tag, want)
	}
	checkImages(t, imgs, "v9.8.7")
	for _, img := range imgs {
		if img.config.Config.Labels[LabelRevision] != "abc123" || !img.config.Created.Equal(created) {
			t.Errorf("revision label / created: %v %v", img.config.Config.Labels, img.config.Created)
		}
	}
	for _, f := range Files {
		if out, want := runAMD64(t, imgs, f), "hello "+filepath.Base(f)+" amd64\n"; out != want {
			t.Errorf("the amd64 %s printed %q, want %q", f, out, want)
		}
	}
}

func sum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func TestBuildRefusesBadBinaries(t *testing.T) {
	amd := hello(t, "amd64")
	// with returns a copy of amd whose file name is replaced by the file
	// at path.
	with := func(name, path string) string {
		dir := t.TempDir()
		for _, f := range Files {
			src := filepath.Join(amd, filepath.Base(f))
			if filepath.Base(f) == name {
				src = path
			}
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noTool := t.TempDir()
	b, err := os.ReadFile(filepath.Join(amd, "macguard"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(noTool, "macguard"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		bins map[string]string
		want string
	}{
		"wrong architecture": {map[string]string{"linux/arm64": amd}, "built for EM_X86_64"},
		"plugin not ELF":     {map[string]string{"linux/amd64": with("macguard", notELF)}, "not an ELF"},
		"tool not ELF":       {map[string]string{"linux/amd64": with("macguardctl", notELF)}, "macguardctl: not an ELF"},
		"tool missing":       {map[string]string{"linux/amd64": noTool}, "macguardctl"},
		"unknown arch":       {map[string]string{"linux/s390x": amd}, "unsupported architecture"},
		"not linux":          {map[string]string{"darwin/amd64": amd}, "want linux/<arch>"},
		"none":               {map[string]string{}, "no --binaries"},
	}
	// A dynamically linked binary, if the system has one to offer.
	for _, p := range []string{"/bin/ls", "/usr/bin/env"} {
		if f, err := elf.Open(p); err == nil && f.Machine == elf.EM_X86_64 {
			_ = f.Close() // only its header was read
			cases["dynamic"] = struct {
				bins map[string]string
				want string
			}{map[string]string{"linux/amd64": with("macguard", p)}, "CGO_ENABLED=0"}
			break
		}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Build(Spec{Binaries: c.bins, Version: "v1"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestCLI(t *testing.T) {
	amd, arm := hello(t, "amd64"), hello(t, "arm64")
	out := filepath.Join(t.TempDir(), "img", "m.oci.tar")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--binaries", "linux/amd64=" + amd, "--binaries", "linux/arm64=" + arm, "--version", "v1.2.3", "--out", out, "--created", "2024-05-06T07:08:09Z"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), out) || !strings.Contains(stdout.String(), DefaultRepository+":v1.2.3") {
		t.Errorf("stdout %q does not name the archive and the image", stdout.String())
	}
	if _, err := os.Stat(strings.TrimSuffix(out, ".tar") + ".d/index.json"); err != nil {
		t.Errorf("layout directory: %v", err)
	}
	_, _, imgs := readArchive(t, out)
	checkImages(t, imgs, "v1.2.3")
	for _, args := range [][]string{
		{"--version", "v1", "--binaries", "linux/amd64=" + amd},            // no --out
		{"--out", out, "--binaries", "nonsense"},                           // bad --binaries
		{"--out", out, "--version", "v1", "--binaries", "linux/amd64=/no"}, // missing directory
		{"--out", out, "--version", "v1", "--created", "yesterday", "--binaries", "linux/amd64=" + amd},
	} {
		if code := run(args, io.Discard, io.Discard); code == 0 {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// TestImageArchive checks the archive `make image` built (make test-deploy
// passes its path): platforms, entrypoint, labels, the binary inside runs,
// and, with skopeo installed, that an independent reader agrees.
func TestImageArchive(t *testing.T) {
	archive := os.Getenv("MACGUARD_IMAGE_ARCHIVE")
	if archive == "" {
		t.Fatal("MACGUARD_IMAGE_ARCHIVE is not set; run `make test-deploy`, which builds the image first")
	}
	version := os.Getenv("MACGUARD_IMAGE_VERSION")
	if version == "" {
		version = testutil.MakefileVersion(t)
	}
	idx, name, imgs := readArchive(t, archive)
	if want := DefaultRepository + ":" + version; name != want {
		t.Errorf("the archive names the image %q, want %q (what deploy/ runs)", name, want)
	}
	checkImages(t, imgs, version)
	for _, f := range Files {
		out := runAMD64(t, imgs, f, "version")
		if !strings.HasPrefix(out, "macguard "+version+" (commit ") {
			t.Errorf("`%s version` in the image printed %q, want macguard %s (commit ...)", f, out, version)
		}
	}
	// The entrypoint, run as the DaemonSet runs it (once, without
	// --watch): it installs itself and chains into a real conflist, and
	// its readiness check then passes.
	node := t.TempDir()
	bin, conf := filepath.Join(node, "opt/cni/bin"), filepath.Join(node, "etc/cni/net.d")
	for _, d := range []string{bin, conf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cilium, err := os.ReadFile("../../cni-conf/installer/05-cilium.conflist")
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(conf, "05-cilium.conflist")
	if err := os.WriteFile(list, cilium, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(Entrypoint[1:], "--cni-bin-dir", bin, "--chain-into", list)
	runAMD64(t, imgs, Entrypoint[0], args...)
	if out := runAMD64(t, imgs, Entrypoint[0], append(args, "--check")...); strings.Contains(out, "not ok") {
		t.Errorf("check after the install:\n%s", out)
	}
	// Only the plugin goes to the node, byte for byte.
	installed, err := os.ReadFile(filepath.Join(bin, "macguard"))
	if err != nil || !bytes.Equal(installed, imgs["linux/amd64"].binaries[PluginPath]) {
		t.Errorf("%s/macguard is not the image's %s (err %v)", bin, PluginPath, err)
	}
	if _, err := os.Stat(filepath.Join(bin, "macguardctl")); err == nil {
		t.Errorf("macguardctl was copied into the CNI bin dir; only the plugin belongs there")
	}
	if b, _ := os.ReadFile(list); !strings.Contains(string(b), `"type": "macguard"`) {
		t.Errorf("the image's entrypoint did not chain into the conflist:\n%s", b)
	}

	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("MACGUARD_REQUIRE_SKOPEO") != "" {
			t.Fatal("skopeo is required (MACGUARD_REQUIRE_SKOPEO) but not in PATH")
		}
		t.Log("skopeo not installed; skipping the independent read")
		return
	}
	// The full name: skopeo finds the image under the name deploy/ uses.
	ref := "oci-archive:" + archive + ":" + name
	raw, err := exec.Command(skopeo, "inspect", "--raw", ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw %s: %v", ref, stderrOf(err))
	}
	want, _ := idx.Digest()
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(raw)); got != want.String() {
		t.Errorf("skopeo reads index %s, want %s", got, want)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		b, err := exec.Command(skopeo, "--override-os", "linux", "--override-arch", arch, "inspect", ref).Output()
		if err != nil {
			t.Fatalf("skopeo inspect (%s): %v", arch, stderrOf(err))
		}
		var info struct {
			Architecture, Os string
			Labels           map[string]string
			Layers           []string
		}
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatal(err)
		}
		if info.Architecture != arch || info.Os != "linux" || info.Labels[LabelVersion] != version || len(info.Layers) != 1 {
			t.Errorf("skopeo sees for %s: %+v", arch, info)
		}
		b, err = exec.Command(skopeo, "--override-os", "linux", "--override-arch", arch, "inspect", "--config", ref).Output()
		if err != nil {
			t.Fatalf("skopeo inspect --config (%s): %v", arch, stderrOf(err))
		}
		var cf v1.ConfigFile
		if err := json.Unmarshal(b, &cf); err != nil {
			t.Fatal(err)
		}
		if strings.Join(cf.Config.Entrypoint, " ") != strings.Join(Entrypoint, " ") {
			t.Errorf("skopeo sees entrypoint %q for %s", cf.Config.Entrypoint, arch)
		}
	}
}

func stderrOf(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return err
}
