// Command ociimage builds, pushes and unpacks the cardplane container image without a container engine.
//
// The image is the static cardplane binary on an empty base: the binary carries its own CA roots and zoneinfo,
// so a base image (and a registry to pull it from) adds nothing. Builds are reproducible: the same binaries
// and --created give the same digests.
//
//	ociimage build  --binary linux/amd64=PATH [--binary linux/arm64=PATH] --layout DIR [--tarball FILE --tag REF]
//	ociimage push   --layout DIR REF
//	ociimage unpack (--layout DIR | --image REF) --platform linux/amd64 --rootfs DIR --config FILE
//	ociimage registry --addr 127.0.0.1:5000     (an in-memory registry, for trying the push and pull locally)
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// nonroot is the user the chart's securityContext expects (runAsNonRoot, UID/GID 65532, as distroless uses).
const nonroot = 65532

const usage = `ociimage builds the cardplane image without a container engine.

  ociimage build  --binary OS/ARCH=PATH ... --layout DIR [--tarball FILE --tag REF] [--created RFC3339] [--version V --revision SHA --source URL]
  ociimage push   --layout DIR REF        push the image index to a registry (credentials from ~/.docker/config.json)
  ociimage unpack (--layout DIR | --image REF) --platform OS/ARCH --rootfs DIR --config FILE
                                         extract an image's file system (what a node does before it starts a container)
  ociimage registry --addr HOST:PORT     serve an in-memory registry (for trying image-push without a registry)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = runBuild(os.Args[2:])
	case "push":
		err = runPush(os.Args[2:])
	case "unpack":
		err = runUnpack(os.Args[2:])
	case "registry":
		err = runRegistry(os.Args[2:])
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

type binaries []string

func (b *binaries) String() string     { return strings.Join(*b, ",") }
func (b *binaries) Set(v string) error { *b = append(*b, v); return nil }

// BuildOptions describe one image build.
type BuildOptions struct {
	Binaries  map[string]string // "linux/amd64" -> path of a static binary, in the order of Platforms
	Platforms []string
	Created   time.Time
	Labels    map[string]string
}

func runBuild(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	var bins binaries
	fs.Var(&bins, "binary", "OS/ARCH=PATH of a static cardplane binary; repeat for more platforms")
	layoutDir := fs.String("layout", "", "write the image index as an OCI layout to this directory")
	tarballPath := fs.String("tarball", "", "also write the first platform's image as a `docker load` / `kind load image-archive` tarball")
	tag := fs.String("tag", "cardplane:dev", "the name the tarball's image loads as")
	created := fs.String("created", "1970-01-01T00:00:00Z", "creation time recorded in the image (RFC 3339; the commit time keeps builds reproducible)")
	version := fs.String("version", "dev", "org.opencontainers.image.version")
	revision := fs.String("revision", "", "org.opencontainers.image.revision")
	source := fs.String("source", "https://github.com/cardplane/cardplane", "org.opencontainers.image.source")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(bins) == 0 || *layoutDir == "" {
		return errors.New("build needs at least one --binary and --layout")
	}
	t, err := time.Parse(time.RFC3339, *created)
	if err != nil {
		return fmt.Errorf("--created: %w", err)
	}
	opts := BuildOptions{Binaries: map[string]string{}, Created: t.UTC(), Labels: map[string]string{
		"org.opencontainers.image.title":   "cardplane",
		"org.opencontainers.image.version": *version,
		"org.opencontainers.image.source":  *source,
	}}
	if *revision != "" {
		opts.Labels["org.opencontainers.image.revision"] = *revision
	}
	for _, b := range bins {
		platform, path, ok := strings.Cut(b, "=")
		if !ok || !strings.Contains(platform, "/") {
			return fmt.Errorf("--binary %q: want OS/ARCH=PATH", b)
		}
		if _, dup := opts.Binaries[platform]; dup {
			return fmt.Errorf("--binary: platform %s given twice", platform)
		}
		opts.Binaries[platform] = path
		opts.Platforms = append(opts.Platforms, platform)
	}
	idx, images, err := Build(opts)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(*layoutDir); err != nil {
		return err
	}
	if _, err := layout.Write(*layoutDir, idx); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	digest, _ := idx.Digest()
	fmt.Printf("image index %s (%s) written to %s\n", digest, strings.Join(opts.Platforms, ", "), *layoutDir)
	if *tarballPath != "" {
		ref, err := name.NewTag(*tag)
		if err != nil {
			return fmt.Errorf("--tag: %w", err)
		}
		if err := tarball.WriteToFile(*tarballPath, ref, images[0]); err != nil {
			return fmt.Errorf("write tarball: %w", err)
		}
		fmt.Printf("%s image %s written to %s\n", opts.Platforms[0], ref, *tarballPath)
	}
	return nil
}

// Build returns the OCI image index of one image per platform, and the images in the order of opts.Platforms.
func Build(opts BuildOptions) (v1.ImageIndex, []v1.Image, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var images []v1.Image
	for _, platform := range opts.Platforms {
		osName, arch, _ := strings.Cut(platform, "/")
		binary, err := os.ReadFile(opts.Binaries[platform])
		if err != nil {
			return nil, nil, err
		}
		layerTar, err := rootfsTar(binary, opts.Created)
		if err != nil {
			return nil, nil, err
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(layerTar)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, nil, err
		}
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
			Created: v1.Time{Time: opts.Created}, CreatedBy: "ociimage build", Comment: "static cardplane binary, /etc/passwd with nonroot, /tmp",
		}})
		if err != nil {
			return nil, nil, err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, nil, err
		}
		cfg = cfg.DeepCopy()
		cfg.OS, cfg.Architecture, cfg.Created = osName, arch, v1.Time{Time: opts.Created}
		cfg.Config = v1.Config{
			User:       fmt.Sprintf("%d:%d", nonroot, nonroot),
			Entrypoint: []string{"/cardplane"},
			Cmd:        []string{"manager"},
			Env:        []string{"PATH=/", "HOME=/home/nonroot"},
			WorkingDir: "/",
			Labels:     opts.Labels,
		}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			return nil, nil, err
		}
		images = append(images, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: osName, Architecture: arch},
		}})
	}
	return idx, images, nil
}

// rootfsTar is the image's only layer: the binary, the users the chart runs as, and the directories a Go
// program expects. Entries are written in a fixed order with fixed times, so the layer is reproducible.
func rootfsTar(binary []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error {
			return file("etc/passwd", 0o644, fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonroot, nonroot))
		},
		func() error { return file("etc/group", 0o644, fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", nonroot)) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/nonroot", 0o700, nonroot) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return file("cardplane", 0o755, binary) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func runPush(args []string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	layoutDir := fs.String("layout", "", "the OCI layout written by build")
	insecure := fs.Bool("insecure", false, "allow a plain-HTTP registry (a local one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *layoutDir == "" || fs.NArg() != 1 {
		return errors.New("push needs --layout DIR and one image reference")
	}
	var nameOpts []name.Option
	if *insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ref, err := name.ParseReference(fs.Arg(0), nameOpts...)
	if err != nil {
		return err
	}
	idx, err := layout.ImageIndexFromPath(*layoutDir)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return err
	}
	digest, _ := idx.Digest()
	fmt.Printf("pushed %s@%s\n", ref.Context(), digest)
	return nil
}

func runUnpack(args []string) error {
	fs := flag.NewFlagSet("unpack", flag.ContinueOnError)
	layoutDir := fs.String("layout", "", "the OCI layout written by build")
	imageRef := fs.String("image", "", "pull this image reference from its registry instead of reading --layout")
	platform := fs.String("platform", "linux/amd64", "which image of the index")
	rootfs := fs.String("rootfs", "", "directory to extract the image's file system into (must not exist)")
	configOut := fs.String("config", "", "write the image's config file (JSON) here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*layoutDir == "") == (*imageRef == "") || *rootfs == "" || *configOut == "" {
		return errors.New("unpack needs one of --layout or --image, and --rootfs and --config")
	}
	var img v1.Image
	var err error
	if *imageRef != "" {
		img, err = pull(*imageRef, *platform)
	} else {
		img, err = imageFor(*layoutDir, *platform)
	}
	if err != nil {
		return err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := os.WriteFile(*configOut, raw, 0o644); err != nil {
		return err
	}
	if err := os.Mkdir(*rootfs, 0o755); err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	return untar(rc, *rootfs)
}

// pull fetches the platform's image of ref; loopback registries are spoken to over plain HTTP, as by a node.
func pull(ref, platform string) (v1.Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	return remote.Image(r, remote.WithPlatform(*p), remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

func runRegistry(args []string) error {
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:5000", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("in-memory registry on %s (images are lost when it stops)\n", ln.Addr())
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

func imageFor(layoutDir, platform string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		return nil, err
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range manifest.Manifests {
		if d.Platform != nil && d.Platform.OS+"/"+d.Platform.Architecture == platform {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no %s image in %s", platform, layoutDir)
}

// untar writes a flattened image file system, keeping modes and owners (it runs as root, as runc's caller).
func untar(r io.Reader, root string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(root, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: entry type %c is not expected in the cardplane image", h.Name, h.Typeflag)
		}
		if err := os.Chmod(target, os.FileMode(h.Mode)&os.ModePerm|modeBits(h.Mode)); err != nil {
			return err
		}
		if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
			return err
		}
	}
}

func modeBits(mode int64) os.FileMode {
	var m os.FileMode
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}
