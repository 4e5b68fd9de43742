package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/store"
)

func TestBootstrapAnOrganizationItsPerformerAndAnAdminToken(t *testing.T) {
	bin := build(t)
	dbURL := pgtemp.New(t)
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_LEVEL=")
	crescendo := func(args ...string) (stdout, stderr string, err error) {
		t.Helper()
		var out, errOut bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err = cmd.Run()
		return out.String(), errOut.String(), err
	}
	ok := func(args ...string) string {
		t.Helper()
		stdout, stderr, err := crescendo(args...)
		if err != nil {
			t.Fatalf("crescendo %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return stdout
	}
	fails := func(want string, args ...string) {
		t.Helper()
		_, stderr, err := crescendo(args...)
		if err == nil || !strings.Contains(stderr, want) {
			t.Fatalf("crescendo %s: %v, stderr %q; want a failure saying %q", strings.Join(args, " "), err, stderr, want)
		}
	}

	if out := ok("orgs", "create", "--id", "acme", "--name", "Acme Records"); !strings.Contains(out, "acme") {
		t.Fatalf("orgs create printed %q", out)
	}
	fails("already exists", "orgs", "create", "--id", "acme", "--name", "Again")
	fails("--id, --name required", "orgs", "create")
	fails("id: must be", "orgs", "create", "--id", "Not Valid", "--name", "x")
	fails(`unknown command "orgs delete"`, "orgs", "delete")
	fails("not found", "performers", "assign", "--org", "acme", "--performer", "aurora-lane")
	fails("role: must be", "tokens", "create", "--org", "acme", "--role", "root", "--name", "x")

	st, err := store.Open(t.Context(), store.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutPerformer(t.Context(), "aurora-lane", "Aurora Lane"); err != nil {
		t.Fatal(err)
	}
	ok("performers", "assign", "--org", "acme", "--performer", "aurora-lane")
	fails("not found", "performers", "assign", "--org", "nobody", "--performer", "aurora-lane")

	token := strings.TrimSpace(ok("tokens", "create", "--org", "acme", "--role", "admin", "--name", "bootstrap"))
	p, found, err := st.Authenticate(t.Context(), token)
	if err != nil || !found || p.OrgID != "acme" || p.Role != store.RoleAdmin {
		t.Fatalf("the printed token %q authenticates as %+v %v %v", token, p, found, err)
	}
	if _, err := st.OrgPerformerScoring(t.Context(), "acme", "aurora-lane"); err != nil {
		t.Fatalf("acme does not own its assigned performer: %v", err)
	}
}
