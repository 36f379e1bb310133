package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuReading is the CPU time the processes had used at one moment: the manager, the kube-apiserver, etcd and this
// harness (which runs the senders and every receiver: the destinations, kfake and the NATS server).
type cpuReading struct {
	at                          time.Time
	manager, api, etcd, harness time.Duration
	machine                     time.Duration // every process of the machine (other work included), from /proc/stat
	managerErr                  error
}

func (s *system) cpu() cpuReading {
	r := cpuReading{at: time.Now()}
	r.manager, r.managerErr = cpuTime(strconv.Itoa(s.managerPID))
	r.api, _ = cpuTime(strconv.Itoa(s.apiPID))
	if s.etcdPID != 0 {
		r.etcd, _ = cpuTime(strconv.Itoa(s.etcdPID))
	}
	r.harness, _ = cpuTime("self")
	r.machine, _ = machineBusy()
	return r
}

// machineBusy is the CPU time the whole machine has been busy (not idle, not waiting for I/O), from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: unexpected format")
	}
	var busy int64
	for i, v := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, errors.New("/proc/stat: unexpected format")
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / userHZ, nil
}

// cores is the CPU each process used between two readings, in cores (CPU seconds per second).
func cores(before, after cpuReading) (manager, api, etcd, harness, machine float64) {
	wall := after.at.Sub(before.at).Seconds()
	if wall <= 0 || before.managerErr != nil || after.managerErr != nil {
		return 0, 0, 0, 0, 0
	}
	per := func(a, b time.Duration) float64 { return (b - a).Seconds() / wall }
	return per(before.manager, after.manager), per(before.api, after.api), per(before.etcd, after.etcd),
		per(before.harness, after.harness), per(before.machine, after.machine)
}

// userHZ is the unit of /proc/<pid>/stat's times: 100 on every Linux the harness runs on.
const userHZ = 100

// cpuTime is a process's user and system CPU time, from /proc/<pid>/stat (pid "self": this process).
func cpuTime(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}
