// Command golangci-lint is golangci-lint with the Kube API Linter (sigs.k8s.io/kube-api-linter) registered as
// the module plugin "kubeapilinter", as `golangci-lint custom` would build it; built here from the module proxy
// because `custom` clones golangci-lint from GitHub, which these machines cannot reach.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/golangci/golangci-lint/v2/pkg/commands"
	"github.com/golangci/golangci-lint/v2/pkg/exitcodes"

	_ "sigs.k8s.io/kube-api-linter/pkg/plugin/base"  // registers "kubeapilinter"
	_ "sigs.k8s.io/kube-api-linter/pkg/registration" // its analyzers
)

func main() {
	info := commands.BuildInfo{Version: "unknown", Commit: "?", Date: "(unknown)", GoVersion: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info.GoVersion = bi.GoVersion
		for _, dep := range bi.Deps {
			if dep.Path == "github.com/golangci/golangci-lint/v2" {
				info.Version = dep.Version + "+kubeapilinter"
			}
		}
	}
	if err := commands.Execute(info); err != nil {
		fmt.Fprintf(os.Stderr, "The command is terminated due to an error: %v\n", err)
		os.Exit(exitcodes.Failure)
	}
}
