package testenv

import (
	"fmt"
	"net"
	"syscall"
)

// LoopbackOnly is a dial Control (sink.DialControl) that lets tests' sinks reach their in-process servers,
// which the default address policy refuses, and nothing else.
func LoopbackOnly(_, address string, _ syscall.RawConn) error {
	ap, err := net.ResolveTCPAddr("tcp", address)
	if err != nil {
		return err
	}
	if !ap.IP.IsLoopback() {
		return fmt.Errorf("%s is not loopback", address)
	}
	return nil
}
