// Command ociimage writes a one-file, linux/amd64 OCI image as an
// oci-archive that `ctr images import` names by --name without any
// --base-name: the test node's pause image (hack/k8s/pause). The layer,
// the named layout and the archive are hack/image/ociarchive's, which also
// builds macguard's release image (hack/image).
//
//	go run ./hack/k8s/ociimage --name localhost/macguard-k8s/pause:v1 \
//		--binary bin/pause --path /pause --out pause.oci.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/macguard-cni/macguard/hack/image/ociarchive"
)

func main() {
	name := flag.String("name", "", "full image reference")
	bin := flag.String("binary", "", "the static binary to put into the image")
	path := flag.String("path", "/pause", "its path in the image; also the entrypoint")
	out := flag.String("out", "", "the oci-archive to write")
	flag.Parse()
	if *name == "" || *bin == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: ociimage --name REF --binary FILE [--path /pause] --out FILE.oci.tar")
		os.Exit(2)
	}
	if err := build(*name, *bin, *path, *out); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

// epoch is the time of every file in the layer and the archive.
var epoch = time.Unix(0, 0).UTC()

func build(name, bin, path, out string) error {
	l, err := ociarchive.Layer([]ociarchive.File{{Path: path, Source: bin}}, epoch)
	if err != nil {
		return err // "reading BINARY: ..."
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, l); err != nil {
		return fmt.Errorf("adding the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	// Without os/architecture containerd filters the image out on import.
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{path}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return fmt.Errorf("writing the config: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".ociimage-*")
	if err != nil {
		return err
	}
	// The layout is only the archive's source; a temporary directory left
	// behind in the cache is harmless and must not fail a build that
	// wrote its archive.
	defer func() { _ = os.RemoveAll(tmp) }()
	dir := filepath.Join(tmp, "layout")
	if err := ociarchive.WriteLayout(dir, img, name, layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})); err != nil {
		return err
	}
	return ociarchive.WriteArchive(dir, out, epoch)
}
