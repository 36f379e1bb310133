//go:build nodev

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDevCommand in a nodev build (the container image) only explains where the embedded control plane is. It
// is hidden from the command list, and ignores the flags of the real one so that `cardplane dev --assets ...`
// gets this explanation rather than a flag error.
func newDevCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "dev",
		Short:              "Not in this build: run make demo from a source checkout",
		Hidden:             true,
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this build has no embedded control plane (it was built with -tags nodev, as the container image is); run `make demo` from a source checkout")
		},
	}
}
