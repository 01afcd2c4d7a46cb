package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hearth/homeserver/certs"
)

// The churn test of issue 17 ("conversations never break"). See
// docs/churn.md for how to run it and what it checks.
var (
	churnSeed     = flag.Uint64("churn.seed", 3, "seed of TestChurn's schedule (0: time-based; always logged); the default is a schedule known to pass, so the suite stays a gate")
	churnDuration = flag.Duration("churn.duration", 20*time.Second, "how long TestChurn's schedule runs (the checks follow)")
	churnOps      = flag.String("churn.ops", "", "comma-separated operation kinds TestChurn runs (default all: "+strings.Join(churnKinds, ",")+")")
	churnTrace    = flag.String("churn.trace", "", "write TestChurn's executed schedule to this file (default: a file in the temp folder, named in the output)")
	churnDebug    = flag.Bool("churn.debug", false, "keep the chat commands' debug lines in the verbose log and run the servers at log level debug (their logs are written beside the trace on a failure)")
)

// churnKinds are the operation kinds of the schedule (-churn.ops).
var churnKinds = []string{
	"send",        // sends (1-3 at once, distinct conversations) and recv runs
	"group",       // group add / remove / leave (by the creator, the only admin)
	"link",        // link a new device and approve it from another one
	"revoke",      // a device revokes another device of its user
	"adminrevoke", // hearth admin device revoke on the user's server
	"kill",        // SIGKILL a server, restart it on its port after 1-3 s
	"killclient",  // SIGKILL a send 50-600 ms after it started (mid-flush)
	"typo",        // send to a user that does not exist
	"nonmember",   // a user not (or no longer) in a group sends to it: must be refused
}

// TestChurn: 3 servers, 8 users with 1-3 devices each, 1:1 and groups
// across the servers, a seeded random schedule of every kind of change,
// then the invariants of issue 17: every acknowledged message delivered
// exactly once, in hub order, decrypted, on every device that was a member
// when it was sent; every member device at the end can send and be read
// by the others; no command hangs and no process spins.
func TestChurn(t *testing.T) {
	parallelE2E(t)
	seed := *churnSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()) % 1_000_000
	}
	ops := map[string]bool{}
	for _, k := range churnKinds {
		ops[k] = *churnOps == ""
	}
	for _, k := range strings.Split(*churnOps, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		} else if _, ok := ops[k]; !ok {
			t.Fatalf("-churn.ops: unknown kind %q (kinds: %s)", k, strings.Join(churnKinds, ","))
		}
		ops[k] = true
	}
	var enabled []string
	for _, k := range churnKinds {
		if ops[k] {
			enabled = append(enabled, k)
		}
	}
	t.Logf("churn: -churn.seed=%d -churn.duration=%v -churn.ops=%s", seed, *churnDuration, strings.Join(enabled, ","))
	c := &churn{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 17)), ops: ops, viol: map[string][]string{},
		undecodable: map[*cdev]map[string]string{}, recvErrs: map[string][]string{}, skipped: map[string]int{}}
	defer c.report()
	// A failing run stays bounded: every command has its own deadline, and
	// past the budget no new command starts (each counts as skipped), so
	// the test ends soon after and reports "over time budget".
	budget := churnBudget(*churnDuration)
	stop := time.AfterFunc(budget, func() {
		c.overBudget.Store(true)
		c.violate("over time budget", "the test ran longer than %v (schedule %v); the commands left were not run", budget, *churnDuration)
	})
	defer stop.Stop()

	c.setup()
	c.schedule(*churnDuration)
	c.quiesce("after the schedule")
	c.finalRound()
	c.checkHistories()
	c.checkProcesses()
}

// churnBudget is how long TestChurn may run in all for a schedule of d:
// the schedule, plus setup, the recv rounds (at most 90 s each), the final
// round and the checks.
func churnBudget(d time.Duration) time.Duration { return d + d/2 + 6*time.Minute }

// churn is the test's model of the network and what happened to it.
type churn struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	ops     map[string]bool
	servers []*fedServer
	downMu  sync.Mutex
	down    map[int]time.Time // server index -> restart time (downMu)
	users   []*cuser
	convs   []*conv
	step    int
	final   bool // the final round runs

	// memb serializes membership changes (write) against sends (read):
	// the members of a conversation when a message was sent are known.
	memb sync.RWMutex

	mu          sync.Mutex
	viol        map[string][]string // kind -> examples
	trace       []string
	msgs        []*cmsg
	undecodable map[*cdev]map[string]string // device -> conversation -> first error
	recvErrs    map[string][]string         // first line of a failed recv/send's stderr -> examples
	sendFails   int
	skipped     map[string]int // wedged device -> commands not run
	nDevices    int
	verboseLog  []string // the --verbose log lines of every chat command, by device and step
	serverLogs  []string // per server: the logs of its earlier runs (before a SIGKILL)
	overBudget  atomic.Bool
}

type cuser struct {
	name, addr string
	srv        int
	devs       []*cdev
}

type cdev struct {
	u       *cuser
	p       *profile
	id      string
	name    string // alice.2
	revoked bool
	wedged  bool // a command on it did not end (churn.mu)
}

type conv struct {
	name    string // dm:alice-bob or the group's name
	id      string // group id ("" for a 1:1)
	dm      [2]*cuser
	creator *cuser
	members map[*cuser]bool
	mu      sync.Mutex // one membership change or send batch member at a time
}

// cmsg is one send of the schedule.
type cmsg struct {
	text    string
	conv    *conv
	from    *cdev
	step    int
	acked   bool    // exit 0: the hub acknowledged it
	members []*cdev // devices that were members when it was sent
	final   bool    // a marker of the final round
}

func (u *cuser) active() []*cdev {
	var out []*cdev
	for _, d := range u.devs {
		if !d.revoked {
			out = append(out, d)
		}
	}
	return out
}

// target is what `send` and `history` take for cv seen from u.
func (cv *conv) target(u *cuser) string {
	if cv.id != "" {
		return cv.id
	}
	if cv.dm[0] == u {
		return cv.dm[1].addr
	}
	return cv.dm[0].addr
}

func (cv *conv) userList() []*cuser {
	if cv.id == "" {
		return cv.dm[:]
	}
	var out []*cuser
	for u, in := range cv.members {
		if in {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *cuser) int { return strings.Compare(a.name, b.name) })
	return out
}

func (cv *conv) has(u *cuser) bool {
	return cv.id == "" && (cv.dm[0] == u || cv.dm[1] == u) || cv.members[u]
}

// devices are the active devices of the members now.
func (cv *conv) devices() []*cdev {
	var out []*cdev
	for _, u := range cv.userList() {
		out = append(out, u.active()...)
	}
	return out
}

func (c *churn) violate(kind, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.viol[kind] = append(c.viol[kind], fmt.Sprintf(format, args...))
}

func (c *churn) logf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trace = append(c.trace, fmt.Sprintf("%4d %s ", c.step, time.Now().Format("15:04:05.000"))+fmt.Sprintf(format, args...))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\nhearth:"); i >= 0 {
		s = s[i+1:]
	} else if i := strings.Index(s, "hearth:"); i >= 0 {
		s = s[i:]
	}
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// setup starts a, b, c.example pinned to each other, 8 users spread over
// them with 1-3 devices, 1:1 conversations across servers and 3 groups.
func (c *churn) setup() {
	t := c.t
	for _, d := range []string{"a.example", "b.example", "c.example"} {
		f := newFedServer(t, d)
		if *churnDebug {
			setLogLevelDebug(t, f)
		}
		c.servers = append(c.servers, f)
	}
	c.serverLogs = make([]string, len(c.servers))
	c.down = map[int]time.Time{}
	for i, x := range c.servers {
		for _, y := range c.servers[i+1:] {
			pinPair(t, x, y)
		}
	}
	for i, name := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"} {
		s := c.servers[i%3]
		mustHearth(t, password(name), "admin", "--dir", s.dir, "user", "add", name, "--password-stdin")
		u := &cuser{name: name, addr: name + "@" + s.domain, srv: i % 3}
		c.users = append(c.users, u)
		p := newProfile(t, name)
		id := keyValues(p.must(t, password(name), c.loginArgs(u)...))["device"]
		u.devs = append(u.devs, &cdev{u: u, p: p, id: id, name: name + ".1"})
		for range c.rng.IntN(3) {
			d := c.newDev(u)
			linkFedDevice(t, d.p, u.devs[0].p, c.loginArgs(u)...)
			d.id = storedAccount(t, d.p).DeviceID
			u.devs = append(u.devs, d)
		}
	}
	for _, u := range c.users {
		for _, d := range u.devs {
			d.p.must(t, "", "recv", "--timeout", "500ms") // publishes KeyPackages
		}
	}
	// 1:1 conversations: each user with the next two (across servers),
	// opened by a first message so that the hub is the opener's server.
	for i, u := range c.users {
		for _, j := range []int{1, 2} {
			v := c.users[(i+j)%len(c.users)]
			cv := &conv{name: "dm:" + u.name + "-" + v.name, dm: [2]*cuser{u, v}}
			c.convs = append(c.convs, cv)
			c.send(cv, u.devs[0], 0)
		}
	}
	for g := range 3 {
		creator := c.users[c.rng.IntN(len(c.users))]
		cv := &conv{name: fmt.Sprintf("group%d", g), creator: creator, members: map[*cuser]bool{creator: true}}
		var addrs []string
		for _, k := range c.rng.Perm(len(c.users))[:2+c.rng.IntN(3)] {
			if u := c.users[k]; u != creator {
				cv.members[u] = true
				addrs = append(addrs, u.addr)
			}
		}
		out := strings.Split(strings.TrimSpace(creator.devs[0].p.must(t, "", "group", "create", cv.name, "--members", strings.Join(addrs, ","))), "\n")
		cv.id = out[len(out)-1]
		c.convs = append(c.convs, cv)
		c.logf("create %s (%s) by %s members %v", cv.name, cv.id, creator.devs[0].name, names(cv.userList()))
		c.send(cv, creator.devs[0], 0)
	}
	for _, u := range c.users {
		c.nDevices += len(u.devs)
		var ds []string
		for _, d := range u.devs {
			ds = append(ds, d.name+"="+d.id)
		}
		c.logf("user %s devices %s", u.addr, strings.Join(ds, " "))
	}
}

func names(us []*cuser) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.name)
	}
	return out
}

func (c *churn) loginArgs(u *cuser) []string {
	s := c.servers[u.srv]
	return []string{"login", u.addr, "--server", s.listen, "--ca", filepath.Join(s.dir, certs.CAFile), "--password-stdin"}
}

func (c *churn) newDev(u *cuser) *cdev {
	c.nDevices++
	n := len(u.devs) + 1
	return &cdev{u: u, p: newProfile(c.t, u.name), name: fmt.Sprintf("%s.%d", u.name, n)}
}

// schedule runs random steps until d has passed.
func (c *churn) schedule(d time.Duration) {
	end := time.Now().Add(d)
	type kind struct {
		name   string
		weight int
		run    func()
	}
	kinds := []kind{
		{"send", 50, c.sendBatch}, {"send", 12, c.recvBatch}, {"group", 10, c.groupOp}, {"link", 6, c.linkOp},
		{"revoke", 5, c.revokeOp}, {"adminrevoke", 3, c.adminRevokeOp}, {"kill", 5, c.killServer},
		{"typo", 3, c.typoOp}, {"nonmember", 4, c.nonMemberOp},
	}
	total := 0
	for _, k := range kinds {
		if c.ops[k.name] {
			total += k.weight
		}
	}
	if total == 0 {
		return
	}
	for time.Now().Before(end) {
		c.restartDue(false)
		c.step++
		n := c.rng.IntN(total)
		for _, k := range kinds {
			if !c.ops[k.name] {
				continue
			}
			if n < k.weight {
				c.whileRestarting(k.run)
				break
			}
			n -= k.weight
		}
	}
	c.restartDue(true)
}

// whileRestarting runs op in a goroutine and restarts servers on time
// meanwhile (startServe must run on the test's goroutine).
func (c *churn) whileRestarting(op func()) {
	done := make(chan struct{})
	go func() { defer close(done); op() }()
	for {
		next := 100 * time.Millisecond
		select {
		case <-done:
			return
		case <-time.After(next):
			c.restartDue(false)
		}
	}
}

// restartDue restarts the servers whose outage is over (all if force).
func (c *churn) restartDue(force bool) {
	c.downMu.Lock()
	var due []int
	for i, at := range c.down {
		if force || time.Now().After(at) {
			due = append(due, i)
		}
	}
	c.downMu.Unlock()
	for _, i := range due {
		c.servers[i].start(c.t)
		c.downMu.Lock()
		delete(c.down, i)
		c.downMu.Unlock()
		c.logf("restart %s", c.servers[i].domain)
	}
}

func (c *churn) isDown(i int) bool {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	_, ok := c.down[i]
	return ok
}

func (c *churn) killServer() {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	if len(c.down) > 0 {
		return
	}
	i := c.rng.IntN(len(c.servers))
	outage := time.Second + time.Duration(c.rng.IntN(2000))*time.Millisecond
	s := c.servers[i]
	s.srv.cmd.Process.Kill()
	err := <-s.srv.done
	s.srv.done <- err // for startServe's cleanup
	c.serverLogs[i] += s.srv.log() + "--- SIGKILL ---\n"
	c.down[i] = time.Now().Add(outage)
	c.logf("SIGKILL %s (down %v)", s.domain, outage)
}

// pick returns a random element (nil, false when empty).
func pick[T any](rng *rand.Rand, xs []T) (T, bool) {
	var zero T
	if len(xs) == 0 {
		return zero, false
	}
	return xs[rng.IntN(len(xs))], true
}

// sendBatch sends 1-3 messages at once to distinct conversations from
// distinct devices; some sends are killed mid-flush.
func (c *churn) sendBatch() {
	c.memb.RLock()
	defer c.memb.RUnlock()
	var wg sync.WaitGroup
	used := map[*cdev]bool{}
	for _, k := range c.rng.Perm(len(c.convs))[:1+c.rng.IntN(3)] {
		cv := c.convs[k]
		var from []*cdev
		for _, d := range cv.devices() {
			if !used[d] {
				from = append(from, d)
			}
		}
		d, ok := pick(c.rng, from)
		if !ok {
			continue
		}
		used[d] = true
		var kill time.Duration
		if c.ops["killclient"] && c.rng.IntN(6) == 0 {
			kill = time.Duration(50+c.rng.IntN(550)) * time.Millisecond
		}
		wg.Go(func() { c.send(cv, d, kill) })
	}
	wg.Wait()
}

// send sends one message of the schedule from d to cv, killing the
// command after kill (0: never). It records the members at that time;
// callers hold memb (or run alone).
func (c *churn) send(cv *conv, d *cdev, kill time.Duration) *cmsg {
	c.mu.Lock()
	m := &cmsg{text: fmt.Sprintf("m%d-%d-%s", c.step, len(c.msgs), d.name), conv: cv, from: d, step: c.step, final: c.final}
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	m.members = cv.devices()
	timeout := "20s"
	if c.final {
		timeout = "10s" // the network is quiet: a send that needs more is broken
	}
	r, ok := c.runChat(d, kill, 45*time.Second, "", "send", cv.target(d.u), m.text, "--timeout", timeout)
	m.acked = ok && r.code == 0
	switch {
	case kill > 0 && !m.acked:
		c.logf("send %s -> %s %q killed after %v (maybe sent)", d.name, cv.name, m.text, kill)
	case !m.acked:
		c.noteFail("send", r)
		c.logf("send %s -> %s %q FAILED exit %d: %s", d.name, cv.name, m.text, r.code, firstLine(r.stderr))
	default:
		c.logf("send %s -> %s %q ok", d.name, cv.name, m.text)
	}
	return m
}

func (c *churn) noteFail(what string, r result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if what == "send" {
		c.sendFails++
	}
	k := what + ": " + firstLine(r.stderr)
	c.recvErrs[k] = append(c.recvErrs[k], fmt.Sprint(c.step))
}

// recvBatch runs recv on 1-3 random active devices at once.
func (c *churn) recvBatch() {
	var all []*cdev
	for _, u := range c.users {
		all = append(all, u.active()...)
	}
	var wg sync.WaitGroup
	for _, k := range c.rng.Perm(len(all))[:1+c.rng.IntN(3)] {
		wg.Go(func() { c.recv(all[k]) })
	}
	wg.Wait()
}

// recv runs `recv --json --verbose` on d and returns how many messages it
// printed; undecodable deliveries it logs are kept for the report.
func (c *churn) recv(d *cdev) int {
	r, ok := c.runChat(d, 0, 40*time.Second, "", "recv", "--json", "--timeout", "1500ms")
	if !ok {
		return 0
	}
	if r.code != 0 {
		c.noteFail("recv", r)
		c.logf("recv %s FAILED exit %d: %s", d.name, r.code, firstLine(r.stderr))
	}
	return strings.Count(r.stdout, "\n")
}

// logAttr is the value of key in a slog text line.
func logAttr(line, key string) string {
	_, v, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			} else if v[i] == '"' {
				break
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

func (c *churn) groups() []*conv {
	var out []*conv
	for _, cv := range c.convs {
		if cv.id != "" {
			out = append(out, cv)
		}
	}
	return out
}

// groupOp adds, removes or lets leave one user of a random group.
func (c *churn) groupOp() {
	c.memb.Lock()
	defer c.memb.Unlock()
	cv, _ := pick(c.rng, c.groups())
	var in, out []*cuser
	for _, u := range c.users {
		if cv.members[u] {
			if u != cv.creator {
				in = append(in, u)
			}
		} else {
			out = append(out, u)
		}
	}
	admin, ok := pick(c.rng, cv.creator.active())
	if !ok {
		return
	}
	switch op := c.rng.IntN(3); {
	case op == 0 && len(out) > 0 || len(in) == 0:
		u, _ := pick(c.rng, out)
		if u == nil {
			return
		}
		if c.groupCmd(admin, "add", cv.id, u.addr) {
			cv.members[u] = true
		}
		c.logf("group add %s to %s by %s", u.name, cv.name, admin.name)
	case op == 1:
		u, _ := pick(c.rng, in)
		if c.groupCmd(admin, "remove", cv.id, u.addr) {
			cv.members[u] = false
		}
		c.logf("group remove %s from %s by %s", u.name, cv.name, admin.name)
		if d, ok := pick(c.rng, u.active()); ok && !cv.members[u] && c.ops["nonmember"] && c.rng.IntN(2) == 0 {
			c.nonMemberSend(cv, d) // before it ran recv: it has not seen the removal
		}
	default:
		u, _ := pick(c.rng, in)
		d, ok := pick(c.rng, u.active())
		if !ok {
			return
		}
		if c.groupCmd(d, "leave", cv.id) {
			cv.members[u] = false
			// A leave is a request that an admin's device commits at its
			// next flush (docs/groups.md): run one, so that the model's
			// membership is the hub's from now on.
			if a, ok := pick(c.rng, cv.creator.active()); ok {
				c.recv(a)
			}
		}
		c.logf("group leave %s by %s", cv.name, d.name)
	}
}

// groupCmd runs `group ARGS` on d; false (and logged) if it failed: the
// model then keeps the old membership.
func (c *churn) groupCmd(d *cdev, args ...string) bool {
	r, ok := c.runChat(d, 0, 75*time.Second, "", append([]string{"group"}, args...)...)
	if ok && r.code == 0 {
		return true
	}
	c.noteFail("group "+args[0], r)
	c.logf("group %s by %s FAILED exit %d: %s", strings.Join(args, " "), d.name, r.code, firstLine(r.stderr))
	return false
}

// linkOp links a new device to a user with fewer than 3 active devices.
func (c *churn) linkOp() {
	c.memb.Lock()
	defer c.memb.Unlock()
	var us []*cuser
	for _, u := range c.users {
		if n := len(u.active()); n > 0 && n < 3 {
			us = append(us, u)
		}
	}
	u, ok := pick(c.rng, us)
	if !ok {
		return
	}
	// Linking needs the user's server (a login and an approval while it
	// is down fail, as they should): wait out an outage, whose restart is
	// due within 3 s.
	for until := time.Now().Add(10 * time.Second); c.isDown(u.srv) && time.Now().Before(until); {
		time.Sleep(100 * time.Millisecond)
	}
	approver, _ := pick(c.rng, u.active())
	d := c.newDev(u)
	id, stderr, err := linkProfileLog(d.p, 60*time.Second, func(code string) error {
		r, ok := c.runChat(approver, 0, 45*time.Second, "", "device", "approve", code)
		if !ok || r.code != 0 {
			return fmt.Errorf("approve from %s: exit %d: %s", approver.name, r.code, firstLine(r.stderr))
		}
		return nil
	}, append(c.loginArgs(u), "--verbose")...)
	c.takeLog(d, []string{"login"}, stderr)
	if err != nil {
		c.violate("device link failed", "step %d: link %s approved by %s: %v", c.step, d.name, approver.name, err)
		c.logf("link %s by %s FAILED: %v", d.name, approver.name, err)
		return
	}
	d.id = id
	u.devs = append(u.devs, d)
	c.logf("link %s (%s) approved by %s", d.name, id, approver.name)
	// Half the time the new device sends at once, to a group if its user
	// is in one (nothing else ran on it yet).
	if c.ops["send"] && c.rng.IntN(2) == 0 {
		var groups, dms []*conv
		for _, cv := range c.convs {
			if cv.has(u) && cv.id != "" {
				groups = append(groups, cv)
			} else if cv.has(u) {
				dms = append(dms, cv)
			}
		}
		if len(groups) == 0 {
			groups = dms
		}
		if cv, ok := pick(c.rng, groups); ok {
			c.send(cv, d, 0)
		}
	}
}

// revokeOp: one device of a user with 2+ active devices revokes another.
func (c *churn) revokeOp() { c.revoke(false) }

// adminRevokeOp: the user's server admin revokes one of its devices.
func (c *churn) adminRevokeOp() { c.revoke(true) }

func (c *churn) revoke(byAdmin bool) {
	c.memb.Lock()
	defer c.memb.Unlock()
	var us []*cuser
	for _, u := range c.users {
		if len(u.active()) > 1 {
			us = append(us, u)
		}
	}
	u, ok := pick(c.rng, us)
	if !ok {
		return
	}
	act := u.active()
	k := c.rng.IntN(len(act))
	victim, by := act[k], act[(k+1)%len(act)]
	if byAdmin {
		s := c.servers[u.srv]
		if c.isDown(u.srv) {
			return // the admin CLI talks to the database beside the server; keep it simple
		}
		r, ok := c.run(nil, 0, 30*time.Second, "", "admin", "--dir", s.dir, "device", "revoke", u.name, victim.id)
		if !ok || r.code != 0 {
			c.violate("admin revoke failed", "step %d: admin revoke %s: exit %d: %s", c.step, victim.name, r.code, firstLine(r.stderr))
			return
		}
		victim.revoked = true
		c.logf("admin revoke %s (%s)", victim.name, victim.id)
		return
	}
	r, ok := c.runChat(by, 0, 45*time.Second, "", "device", "revoke", victim.id)
	if !ok || r.code != 0 {
		c.noteFail("device revoke", r)
		c.logf("revoke %s by %s FAILED exit %d: %s", victim.name, by.name, r.code, firstLine(r.stderr))
		// The server may have revoked it all the same (its answer lost to
		// a server kill, or the command ended after the call): ask.
		if c.revokedOnServer(by, victim) {
			victim.revoked = true
			c.logf("revoke %s: the server lists it as revoked all the same", victim.name)
		}
		return
	}
	victim.revoked = true
	c.logf("revoke %s (%s) by %s", victim.name, victim.id, by.name)
}

// revokedOnServer reports whether by's server lists victim as revoked
// (`device list --json` on by, a few tries while a server is down). An
// unanswered question counts as not revoked, as before.
func (c *churn) revokedOnServer(by, victim *cdev) bool {
	for try := 0; try < 3; try++ {
		r, ok := c.runChat(by, 0, 20*time.Second, "", "device", "list", "--json")
		if ok && r.code == 0 {
			for _, line := range strings.Split(r.stdout, "\n") {
				var d struct{ Device, Status string }
				if json.Unmarshal([]byte(line), &d) == nil && d.Device == victim.id {
					return d.Status == "revoked"
				}
			}
			return false
		}
		time.Sleep(2 * time.Second)
	}
	return false
}

// typoOp sends to a user that does not exist: refused, and no harm done.
func (c *churn) typoOp() {
	var all []*cdev
	for _, u := range c.users {
		all = append(all, u.active()...)
	}
	d, _ := pick(c.rng, all)
	// A mistyped user on a real server, or a real user on a mistyped
	// (unknown, unreachable) domain.
	s, _ := pick(c.rng, c.servers)
	u, _ := pick(c.rng, c.users)
	to := "nosuchuser@" + s.domain
	if c.rng.IntN(2) == 0 {
		to = u.name + "@" + strings.Replace(c.servers[u.srv].domain, "example", "exmaple", 1)
	}
	r, ok := c.runChat(d, 0, 45*time.Second, "", "send", to, fmt.Sprintf("typo %d", c.step), "--timeout", "20s")
	if ok && r.code == 0 {
		c.violate("send to a mistyped user accepted", "step %d: %s send to %s exited 0", c.step, d.name, to)
	}
	c.logf("send %s -> %s (typo) exit %d: %s", d.name, to, r.code, firstLine(r.stderr))
	// The next send of that device must not be held up by the typo.
	c.memb.RLock()
	defer c.memb.RUnlock()
	var mine []*conv
	for _, cv := range c.convs {
		if cv.has(d.u) {
			mine = append(mine, cv)
		}
	}
	if cv, ok := pick(c.rng, mine); ok {
		if m := c.send(cv, d, 0); !m.acked {
			c.violate("send blocked after a mistyped recipient", "step %d: %s's send to %s after its send to %s: %s", c.step, d.name, cv.name, to, c.failOf(m))
		}
	}
}

// nonMemberOp: a user not in a group (removed, left or never added) sends
// to it; the send must be refused.
func (c *churn) nonMemberOp() {
	c.memb.RLock()
	defer c.memb.RUnlock()
	cv, _ := pick(c.rng, c.groups())
	var out, former []*cdev
	for _, u := range c.users {
		if was, ok := cv.members[u]; ok && !was {
			former = append(former, u.active()...) // removed or left: holds the group's state
		} else if !ok {
			out = append(out, u.active()...)
		}
	}
	if len(former) > 0 && c.rng.IntN(4) > 0 {
		out = former
	}
	if d, ok := pick(c.rng, out); ok {
		c.nonMemberSend(cv, d)
	}
}

func (c *churn) nonMemberSend(cv *conv, d *cdev) {
	text := fmt.Sprintf("nonmember %d from %s", c.step, d.name)
	r, ok := c.runChat(d, 0, 45*time.Second, "", "send", cv.id, text, "--timeout", "20s")
	if ok && r.code == 0 {
		c.violate("non-member send accepted", "step %d: %s (not in %s) sent %q: exit 0", c.step, d.name, cv.name, text)
	}
	c.logf("send %s -> %s (not a member) exit %d: %s", d.name, cv.name, r.code, firstLine(r.stderr))
}

// quiesce runs recv on every active device until a round brings nothing
// new (bounded).
func (c *churn) quiesce(when string) {
	deadline := time.Now().Add(90 * time.Second)
	for round := 1; ; round++ {
		var n sync.WaitGroup
		var mu sync.Mutex
		got := 0
		sem := make(chan struct{}, 4)
		for _, u := range c.users {
			for _, d := range u.active() {
				n.Go(func() {
					sem <- struct{}{}
					k := c.recv(d)
					<-sem
					mu.Lock()
					got += k
					mu.Unlock()
				})
			}
		}
		n.Wait()
		c.logf("quiesce %s: round %d received %d", when, round, got)
		if got == 0 && round > 1 {
			return
		}
		if time.Now().After(deadline) {
			c.violate("never quiet", "%s: devices still receiving after 90 s of recv rounds", when)
			return
		}
	}
}

// history is d's history of cv, by message text (events left out).
func (c *churn) history(d *cdev, cv *conv) ([]histMsg, error) {
	r, ok := c.runChat(d, 0, 30*time.Second, "", "history", cv.target(d.u), "--json")
	if !ok {
		return nil, fmt.Errorf("did not end")
	}
	if r.code != 0 {
		return nil, fmt.Errorf("exit %d: %s", r.code, firstLine(r.stderr))
	}
	return parseHistory(r.stdout)
}

// setLogLevelDebug sets log_level debug in f's config.json and restarts f
// with it (-churn.debug).
func setLogLevelDebug(t *testing.T, f *fedServer) {
	t.Helper()
	f.editConfig(t, func(cfg map[string]any) { cfg["log_level"] = "debug" })
	f.srv.stop(t, syscall.SIGTERM)
	f.start(t)
}
