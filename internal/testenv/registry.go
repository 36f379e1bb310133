package testenv

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// StartRegistry runs `ociimage registry` (an in-memory OCI registry, hack/tools/ociimage, named by $OCIIMAGE)
// on a loopback port until the test ends or ctx is done, and returns its host:port.
func StartRegistry(ctx context.Context, t testing.TB) string {
	t.Helper()
	ociimage := os.Getenv("OCIIMAGE")
	if ociimage == "" {
		t.Fatal("OCIIMAGE is not set: run the tests with `make test`, or `make ociimage` and OCIIMAGE=$PWD/bin/ociimage")
	}
	if !filepath.IsAbs(ociimage) {
		ociimage = filepath.Join(RepoRoot(), ociimage)
	}
	cmd := exec.CommandContext(ctx, ociimage, "registry", "--addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	m := regexp.MustCompile(`on (127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("registry said %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return m[1]
}
