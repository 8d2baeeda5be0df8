// Package ociarchive holds what the repository's image builders share: a
// layer made of files, an OCI image layout that names its image for every
// reader, and a reproducible tar of that layout (an "oci-archive" that
// skopeo, podman, `docker load` (25+) and `ctr import` read, each under the
// image's full name). hack/image builds macguard's release image with it,
// hack/k8s/ociimage the test node's pause image.
package ociarchive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// RefName names the image inside an OCI layout; skopeo, podman and
	// docker take it as the image's name when it is a full reference.
	RefName = "org.opencontainers.image.ref.name"
	// ContainerdName is what `ctr images import` names the image by. A
	// plain import prefixes a tag-only ref.name with "import-<date>" and
	// drops a full one, so without it the kubelet finds no image under the
	// name the manifests use.
	ContainerdName = "io.containerd.image.name"
)

// File is one file of a layer: Source on disk, stored at Path (absolute,
// "/macguard") in the image.
type File struct {
	Path, Source string
}

// Layer is a tar of files, in the order given, each owned by root with mode
// 0755 and the time mtime, so the same files always give the same layer
// digest.
func Layer(files []File, mtime time.Time) (v1.Layer, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.Source, err)
		}
		hdr := &tar.Header{
			Name: strings.TrimPrefix(f.Path, "/"), Mode: 0o755, Size: int64(len(data)),
			Typeflag: tar.TypeReg, ModTime: mtime, Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := b.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// WriteLayout writes an OCI image layout in dir (replacing it) holding item,
// a v1.ImageIndex or a v1.Image, named name (a full reference such as
// ghcr.io/macguard-cni/macguard:v0.1.0) for every reader. opts add to its
// descriptor in the layout's index, e.g. an image's platform.
func WriteLayout(dir string, item mutate.Appendable, name string, opts ...layout.Option) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating the layout %s: %w", dir, err)
	}
	opts = append([]layout.Option{layout.WithAnnotations(map[string]string{RefName: name, ContainerdName: name})}, opts...)
	switch it := item.(type) {
	case v1.ImageIndex:
		err = p.AppendIndex(it, opts...)
	case v1.Image:
		err = p.AppendImage(it, opts...)
	default:
		err = fmt.Errorf("%T is neither an image nor an index", item)
	}
	if err != nil {
		return fmt.Errorf("writing the index to %s: %w", dir, err)
	}
	return nil
}

// WriteArchive tars the layout directory into out (written atomically),
// entries sorted and timestamps fixed so equal layouts give equal archives.
func WriteArchive(dir, out string, mtime time.Time) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the layout %s: %w", dir, err)
	}
	sort.Strings(files)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	// Drops the partial archive on an early return; after the rename
	// there is nothing left to remove, so its error means nothing.
	defer func() { _ = os.Remove(tmp.Name()) }()
	tw := tar.NewWriter(tmp)
	for _, p := range files {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			hdr.Typeflag, hdr.Mode, hdr.Name = tar.TypeDir, 0o755, hdr.Name+"/"
		case fi.Mode().IsRegular():
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, fi.Size()
		default:
			return fmt.Errorf("%s: unexpected file type %s in the layout", p, fi.Mode().Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			_ = f.Close() // only read: the copy's error is the one that matters
			if err != nil {
				return fmt.Errorf("archiving %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
