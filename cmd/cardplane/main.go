// Command cardplane is the cardplane operator: `cardplane manager` runs the controllers and the receiver,
// `cardplane dev` runs them on an embedded local control plane.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	_ "time/tzdata" // explicit time zones (tevau.timeZone) must work in images without a zoneinfo database

	_ "golang.org/x/crypto/x509roots/fallback" // HTTPS destinations must verify in an image without a CA bundle
)

const usage = `cardplane turns issued payment cards into Kubernetes objects.

Usage:
  cardplane manager [flags]   run the controllers and the webhook receiver (what the Deployment runs)
  cardplane dev [flags]       run everything on an embedded local kube-apiserver and etcd, with samples
  cardplane simulate [flags]  send a correctly signed provider callback to a receiver (a provider sandbox)
  cardplane rules COMMAND     lint, test or backtest authorization rule sets offline (for GitOps CI)

Run "cardplane <command> -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "manager":
		err = runManagerCommand(os.Args[2:])
	case "dev":
		err = runDevCommand(os.Args[2:])
	case "simulate":
		err = runSimulateCommand(os.Args[2:])
	case "rules":
		err = runRulesCommand(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// cacheDir is where the dev control plane, its kubeconfig and the simulate defaults live.
func cacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "cardplane")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "cardplane")
}
