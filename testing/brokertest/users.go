package brokertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Environment variables that say how to administer the test broker.
const (
	// EnvManagementURL is the broker's management API (e.g.
	// http://guest:guest@127.0.0.1:15672); Main sets it for a container,
	// and it must be set with RABBITMQ_URL for tests that create users.
	EnvManagementURL = "RABBITMQ_MANAGEMENT_URL"
	// envCtlNode and envCtlHome let rabbitmqctl reach a local node: its
	// name, and the home holding its Erlang cookie.
	envCtlNode = "FHIRGW_BROKERTEST_CTL_NODE"
	envCtlHome = "FHIRGW_BROKERTEST_CTL_HOME"
)

// Permissions are a RabbitMQ user's permission regexps on a virtual host.
type Permissions struct {
	Configure, Write, Read string
}

// AddUser creates a broker user with password and permissions on the
// default virtual host, deleted when the test ends. It fails the test when
// the broker cannot be administered (RABBITMQ_URL without
// RABBITMQ_MANAGEMENT_URL).
func AddUser(tb testing.TB, user, password string, perms Permissions) {
	tb.Helper()
	URL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var add, del func(context.Context) error
	switch {
	case os.Getenv(envCtlNode) != "":
		add = func(ctx context.Context) error {
			if err := ctl(ctx, "add_user", user, password); err != nil {
				return err
			}
			return ctl(ctx, "set_permissions", "-p", "/", user, perms.Configure, perms.Write, perms.Read)
		}
		del = func(ctx context.Context) error { return ctl(ctx, "delete_user", user) }
	case os.Getenv(EnvManagementURL) != "":
		base := os.Getenv(EnvManagementURL)
		add = func(ctx context.Context) error {
			if err := manage(ctx, base, http.MethodPut, "/api/users/"+url.PathEscape(user), map[string]string{"password": password, "tags": ""}); err != nil {
				return err
			}
			return manage(ctx, base, http.MethodPut, "/api/permissions/%2F/"+url.PathEscape(user),
				map[string]string{"configure": perms.Configure, "write": perms.Write, "read": perms.Read})
		}
		del = func(ctx context.Context) error {
			return manage(ctx, base, http.MethodDelete, "/api/users/"+url.PathEscape(user), nil)
		}
	default:
		tb.Fatalf("cannot create the broker user %s: set %s to the broker's management API", user, EnvManagementURL)
	}
	if err := add(ctx); err != nil {
		tb.Fatalf("create the broker user %s: %v", user, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := del(ctx); err != nil {
			tb.Logf("delete the broker user %s: %v", user, err)
		}
	})
}

// UserURL is the test broker's URL with another user's credentials.
func UserURL(tb testing.TB, user, password string) string {
	tb.Helper()
	u, err := url.Parse(URL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// ctl runs rabbitmqctl against the local node.
func ctl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, ctlBin, append([]string{"-n", os.Getenv(envCtlNode), "-q"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+os.Getenv(envCtlHome))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rabbitmqctl %s: %v: %s", args[0], err, bytes.TrimSpace(out))
	}
	return nil
}

// manage calls the management API.
func manage(ctx context.Context, base, method, path string, body any) error {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + path)
	if err != nil {
		return err
	}
	user, pass := "guest", "guest"
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
		u.User = nil
	}
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), &buf)
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return nil
}
