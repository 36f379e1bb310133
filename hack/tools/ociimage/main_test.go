package main

import (
	"archive/tar"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func testBinaries(t *testing.T) BuildOptions {
	t.Helper()
	dir := t.TempDir()
	opts := BuildOptions{Binaries: map[string]string{}, Created: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		Labels: map[string]string{"org.opencontainers.image.version": "test"}}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		path := filepath.Join(dir, strings.ReplaceAll(p, "/", "-"))
		if err := os.WriteFile(path, []byte("binary for "+p), 0o755); err != nil {
			t.Fatal(err)
		}
		opts.Binaries[p] = path
		opts.Platforms = append(opts.Platforms, p)
	}
	return opts
}

func TestBuildIsReproducibleAndRunsAsNonroot(t *testing.T) {
	opts := testBinaries(t)
	idx1, images, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	idx2, _, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := idx1.Digest()
	d2, _ := idx2.Digest()
	if d1 != d2 {
		t.Fatalf("two builds of the same inputs differ: %s vs %s", d1, d2)
	}
	opts.Created = opts.Created.Add(time.Second)
	idx3, _, _ := Build(opts)
	if d3, _ := idx3.Digest(); d3 == d1 {
		t.Fatal("a different creation time gave the same digest: the test cannot tell builds apart")
	}

	cfg, err := configJSON(images[1])
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || cfg.Architecture != "arm64" || cfg.OS != "linux" ||
		strings.Join(cfg.Config.Entrypoint, " ") != "/cardplane" || strings.Join(cfg.Config.Cmd, " ") != "manager" {
		t.Fatalf("config: user %q %s/%s entrypoint %v cmd %v", cfg.Config.User, cfg.OS, cfg.Architecture, cfg.Config.Entrypoint, cfg.Config.Cmd)
	}

	files := map[string]*tar.Header{}
	tr := tar.NewReader(mutate.Extract(images[1]))
	var binary []byte
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		files[strings.TrimSuffix(h.Name, "/")] = h
		if h.Name == "cardplane" {
			if binary, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if string(binary) != "binary for linux/arm64" || files["cardplane"].Mode != 0o755 {
		t.Fatalf("arm64 image carries %q mode %o", binary, files["cardplane"].Mode)
	}
	if h := files["home/nonroot"]; h == nil || h.Uid != nonroot {
		t.Fatalf("home/nonroot: %+v", h)
	}
	if h := files["tmp"]; h == nil || h.Mode != 0o1777 {
		t.Fatalf("tmp: %+v", h)
	}
}

func TestPushToRegistryAndPullBack(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	opts := testBinaries(t)
	idx, _, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := layout.Write(dir, idx); err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(reg.URL, "http://") + "/cardplane:test"
	if err := runPush([]string{"--layout", dir, "--insecure", ref}); err != nil {
		t.Fatal(err)
	}
	parsed, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(parsed)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	got, _ := pulled.Digest()
	if got != want {
		t.Fatalf("pulled index %s, pushed %s", got, want)
	}
	m, _ := pulled.IndexManifest()
	if len(m.Manifests) != 2 {
		t.Fatalf("pulled index has %d manifests, want 2", len(m.Manifests))
	}

	// What a node does: pull its platform's image and extract it.
	out := t.TempDir()
	rootfs := filepath.Join(out, "rootfs")
	if err := runUnpack([]string{"--image", ref, "--platform", "linux/arm64", "--rootfs", rootfs, "--config", filepath.Join(out, "config.json")}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(rootfs, "cardplane")); err != nil || string(got) != "binary for linux/arm64" {
		t.Fatalf("pulled linux/arm64 rootfs/cardplane: %q %v", got, err)
	}
}

func TestUnpackWritesTheRootfsAndConfig(t *testing.T) {
	opts := testBinaries(t)
	idx, _, _ := Build(opts)
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := layout.Write(dir, idx); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	rootfs, cfg := filepath.Join(out, "rootfs"), filepath.Join(out, "config.json")
	if err := runUnpack([]string{"--layout", dir, "--platform", "linux/amd64", "--rootfs", rootfs, "--config", cfg}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(rootfs, "cardplane"))
	if err != nil || string(got) != "binary for linux/amd64" {
		t.Fatalf("rootfs/cardplane: %q %v", got, err)
	}
	if st, err := os.Stat(filepath.Join(rootfs, "tmp")); err != nil || st.Mode()&os.ModeSticky == 0 {
		t.Fatalf("rootfs/tmp: %v %v", st, err)
	}
	if err := runUnpack([]string{"--layout", dir, "--platform", "linux/s390x", "--rootfs", rootfs + "2", "--config", cfg}); err == nil {
		t.Fatal("unpacking a platform the index does not have succeeded")
	}
}

// configJSON decodes an image's config file.
func configJSON(img v1.Image) (*v1.ConfigFile, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	var cfg v1.ConfigFile
	return &cfg, json.Unmarshal(raw, &cfg)
}
