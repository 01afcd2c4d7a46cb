package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"hearth/client/store"
)

// run runs the binary with a deadline: SIGTERM at limit, SIGKILL 5 s
// later; a command that did not end within limit is a violation naming
// it, and ok is false. kill > 0 SIGKILLs it after kill on purpose (a
// client killed mid-flush; not a violation).
func (c *churn) run(label []string, kill, limit time.Duration, stdin string, args ...string) (r result, ok bool) {
	if label == nil {
		label = args
	}
	cmd := exec.Command(hearthBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		c.violate("command did not start", "step %d: hearth %s: %v", c.step, strings.Join(label, " "), err)
		return result{code: -1}, false
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var killC <-chan time.Time
	if kill > 0 {
		killC = time.After(kill)
	}
	var err error
	ok = true
	select {
	case err = <-done:
	case <-killC:
		cmd.Process.Kill()
		err = <-done
	case <-time.After(limit):
		ok = false
		cmd.Process.Signal(syscall.SIGTERM)
		how := "ended on SIGTERM"
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			err = <-done
			how = "ignored SIGTERM for 5 s, SIGKILLed"
		}
		c.violate("command did not end", "step %d: hearth %s did not end within %v (%s); stderr: %s",
			c.step, strings.Join(label, " "), limit, how, firstLine(errb.String()))
	}
	r = result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		r.code = -1
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		c.violate("stack trace", "step %d: hearth %s:\n%s", c.step, strings.Join(label, " "), r.stderr[:min(len(r.stderr), 2000)])
	}
	return r, ok
}

// runChat runs `hearth chat --profile D ARGS` (labelled by d's name).
// Once a command on d did not end, d is wedged: its later commands are
// not run (each would cost the full deadline) and count as failed.
func (c *churn) runChat(d *cdev, kill, limit time.Duration, stdin string, args ...string) (result, bool) {
	label := append([]string{"chat", "(" + d.name + ")"}, args...)
	c.mu.Lock()
	wedged := d.wedged
	if wedged {
		c.skipped[d.name]++
	}
	c.mu.Unlock()
	if wedged {
		return result{code: -1, stderr: "hearth: (not run: an earlier command on " + d.name + " did not end)"}, true
	}
	if c.overBudget.Load() {
		c.mu.Lock()
		c.skipped[d.name]++
		c.mu.Unlock()
		return result{code: -1, stderr: "hearth: (not run: the test is over its time budget)"}, true
	}
	r, ok := c.run(label, kill, limit, stdin, append([]string{"chat", "--profile", d.p.dir, "--verbose"}, args...)...)
	r.stderr = c.takeLog(d, args, r.stderr)
	if !ok {
		c.mu.Lock()
		d.wedged = true
		c.mu.Unlock()
	}
	return r, ok
}

// takeLog moves the --verbose log lines out of a chat command's stderr
// into the verbose log (written beside the trace), and keeps the
// undecodable deliveries it logged for the report, whatever the command
// (a send catches up on deliveries first); a frame from a server that did
// not decode is a violation of its own. It returns the other lines.
func (c *churn) takeLog(d *cdev, args []string, stderr string) string {
	var rest []string
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := strings.Join(args, " ")
	if len(cmd) > 60 {
		cmd = cmd[:60]
	}
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, "time=") {
			if line != "" {
				rest = append(rest, line)
			}
			continue
		}
		if *churnDebug || !strings.Contains(line, "level=DEBUG") {
			c.verboseLog = append(c.verboseLog, fmt.Sprintf("%4d %s [%s] %s", c.step, d.name, cmd, line))
		}
		if strings.Contains(line, "a frame from the server did not decode") {
			// A stream out of step (client/session): nothing is lost,
			// but it is a server or transport fault (decision: never).
			c.viol["frame did not decode"] = append(c.viol["frame did not decode"],
				fmt.Sprintf("step %d: %s [%s]: %s", c.step, d.name, cmd, logAttr(line, "err")))
		}
		if !strings.Contains(line, "skipping undecodable delivery") {
			continue
		}
		conv := logAttr(line, "conversation")
		if c.undecodable[d] == nil {
			c.undecodable[d] = map[string]string{}
		}
		if _, ok := c.undecodable[d][conv]; !ok {
			c.undecodable[d][conv] = logAttr(line, "err")
		}
	}
	if len(rest) == 0 {
		return ""
	}
	return strings.Join(rest, "\n") + "\n"
}

// linkProfile logs p in as a pending device with loginArgs, passes the
// link code it prints to approve, and waits (up to limit) for the login to
// finish active. It returns the new device's id.
func linkProfile(p *profile, limit time.Duration, approve func(code string) error, loginArgs ...string) (string, error) {
	id, _, err := linkProfileLog(p, limit, approve, loginArgs...)
	return id, err
}

// linkProfileLog is linkProfile that also returns the login's stderr.
func linkProfileLog(p *profile, limit time.Duration, approve func(code string) error, loginArgs ...string) (id, stderrOut string, err error) {
	var stderr lockedBuffer
	id, err = linkProfileTo(p, limit, approve, &stderr, loginArgs...)
	return id, stderr.String(), err
}

func linkProfileTo(p *profile, limit time.Duration, approve func(code string) error, stderr *lockedBuffer, loginArgs ...string) (string, error) {
	cmd := exec.Command(hearthBin, append([]string{"chat", "--profile", p.dir}, loginArgs...)...)
	cmd.Stdin = strings.NewReader(password(p.user))
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	codes := make(chan string, 1)
	done := make(chan error, 1)
	var rest []string
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if v, ok := strings.CutPrefix(lines.Text(), "link-code: "); ok {
				codes <- v
			}
			rest = append(rest, lines.Text())
		}
		done <- cmd.Wait()
	}()
	timeout := time.After(limit)
	fail := func(format string, args ...any) (string, error) {
		cmd.Process.Kill()
		<-done
		return "", fmt.Errorf(format+"; stderr: %s", append(args, firstLine(stderr.String()))...)
	}
	select {
	case code := <-codes:
		if err := approve(code); err != nil {
			// The approval may have taken effect with its answer lost (a
			// dropped connection): the pending login, which ends active
			// once approved, tells.
			select {
			case werr := <-done:
				if werr != nil {
					return "", fmt.Errorf("%v; pending login: %v; stderr: %s", err, werr, firstLine(stderr.String()))
				}
				kv := keyValues(strings.Join(rest, "\n"))
				if kv["status"] != "active" || kv["device"] == "" {
					return "", fmt.Errorf("%v; linked device output %q", err, rest)
				}
				return kv["device"], nil
			case <-time.After(15 * time.Second):
				return fail("%v", err)
			}
		}
	case err := <-done:
		return "", fmt.Errorf("pending login printed no link-code (%v): %q; stderr: %s", err, rest, firstLine(stderr.String()))
	case <-timeout:
		return fail("pending login printed no link-code within %v", limit)
	}
	select {
	case err := <-done:
		if err != nil {
			return "", fmt.Errorf("pending login: %v; stderr: %s", err, firstLine(stderr.String()))
		}
	case <-timeout:
		return fail("pending login did not finish within %v after approval", limit)
	}
	kv := keyValues(strings.Join(rest, "\n"))
	if kv["status"] != "active" || kv["device"] == "" {
		return "", fmt.Errorf("linked device output %q", rest)
	}
	return kv["device"], nil
}

type histMsg = store.Message

func parseHistory(out string) ([]histMsg, error) {
	var msgs []histMsg
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m histMsg
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("history line %q: %v", line, err)
		}
		if m.Event == "" {
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// finalRound: every member device of every conversation sends a marker;
// every other member device must then hold it (checked by checkHistories).
func (c *churn) finalRound() {
	c.step++
	c.final = true
	c.logf("final round")
	byDev := map[*cdev][]*conv{}
	var devs []*cdev
	for _, cv := range c.convs {
		for _, d := range cv.devices() {
			if byDev[d] == nil {
				devs = append(devs, d)
			}
			byDev[d] = append(byDev[d], cv)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for _, d := range devs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, cv := range byDev[d] {
				c.send(cv, d, 0)
			}
		})
	}
	wg.Wait()
	c.quiesce("after the final round")
}

// checkHistories reads every active device's history of every
// conversation it had a part in and checks the invariants.
func (c *churn) checkHistories() {
	type key struct {
		d  *cdev
		cv *conv
	}
	expect := map[key]bool{}
	for _, m := range c.msgs {
		for _, d := range m.members {
			expect[key{d, m.conv}] = true
		}
	}
	for _, cv := range c.convs {
		for _, d := range cv.devices() {
			expect[key{d, cv}] = true
		}
	}
	hist := map[key]map[string]histMsg{}       // text -> message
	convIDs := map[*conv]map[string][]string{} // conversation sent to -> devices
	allIDs := map[*conv]map[string]bool{}      // every conversation id seen
	seqs := map[string]map[uint64][]string{}   // text -> seq -> devices
	var keys []key
	for k := range expect {
		if !k.d.revoked {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].cv.name != keys[j].cv.name {
			return keys[i].cv.name < keys[j].cv.name
		}
		return keys[i].d.name < keys[j].d.name
	})
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			msgs, err := c.history(k.d, k.cv)
			<-sem
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				c.violate("history failed", "%s history of %s: %v", k.d.name, k.cv.name, err)
				return
			}
			byText := map[string]histMsg{}
			// A 1:1's history lists every direct conversation the device has
			// with the peer (two devices that started it at the same time
			// made two; decision 0007), the one it sends to last; each is
			// in its own seq order.
			lastSeq := map[string]uint64{}
			for _, m := range msgs {
				if old, dup := byText[m.Text]; dup {
					c.violate("duplicated", "%s: %q in %s at seq %d and %d", k.d.name, m.Text, k.cv.name, old.Seq, m.Seq)
				}
				if m.Seq <= lastSeq[m.Conversation] {
					c.violate("out of order", "%s: %s history has seq %d after %d", k.d.name, k.cv.name, m.Seq, lastSeq[m.Conversation])
				}
				lastSeq[m.Conversation] = m.Seq
				byText[m.Text] = m
				if allIDs[k.cv] == nil {
					allIDs[k.cv] = map[string]bool{}
				}
				allIDs[k.cv][m.Conversation] = true
				if seqs[m.Text] == nil {
					seqs[m.Text] = map[uint64][]string{}
				}
				seqs[m.Text][m.Seq] = append(seqs[m.Text][m.Seq], k.d.name)
			}
			if n := len(msgs); n > 0 {
				// The conversation the device sends to: its final marker is there.
				cur := msgs[n-1].Conversation
				if convIDs[k.cv] == nil {
					convIDs[k.cv] = map[string][]string{}
				}
				convIDs[k.cv][cur] = append(convIDs[k.cv][cur], k.d.name)
			}
			hist[k] = byText
		})
	}
	wg.Wait()

	for cv, ids := range convIDs {
		if len(ids) > 1 {
			c.violate("conversation split", "%s is %d conversations (the one each device sends to): %v", cv.name, len(ids), ids)
		}
	}
	for text, bySeq := range seqs {
		if len(bySeq) > 1 {
			c.violate("out of order", "%q has different hub seqs on different devices: %v", text, bySeq)
		}
	}
	endMembers := map[*conv][]*cdev{}
	for _, cv := range c.convs {
		endMembers[cv] = cv.devices()
	}
	acked, maybe, maybeSeen := 0, 0, 0
	for _, m := range c.msgs {
		missing := func(d *cdev) {
			kind, why := "lost", ""
			if m.final {
				kind = "final message not received"
			}
			for id := range allIDs[m.conv] {
				if e, ok := c.undecodable[d][id]; ok {
					kind, why = "undecryptable", "; its recv skipped an undecodable delivery of that conversation: "+e
				}
			}
			if m.conv.id != "" {
				if e, ok := c.undecodable[d][m.conv.id]; ok {
					kind, why = "undecryptable", "; its recv skipped an undecodable delivery of that conversation: "+e
				}
			}
			c.violate(kind, "%s: %q (step %d, %s -> %s) missing%s", d.name, m.text, m.step, m.from.name, m.conv.name, why)
		}
		if m.acked {
			acked++
			for _, d := range m.members {
				if d.revoked || hist[key{d, m.conv}] == nil {
					continue // revoked since, or history failed (reported)
				}
				if _, ok := hist[key{d, m.conv}][m.text]; !ok {
					missing(d)
				}
			}
			continue
		}
		if m.final {
			continue // reported as cannot send at end below
		}
		// Maybe sent (killed or failed): at most once (checked above), and
		// if anyone holds it, everyone who was a member then and still is.
		maybe++
		var holders []string
		for k, h := range hist {
			if k.cv == m.conv {
				if _, ok := h[m.text]; ok {
					holders = append(holders, k.d.name)
				}
			}
		}
		if len(holders) == 0 {
			continue
		}
		maybeSeen++
		for _, d := range m.members {
			if d.revoked || !slices.Contains(endMembers[m.conv], d) || hist[key{d, m.conv}] == nil {
				continue
			}
			if _, ok := hist[key{d, m.conv}][m.text]; !ok {
				missing(d)
			}
		}
	}
	for _, m := range c.msgs {
		if m.final && !m.acked {
			c.violate("cannot send at end", "%s -> %s (%s)", m.from.name, m.conv.name, c.failOf(m))
		}
	}
	c.logf("checked %d messages acknowledged, %d maybe sent (%d of them delivered)", acked, maybe, maybeSeen)
}

// failOf finds the trace line of m's failed send.
func (c *churn) failOf(m *cmsg) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.trace {
		if strings.Contains(l, strconv.Quote(m.text)) {
			_, after, _ := strings.Cut(l, "FAILED ")
			return after
		}
	}
	return "?"
}

// checkProcesses: a `recv --follow` on every active device and the
// servers stay at ~0 CPU when idle, the followers end on SIGINT, and no
// other hearth process of this test is left running.
func (c *churn) checkProcesses() {
	type proc struct {
		name string
		pid  int
		cmd  *exec.Cmd
		done chan error
	}
	var procs []*proc
	for _, u := range c.users {
		for _, d := range u.active() {
			if d.wedged {
				continue
			}
			cmd := exec.Command(hearthBin, "chat", "--profile", d.p.dir, "recv", "--follow", "--json")
			if err := cmd.Start(); err != nil {
				c.t.Fatal(err)
			}
			p := &proc{name: "recv --follow (" + d.name + ")", pid: cmd.Process.Pid, cmd: cmd, done: make(chan error, 1)}
			go func() { p.done <- cmd.Wait() }()
			procs = append(procs, p)
		}
	}
	servers := map[int]bool{}
	for _, s := range c.servers {
		procs = append(procs, &proc{name: "serve " + s.domain, pid: s.srv.cmd.Process.Pid})
		servers[s.srv.cmd.Process.Pid] = true
	}
	time.Sleep(3 * time.Second) // connected, backlog done
	before := map[int]int{}
	for _, p := range procs {
		before[p.pid] = cpuTicks(p.pid)
	}
	const window = 2 * time.Second
	time.Sleep(window)
	for _, p := range procs {
		if b, a := before[p.pid], cpuTicks(p.pid); b >= 0 && a >= 0 && a-b >= 20 { // 20 ticks: 10% of a core
			c.violate("spins when idle", "%s used %d0 ms of CPU in %v idle", p.name, a-b, window)
		}
	}
	for _, p := range procs {
		if p.cmd == nil {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			c.violate("command did not end", "%s did not end within 5 s of SIGINT", p.name)
		}
	}
	// This test's processes name its folders (servers' --dir, profiles'
	// --profile), all under its temporary folder; other end-to-end tests
	// run side by side with it (parallelE2E) and have processes of their
	// own.
	mine := filepath.Dir(c.t.TempDir()) + string(filepath.Separator)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || servers[pid] {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == hearthBin {
			raw, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if cmdline := strings.ReplaceAll(string(raw), "\x00", " "); strings.Contains(cmdline, mine) {
				c.violate("process left running", "pid %d: %s", pid, cmdline)
			}
		}
	}
}

// cpuTicks is utime+stime of pid (-1 if unknown).
func cpuTicks(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return -1
	}
	f := strings.Fields(rest) // f[0] is field 3 (state); utime, stime are fields 14, 15
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// report writes the trace to a file and prints the violations grouped by
// kind, a few examples each.
func (c *churn) report() {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	path := *churnTrace
	if path == "" {
		path = filepath.Join(os.TempDir(), fmt.Sprintf("hearth-churn-%d.log", c.seed))
	}
	if err := os.WriteFile(path, []byte(strings.Join(c.trace, "\n")+"\n"), 0o644); err != nil {
		t.Logf("write trace: %v", err)
	}
	vpath := strings.TrimSuffix(path, ".log") + "-verbose.log"
	if err := os.WriteFile(vpath, []byte(strings.Join(c.verboseLog, "\n")+"\n"), 0o644); err != nil {
		t.Logf("write verbose log: %v", err)
	}
	if len(c.viol) > 0 || *churnDebug {
		for i, s := range c.servers {
			spath := strings.TrimSuffix(path, ".log") + "-server-" + s.domain + ".log"
			if err := os.WriteFile(spath, []byte(c.serverLogs[i]+s.srv.log()), 0o644); err != nil {
				t.Logf("write server log: %v", err)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "churn seed %d: %d steps, %d sends, %d devices over time; schedule in %s, client logs (info and up) in %s\n", c.seed, c.step, len(c.msgs), c.nDevices, path, vpath)
	fmt.Fprintf(&b, "reproduce: go test ./cmd/hearth -run 'TestChurn$' -churn.seed=%d -churn.duration=%v", c.seed, *churnDuration)
	if *churnOps != "" {
		fmt.Fprintf(&b, " -churn.ops=%s", *churnOps)
	}
	b.WriteString("\n")
	if len(c.recvErrs) > 0 {
		fmt.Fprintf(&b, "failed commands (not violations by themselves; a failed send stays queued, 'maybe sent'):\n")
		var ks []string
		for k := range c.recvErrs {
			ks = append(ks, k)
		}
		sort.Slice(ks, func(i, j int) bool { return len(c.recvErrs[ks[i]]) > len(c.recvErrs[ks[j]]) })
		for i, k := range ks {
			if i == 12 {
				fmt.Fprintf(&b, "  … %d more kinds\n", len(ks)-i)
				break
			}
			steps := c.recvErrs[k]
			fmt.Fprintf(&b, "  %3d× %s (steps %s)\n", len(steps), k, strings.Join(steps[:min(len(steps), 8)], ","))
		}
	}
	for name, n := range c.skipped {
		fmt.Fprintf(&b, "%s is wedged (a command on it did not end): %d later commands on it not run, counted as failed\n", name, n)
	}
	if len(c.viol) == 0 {
		t.Logf("%sno invariant violated", b.String())
		return
	}
	var kinds []string
	for k := range c.viol {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "INVARIANTS VIOLATED:\n")
	for _, k := range kinds {
		ex := c.viol[k]
		fmt.Fprintf(&b, "  %s: %d\n", k, len(ex))
		for i, e := range ex {
			if i == 6 {
				fmt.Fprintf(&b, "    … %d more\n", len(ex)-i)
				break
			}
			fmt.Fprintf(&b, "    %s\n", e)
		}
	}
	t.Error(b.String())
}
