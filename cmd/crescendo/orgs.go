package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/crescendo-hq/crescendo/config"
	"github.com/crescendo-hq/crescendo/store"
)

const adminUsage = `usage:
  crescendo orgs create --id ID --name NAME
  crescendo tokens create --org ID --role admin|marketer|viewer --name NAME   (prints the token once)
  crescendo performers assign --org ID --performer ID

They bootstrap marketer tenancy: an organization, its first admin token, and
which performers it owns. DATABASE_URL (and DATABASE_CREATE) as for serve.
`

// adminAction is what a bootstrap subcommand does with the store.
type adminAction func(ctx context.Context, s *store.Store, stdout, stderr io.Writer) error

// adminCommands declare each bootstrap subcommand's flags and return its action,
// which reads them once parsed.
var adminCommands = map[string]func(fs *flag.FlagSet) adminAction{
	"orgs create": func(fs *flag.FlagSet) adminAction {
		id := fs.String("id", "", "organization id: lowercase letters, digits, '-' and '_'")
		name := fs.String("name", "", "organization name")
		return func(ctx context.Context, s *store.Store, stdout, _ io.Writer) error {
			o, err := s.CreateOrganization(ctx, *id, *name)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "organization %s created\n", o.ID)
			return nil
		}
	},
	"tokens create": func(fs *flag.FlagSet) adminAction {
		org := fs.String("org", "", "organization id")
		role := fs.String("role", string(store.RoleAdmin), "admin, marketer or viewer")
		name := fs.String("name", "", "what the token is for")
		return func(ctx context.Context, s *store.Store, stdout, stderr io.Writer) error {
			t, secret, err := s.CreateToken(ctx, *org, store.Role(*role), *name)
			if err != nil {
				return err
			}
			// The token alone on stdout, so that scripts can capture it; it is not stored and not shown again.
			fmt.Fprintln(stdout, secret)
			fmt.Fprintf(stderr, "token %s (%s) created for organization %s; keep it: it is not shown again\n", t.ID, t.Role, t.OrgID)
			return nil
		}
	},
	"performers assign": func(fs *flag.FlagSet) adminAction {
		org := fs.String("org", "", "organization id")
		performer := fs.String("performer", "", "performer id")
		return func(ctx context.Context, s *store.Store, stdout, _ io.Writer) error {
			if err := s.AssignPerformer(ctx, *org, *performer); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "performer %s assigned to organization %s\n", *performer, *org)
			return nil
		}
	},
}

// runAdmin runs `crescendo orgs|tokens|performers <verb> [flags]`.
func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, adminUsage)
		return fmt.Errorf("%s: no subcommand given", args[0])
	}
	name := args[0] + " " + args[1]
	declare, ok := adminCommands[name]
	if !ok {
		fmt.Fprint(stderr, adminUsage)
		return fmt.Errorf("unknown command %q", name)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: crescendo %s [flags]\n", name)
		fs.PrintDefaults()
	}
	do := declare(fs)
	if err := fs.Parse(args[2:]); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	var missing []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Value.String() == "" {
			missing = append(missing, "--"+f.Name)
		}
	})
	if len(missing) > 0 {
		return fmt.Errorf("%s: %s required", name, strings.Join(missing, ", "))
	}
	s, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	// Migration progress is noise here; LOG_LEVEL still turns it on.
	level := s.LogLevel
	if getenv("LOG_LEVEL") == "" {
		level = "warn"
	}
	logger, err := newLogger(stderr, level, "text")
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Config{URL: s.DatabaseURL, CreateDatabase: s.CreateDatabase, Logger: logger})
	if err != nil {
		return fmt.Errorf("opening store: %w", err)
	}
	defer st.Close()
	err = do(ctx, st, stdout, stderr)
	var inv *store.InvalidError
	if errors.As(err, &inv) {
		return fmt.Errorf("%s: invalid flags:\n%w", name, inv.Err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
