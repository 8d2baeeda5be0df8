// Command ociimage writes a one-file, linux/amd64 OCI image as an
// oci-archive that `ctr images import` names by --name without any
// --base-name: the test node's pause image (hack/k8s/pause). It is a
// smaller cousin of hack/image, which builds macguard's release image.
//
//	go run ./hack/k8s/ociimage --name localhost/macguard-k8s/pause:v1 \
//		--binary bin/pause --path /pause --out pause.oci.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
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

func build(name, bin, path, out string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("reading the binary: %w", err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(path, "/"), Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerData := b.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerData)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("making the layer: %w", err)
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
	dir, err := os.MkdirTemp(filepath.Dir(out), ".ociimage-*")
	if err != nil {
		return err
	}
	// The layout is only the archive's source; a temporary directory left
	// behind in the cache is harmless and must not fail a build that
	// wrote its archive.
	defer func() { _ = os.RemoveAll(dir) }()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating the layout: %w", err)
	}
	// ctr names the image after io.containerd.image.name; other readers
	// after a full org.opencontainers.image.ref.name.
	ann := map[string]string{"org.opencontainers.image.ref.name": name, "io.containerd.image.name": name}
	if err := p.AppendImage(img, layout.WithAnnotations(ann), layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})); err != nil {
		return fmt.Errorf("writing the layout: %w", err)
	}
	return tarDir(dir, out)
}

// tarDir writes the layout in dir as the tar file out, atomically.
func tarDir(dir, out string) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	// After the rename tmp no longer exists; before it, a failure is
	// already being returned and a stray temp file changes nothing.
	defer func() { _ = os.Remove(tmp) }()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archiving the layout: %w", err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
