// Command image builds macguard's container image without a container
// daemon: a multi-platform OCI image index, FROM scratch, whose only file is
// the static macguard binary of each platform, written as an OCI image
// layout directory and as a tar archive of it (an "oci-archive" that
// skopeo, podman, `docker load` (25+) and `ctr import` read, each under the
// image's full name).
//
//	go run ./hack/image \
//	  --binaries linux/amd64=bin/linux-amd64 \
//	  --binaries linux/arm64=bin/linux-arm64 \
//	  --version v0.1.0 --revision abc1234 \
//	  --out bin/image/macguard-v0.1.0.oci.tar
//
// `make image` runs it, and it is the one way the project builds its image:
// the archive it writes is reproducible (the same digest for the same
// commit), needs no container daemon or base image from a registry, and is
// what the tests read back, run and import into the test node's
// containerd. People with Docker load it (`docker load -i`, Docker 25+) or
// push it with skopeo; there is no Dockerfile to keep in step.
package main

import (
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/macguard-cni/macguard/hack/image/ociarchive"
)

// The image's fixed shape; deploy/deploy_test.go holds the DaemonSet to the
// image built with it.
const (
	// PluginPath is where the CNI plugin lives in the image; the installer
	// copies it to the node.
	PluginPath = "/macguard"
	// ToolPath is where macguardctl, the DaemonSet's agent, lives.
	ToolPath = "/macguardctl"
	// DefaultRepository is the image name used in deploy/.
	DefaultRepository = "ghcr.io/macguard-cni/macguard"
	// DefaultSource is the org.opencontainers.image.source label.
	DefaultSource = "https://github.com/macguard-cni/macguard"
)

// Files are the image's only files, in layer order: each is the file of
// that name in a platform's --binaries directory.
var Files = []string{PluginPath, ToolPath}

// Entrypoint is the image's entrypoint: macguardctl installs the plugin,
// so arguments given to the container are install flags.
var Entrypoint = []string{ToolPath, "install"}

// Label keys (OCI image spec annotations, used as config labels).
const (
	LabelVersion     = "org.opencontainers.image.version"
	LabelSource      = "org.opencontainers.image.source"
	LabelRevision    = "org.opencontainers.image.revision"
	LabelTitle       = "org.opencontainers.image.title"
	LabelDescription = "org.opencontainers.image.description"
	LabelCreated     = "org.opencontainers.image.created"
)

// Spec is what to build.
type Spec struct {
	// Binaries maps a platform ("linux/amd64") to the directory holding
	// its static macguard and macguardctl binaries.
	Binaries map[string]string
	// Repository is the image's name without the tag; the layout names
	// the index Repository:Version.
	Repository string
	Version    string
	Revision   string
	Source     string
	// Created is the image's creation time; a fixed value (the commit
	// time) makes the build reproducible.
	Created time.Time
}

// elfMachine is the ELF machine each supported architecture must have.
var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// checkBinary refuses anything but a static Linux ELF executable for arch:
// the image has no libc and no loader, so a dynamic binary would only fail
// on the node, with "no such file or directory".
func checkBinary(path, arch string) error {
	want, ok := elfMachine[arch]
	if !ok {
		return fmt.Errorf("unsupported architecture %q (supported: amd64, arm64)", arch)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: not an ELF binary: %w", path, err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s: built for %s, want %s (GOARCH=%s)", path, f.Machine, want, arch)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s: ELF type %s is not an executable", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (has an interpreter); build with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// layerFiles are the layer's files: each of Files, from the file of that
// name in dir.
func layerFiles(dir string) []ociarchive.File {
	files := make([]ociarchive.File, 0, len(Files))
	for _, name := range Files {
		files = append(files, ociarchive.File{Path: name, Source: filepath.Join(dir, filepath.Base(name))})
	}
	return files
}

func splitPlatform(s string) (*v1.Platform, error) {
	os, arch, ok := strings.Cut(s, "/")
	if !ok || os != "linux" || strings.Contains(arch, "/") {
		return nil, fmt.Errorf("platform %q: want linux/<arch>", s)
	}
	p := &v1.Platform{OS: os, Architecture: arch}
	if arch == "arm64" {
		// What registries and runtimes expect for 64-bit ARM.
		p.Variant = "v8"
	}
	return p, nil
}

// Build assembles the image index.
func Build(s Spec) (v1.ImageIndex, error) {
	if len(s.Binaries) == 0 {
		return nil, errors.New("no --binaries given")
	}
	if s.Version == "" {
		return nil, errors.New("--version is required")
	}
	if s.Repository == "" {
		s.Repository = DefaultRepository
	}
	labels := map[string]string{
		LabelVersion:     s.Version,
		LabelSource:      s.Source,
		LabelTitle:       "macguard",
		LabelDescription: "Installs the macguard chained CNI plugin on a node (binary and conflist entry)",
		LabelCreated:     s.Created.UTC().Format(time.RFC3339),
	}
	if s.Revision != "" {
		labels[LabelRevision] = s.Revision
	}
	platforms := make([]string, 0, len(s.Binaries))
	for p := range s.Binaries {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms) // a stable order, so a stable index digest
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, ps := range platforms {
		plat, err := splitPlatform(ps)
		if err != nil {
			return nil, err
		}
		files := layerFiles(s.Binaries[ps])
		for _, f := range files {
			if err := checkBinary(f.Source, plat.Architecture); err != nil {
				return nil, err
			}
		}
		l, err := ociarchive.Layer(files, s.Created)
		if err != nil {
			return nil, err
		}
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{
			Created:   v1.Time{Time: s.Created},
			CreatedBy: "hack/image: " + strings.Join(Files, ", ") + " (static " + ps + " binaries)",
		}})
		if err != nil {
			return nil, fmt.Errorf("%s: adding the layer: %w", ps, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
		cf.Created = v1.Time{Time: s.Created}
		cf.Config.Entrypoint = Entrypoint
		cf.Config.Cmd = nil
		cf.Config.Labels = labels
		cf.Config.WorkingDir = "/"
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			return nil, fmt.Errorf("%s: writing the config: %w", ps, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: plat, Annotations: map[string]string{LabelVersion: s.Version}},
		})
	}
	return idx, nil
}

// Name is the full reference the layout gives the image.
func (s Spec) Name() string {
	repo := s.Repository
	if repo == "" {
		repo = DefaultRepository
	}
	return repo + ":" + s.Version
}

type binFlag map[string]string

func (b binFlag) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binFlag) Set(v string) error {
	plat, path, ok := strings.Cut(v, "=")
	if !ok || plat == "" || path == "" {
		return fmt.Errorf("%q: want PLATFORM=DIR, e.g. linux/amd64=bin/linux-amd64", v)
	}
	b[plat] = path
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bins := binFlag{}
	var s Spec
	var out, layoutDir, created string
	fs.Var(bins, "binaries", "`PLATFORM=DIR` holding the static macguard and macguardctl of a platform, e.g. linux/arm64=bin/linux-arm64; repeat per platform")
	fs.StringVar(&s.Repository, "repository", DefaultRepository, "image name without the tag")
	fs.StringVar(&s.Version, "version", "", "image version (label and layout tag), e.g. v0.1.0")
	fs.StringVar(&s.Revision, "revision", "", "source revision (git commit) for the label")
	fs.StringVar(&s.Source, "source", DefaultSource, "source repository URL for the label")
	fs.StringVar(&created, "created", "", "creation time, RFC 3339 (default: $SOURCE_DATE_EPOCH, else the Unix epoch) — fixed, so builds are reproducible")
	fs.StringVar(&out, "out", "", "the oci-archive (tar) to write")
	fs.StringVar(&layoutDir, "layout", "", "the OCI layout directory to write (default: OUT without .tar, plus .d)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "image: %v\n", err)
		return 1
	}
	if out == "" {
		fmt.Fprintln(stderr, "image: --out is required")
		return 2
	}
	if layoutDir == "" {
		layoutDir = strings.TrimSuffix(out, ".tar") + ".d"
	}
	t, err := createdTime(created, os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return fail(err)
	}
	s.Created, s.Binaries = t, bins
	idx, err := Build(s)
	if err != nil {
		return fail(err)
	}
	if err := ociarchive.WriteLayout(layoutDir, idx, s.Name()); err != nil {
		return fail(err)
	}
	if err := ociarchive.WriteArchive(layoutDir, out, t); err != nil {
		return fail(fmt.Errorf("writing %s: %w", out, err))
	}
	d, err := idx.Digest()
	if err != nil {
		return fail(err)
	}
	plats := make([]string, 0, len(bins))
	for p := range bins {
		plats = append(plats, p)
	}
	sort.Strings(plats)
	fmt.Fprintf(stdout, "wrote %s (index %s; %s; name %s)\n", out, d, strings.Join(plats, ", "), s.Name())
	return 0
}

func createdTime(flagValue, epoch string) (time.Time, error) {
	switch {
	case flagValue != "":
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("--created: %w", err)
		}
		return t.UTC(), nil
	case epoch != "":
		var sec int64
		if _, err := fmt.Sscan(epoch, &sec); err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", epoch, err)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}
