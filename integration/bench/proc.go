package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
)

const clockTicks = 100 // USER_HZ on Linux

// nsPIDs lists the processes in a named network namespace.
func nsPIDs(ns string) []int {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// procCPU is utime+stime of the processes, in milliseconds.
func procCPU(pids []int) float64 {
	var ticks float64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+2:])
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			ticks += u + st
		}
	}
	return ticks * 1000 / clockTicks
}

// procRSS is the resident memory of the processes in KiB, and their fds.
func procRSS(pids []int) (kib float64, fds int) {
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, "VmRSS:") {
					f := strings.Fields(line)
					v, _ := strconv.ParseFloat(f[1], 64)
					kib += v
				}
			}
		}
		if ents, err := os.ReadDir("/proc/" + strconv.Itoa(p) + "/fd"); err == nil {
			fds += len(ents)
		}
	}
	return kib, fds
}

// machineCPU reads the whole machine's busy and steal time in ms.
type machineCPU struct{ busy, steal, total float64 }

func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line := strings.SplitN(string(b), "\n", 2)[0]
	f := strings.Fields(line)[1:]
	var v [10]float64
	for i := 0; i < len(f) && i < 10; i++ {
		v[i], _ = strconv.ParseFloat(f[i], 64)
	}
	// user nice system idle iowait irq softirq steal
	busy := v[0] + v[1] + v[2] + v[5] + v[6]
	total := busy + v[3] + v[4] + v[7]
	return machineCPU{busy: busy * 1000 / clockTicks, steal: v[7] * 1000 / clockTicks, total: total * 1000 / clockTicks}
}

func (a machineCPU) sub(b machineCPU) machineCPU {
	return machineCPU{a.busy - b.busy, a.steal - b.steal, a.total - b.total}
}
