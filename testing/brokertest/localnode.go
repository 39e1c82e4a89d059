package brokertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Debian's rabbitmq-server binaries. The /usr/sbin wrappers switch to the
// rabbitmq user and the system node; these run a node as the caller.
const (
	serverBin = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	ctlBin    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
)

// Node is a private RabbitMQ node: its own node name, AMQP and distribution
// ports, data and log directories, config and Erlang cookie, all under a
// temporary directory. It can be stopped and started again with its data,
// to play a broker outage.
type Node struct {
	logf    func(string, ...any)
	dir     string
	name    string
	port    int
	pidFile string
	env     []string

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartNode starts a private local node of Debian's rabbitmq-server
// (installed with apt-get when missing and running as root).
func StartNode(ctx context.Context, logf func(string, ...any)) (*Node, error) {
	if err := ensureInstalled(ctx, logf); err != nil {
		return nil, err
	}
	reapOrphans(logf)
	dir, err := os.MkdirTemp("", nodeDirPattern)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	amqpPort, distPort := ports[0], ports[1]
	n := &Node{logf: logf, dir: dir, port: amqpPort, pidFile: filepath.Join(dir, "rabbitmq.pid"),
		name: fmt.Sprintf("fhirgw-test-%d-%d@localhost", os.Getpid(), amqpPort)}
	conf := fmt.Sprintf(`listeners.tcp.default = 127.0.0.1:%d
loopback_users = none
disk_free_limit.absolute = 50MB
log.file.level = warning
log.console = false
`, amqpPort)
	files := map[string]string{"rabbitmq.conf": conf, "enabled_plugins": "[].\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	n.env = append(os.Environ(),
		"HOME="+dir, // the node's own Erlang cookie
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", amqpPort),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", distPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+n.pidFile,
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
	)
	if err := n.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return n, nil
}

// URL is the node's AMQP URL; it stays the same across Stop and Start.
func (n *Node) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.port) }

// Start runs the node (again, with the data it had) and waits until it
// accepts AMQP connections.
func (n *Node) Start(ctx context.Context) error {
	out, err := os.OpenFile(filepath.Join(n.dir, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(serverBin)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = n.env, n.dir, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	n.logf("brokertest: starting node %s on 127.0.0.1:%d", n.name, n.port)
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", serverBin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(exited) }()
	n.cmd, n.exited = cmd, exited

	wait := exec.CommandContext(ctx, ctlBin, "-n", n.name, "wait", n.pidFile, "--timeout", "120")
	wait.Env = n.env
	if msg, err := wait.CombinedOutput(); err != nil {
		_ = n.Stop(context.Background())
		log, _ := os.ReadFile(filepath.Join(n.dir, "server.out"))
		return fmt.Errorf("node %s did not come up: %v: %s %s", n.name, err, bytes.TrimSpace(msg), tail(log, 800))
	}
	if err := ping(ctx, n.URL()); err != nil {
		_ = n.Stop(context.Background())
		return fmt.Errorf("node %s is up but refuses AMQP: %w", n.name, err)
	}
	n.logf("brokertest: node %s ready", n.name)
	return nil
}

// Stop stops the node and keeps its data for the next Start.
func (n *Node) Stop(ctx context.Context) error {
	if n.cmd == nil {
		return nil
	}
	ctl := exec.CommandContext(ctx, ctlBin, "-n", n.name, "stop", n.pidFile)
	ctl.Env = n.env
	stopErr := ctl.Run()
	defer func() { n.cmd = nil }()
	select {
	case <-n.exited:
		return nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
	return fmt.Errorf("node %s did not stop in time: %v", n.name, stopErr)
}

// Close stops the node and removes its data.
func (n *Node) Close(ctx context.Context) error {
	defer os.RemoveAll(n.dir)
	return n.Stop(ctx)
}

// startLocalNode is StartNode as a Broker.
func startLocalNode(ctx context.Context, logf func(string, ...any)) (*Broker, error) {
	n, err := StartNode(ctx, logf)
	if err != nil {
		return nil, err
	}
	return &Broker{url: n.URL(), close: n.Close, env: map[string]string{envCtlNode: n.name, envCtlHome: n.dir}}, nil
}

// A node's directory records the process that started it, so that a later
// run can stop nodes whose test binary died without stopping them (a test
// timeout, a SIGKILL).
const (
	nodeDirPattern = "fhirgw-rabbitmq-"
	ownerFile      = "owner.pid"
)

// reapOrphans stops the nodes of test processes that no longer exist and
// removes their directories.
func reapOrphans(logf func(string, ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), nodeDirPattern+"*"))
	for _, dir := range dirs {
		owner, err := readPID(filepath.Join(dir, ownerFile))
		if err != nil || alive(owner) {
			continue
		}
		if node, err := readPID(filepath.Join(dir, "rabbitmq.pid")); err == nil && alive(node) {
			logf("brokertest: stopping node %d left behind by process %d", node, owner)
			_ = syscall.Kill(-node, syscall.SIGKILL)
			_ = syscall.Kill(node, syscall.SIGKILL)
		}
		os.RemoveAll(dir)
	}
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// ensureInstalled installs Debian's rabbitmq-server when it is missing and
// the process may (root).
func ensureInstalled(ctx context.Context, logf func(string, ...any)) error {
	if _, err := os.Stat(serverBin); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New(serverBin + " is missing and installing it needs root: apt-get install rabbitmq-server")
	}
	logf("brokertest: installing rabbitmq-server with apt-get")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "rabbitmq-server"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %v: %s", args[0], err, tail(out, 800))
		}
	}
	if _, err := os.Stat(serverBin); err != nil {
		return fmt.Errorf("apt-get installed rabbitmq-server but %s is missing", serverBin)
	}
	return nil
}

// freePorts asks the kernel for n free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
