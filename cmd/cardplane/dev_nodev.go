//go:build nodev

package main

import "errors"

// runDevCommand in a nodev build (the container image) explains where the embedded control plane is.
func runDevCommand([]string) error {
	return errors.New("this build has no embedded control plane (it was built with -tags nodev, as the container image is); run `make demo` from a source checkout")
}
