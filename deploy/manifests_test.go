package deploy_test

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"sigs.k8s.io/yaml"

	"github.com/crescendo-hq/crescendo/config"
)

// object is one decoded YAML document.
type object = map[string]any

// get walks a decoded document: get(o, "spec", "template", "spec").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := get(v, path...).(string); return s }

func list(v any, path ...any) []any { s, _ := get(v, path...).([]any); return s }

// manifests decodes every document of every file in deploy/k8s, by kind.
func manifests(t *testing.T) map[string][]object {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string][]object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var o object
			if err := yaml.UnmarshalStrict([]byte(doc), &o); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			kind := str(o, "kind")
			if kind == "" || str(o, "apiVersion") == "" {
				t.Fatalf("%s document %d has no kind or apiVersion", f, i)
			}
			out[kind] = append(out[kind], o)
		}
	}
	return out
}

func one(t *testing.T, m map[string][]object, kind string) object {
	t.Helper()
	if len(m[kind]) != 1 {
		t.Fatalf("want one %s, have %d", kind, len(m[kind]))
	}
	return m[kind][0]
}

func settingNames() map[string]bool {
	names := map[string]bool{}
	for _, v := range config.Vars {
		names[v.Name] = true
	}
	return names
}

// routes lists the GET paths the API documents (api's tests keep the document
// and the served routes equal).
func routes(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		if item.Get != nil {
			out[path] = true
		}
	}
	return out
}

// subcommands runs the real binary's help and lists its commands.
func subcommands(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "run", "../cmd/crescendo", "help").CombinedOutput()
	if err != nil {
		t.Fatalf("crescendo help: %v\n%s", err, out)
	}
	cmds := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "  ") && len(f) > 0 {
			cmds[f[0]] = true
		}
	}
	if !cmds["serve"] {
		t.Fatalf("no serve command in the help:\n%s", out)
	}
	return cmds
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// dockerfile returns the ENTRYPOINT, the EXPOSEd ports and the ENV names.
func dockerfile(t *testing.T) (entrypoint []string, exposed []int, env map[string]string) {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	env = map[string]string{}
	stages := 0
	for _, line := range strings.Split(string(b), "\n") {
		instr, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			stages++
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT %s is not in exec form: %v", rest, err)
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Fatalf("EXPOSE %s: %v", p, err)
				}
				exposed = append(exposed, n)
			}
		case "ENV":
			k, v, _ := strings.Cut(rest, "=")
			env[k] = v
		case "USER":
			if u := strings.Fields(rest)[0]; strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0") {
				t.Errorf("the image runs as %s", u)
			}
		}
	}
	if stages < 2 {
		t.Errorf("the Dockerfile has %d stages, want a build stage and a small runtime one", stages)
	}
	if !regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static\S*:nonroot$`).Match(b) {
		t.Error("the runtime stage is not distroless static nonroot")
	}
	return entrypoint, exposed, env
}

// The image, the compose file and the Kubernetes manifests agree with the
// code: setting names, the HTTP port, probe paths, the entrypoint's
// subcommand, and with each other (selectors, names, the scaler's group).
func TestDeployFilesMatchTheCode(t *testing.T) {
	names, paths, cmds := settingNames(), routes(t), subcommands(t)
	checkEnv := func(where, name string) {
		if !names[name] {
			t.Errorf("%s sets %s, which is not a setting (config.Vars)", where, name)
		}
	}

	entry, exposed, imageEnv := dockerfile(t)
	if len(entry) != 2 || entry[0] != "/crescendo" || !cmds[entry[1]] || entry[1] != "serve" {
		t.Errorf("ENTRYPOINT %v: want /crescendo serve, a real subcommand", entry)
	}
	for k := range imageEnv {
		checkEnv("Dockerfile", k)
	}
	httpPort := port(t, imageEnv["HTTP_ADDR"])
	if !slices.Equal(exposed, []int{httpPort}) {
		t.Errorf("EXPOSE %v, HTTP_ADDR port %d", exposed, httpPort)
	}

	m := manifests(t)
	cm := one(t, m, "ConfigMap")
	data, _ := get(cm, "data").(map[string]any)
	for k := range data {
		checkEnv("ConfigMap "+str(cm, "metadata", "name"), k)
	}
	if p := port(t, data["HTTP_ADDR"].(string)); p != httpPort {
		t.Errorf("ConfigMap HTTP_ADDR port %d, image %d", p, httpPort)
	}

	dep := one(t, m, "Deployment")
	pod := get(dep, "spec", "template")
	labels, _ := get(pod, "metadata", "labels").(map[string]any)
	matchesPod := func(what string, sel any) {
		s, _ := sel.(map[string]any)
		if len(s) == 0 {
			t.Errorf("%s selects nothing", what)
		}
		for k, v := range s {
			if labels[k] != v {
				t.Errorf("%s selects %s=%v, the pods have %v", what, k, v, labels[k])
			}
		}
	}
	matchesPod("the Deployment", get(dep, "spec", "selector", "matchLabels"))
	containers := list(pod, "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers", len(containers))
	}
	c := containers[0]
	if cmd := list(c, "command"); cmd != nil {
		t.Errorf("the container overrides the image's entrypoint with %v", cmd)
	}
	if args := list(c, "args"); len(args) > 0 {
		t.Errorf("args %v would follow the entrypoint's serve", args)
	}
	portNames := map[string]int{}
	for _, p := range list(c, "ports") {
		n, _ := get(p, "containerPort").(float64)
		portNames[str(p, "name")] = int(n)
		if int(n) != httpPort {
			t.Errorf("containerPort %v, HTTP_ADDR port %d", n, httpPort)
		}
	}
	secrets := map[string]bool{}
	for _, e := range list(c, "env") {
		checkEnv("the Deployment", str(e, "name"))
		if s := str(e, "valueFrom", "secretKeyRef", "name"); s != "" {
			secrets[s] = true
			if k := str(e, "valueFrom", "secretKeyRef", "key"); k != str(e, "name") {
				t.Errorf("%s comes from key %s of %s", str(e, "name"), k, s)
			}
		}
	}
	for _, secret := range []string{"DATABASE_URL", "OFFER_SIGNING_KEYS", "TWILIO_AUTH_TOKEN", "SENDGRID_API_KEY"} {
		if _, inConfigMap := data[secret]; inConfigMap {
			t.Errorf("%s is a secret but sits in the ConfigMap", secret)
		}
	}
	if len(secrets) == 0 {
		t.Error("no setting comes from a Secret")
	}
	for _, ref := range list(c, "envFrom") {
		if n := str(ref, "configMapRef", "name"); n != "" && n != str(cm, "metadata", "name") {
			t.Errorf("envFrom names ConfigMap %s, which is not in deploy/k8s", n)
		}
	}
	for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
		path := str(c, probe, "httpGet", "path")
		if !paths[path] {
			t.Errorf("%s checks %q, which the API does not serve", probe, path)
		}
		if p := get(c, probe, "httpGet", "port"); p != "http" && p != float64(httpPort) {
			t.Errorf("%s checks port %v", probe, p)
		}
	}
	if str(c, "readinessProbe", "httpGet", "path") != "/readyz" || str(c, "livenessProbe", "httpGet", "path") != "/healthz" {
		t.Error("readiness must be /readyz and liveness /healthz")
	}
	if str(c, "resources", "requests", "cpu") == "" || str(c, "resources", "requests", "memory") == "" {
		t.Error("no CPU and memory requests")
	}
	grace, _ := get(pod, "spec", "terminationGracePeriodSeconds").(float64)
	if d := data["SHUTDOWN_TIMEOUT"]; d != nil {
		if s := strings.TrimSuffix(d.(string), "s"); s == d.(string) || mustAtoi(t, s) >= int(grace) {
			t.Errorf("SHUTDOWN_TIMEOUT %v must be in seconds and below terminationGracePeriodSeconds %v", d, grace)
		}
	}

	svc := one(t, m, "Service")
	matchesPod("the Service", get(svc, "spec", "selector"))
	for _, p := range list(svc, "spec", "ports") {
		switch tp := get(p, "targetPort").(type) {
		case string:
			if _, ok := portNames[tp]; !ok {
				t.Errorf("the Service targets port %q, which the container does not name", tp)
			}
		case float64:
			if int(tp) != httpPort {
				t.Errorf("the Service targets port %v", tp)
			}
		}
	}
	pdb := one(t, m, "PodDisruptionBudget")
	matchesPod("the PodDisruptionBudget", get(pdb, "spec", "selector", "matchLabels"))

	so := one(t, m, "ScaledObject")
	if n := str(so, "spec", "scaleTargetRef", "name"); n != str(dep, "metadata", "name") {
		t.Errorf("the ScaledObject scales %q, the Deployment is %q", n, str(dep, "metadata", "name"))
	}
	trig := list(so, "spec", "triggers")
	if len(trig) != 1 || str(trig[0], "type") != "kafka" {
		t.Fatalf("triggers %v: want KEDA's kafka scaler", trig)
	}
	for key, setting := range map[string]string{"consumerGroup": "KAFKA_GROUP_ID", "topic": "KAFKA_TOPIC", "bootstrapServers": "KAFKA_BROKERS"} {
		if got, want := str(trig[0], "metadata", key), data[setting]; got != want {
			t.Errorf("the scaler's %s is %q, the ConfigMap's %s %q", key, got, setting, want)
		}
	}
	maxReplicas, _ := get(so, "spec", "maxReplicaCount").(float64)
	if p := mustAtoi(t, data["KAFKA_PARTITIONS"].(string)); int(maxReplicas) > p {
		t.Errorf("maxReplicaCount %v is over the %d partitions: the extra replicas would idle", maxReplicas, p)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// The compose file runs a real Kafka in KRaft mode, Postgres and Crescendo
// from this Dockerfile, with settings the code knows.
func TestComposeFileMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc object
	if err := yaml.UnmarshalStrict(b, &doc); err != nil {
		t.Fatal(err)
	}
	names := settingNames()
	kafka := get(doc, "services", "kafka")
	if img := str(kafka, "image"); !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("Kafka image %q, want apache/kafka", img)
	}
	if roles := str(kafka, "environment", "KAFKA_PROCESS_ROLES"); roles != "broker,controller" {
		t.Errorf("Kafka roles %q: want a KRaft broker and controller", roles)
	}
	if !strings.HasPrefix(str(get(doc, "services", "postgres"), "image"), "postgres:") {
		t.Error("no Postgres service")
	}
	cr := get(doc, "services", "crescendo")
	if str(cr, "build", "dockerfile") != "deploy/Dockerfile" || str(cr, "build", "context") != ".." {
		t.Errorf("crescendo builds from %v", get(cr, "build"))
	}
	env, _ := get(cr, "environment").(map[string]any)
	for k := range env {
		if !names[k] {
			t.Errorf("compose sets %s, which is not a setting", k)
		}
	}
	if !strings.HasPrefix(str(env, "KAFKA_BROKERS"), "kafka:") || !strings.Contains(str(env, "DATABASE_URL"), "@postgres:") {
		t.Errorf("crescendo does not point at the compose Kafka and Postgres: %v", env)
	}
	_, p, _ := net.SplitHostPort(str(env, "HTTP_ADDR"))
	if ports := list(cr, "ports"); len(ports) != 1 || !strings.HasSuffix(ports[0].(string), ":"+p) {
		t.Errorf("published ports %v, HTTP_ADDR port %s", ports, p)
	}
	for _, dep := range []string{"kafka", "postgres"} {
		if str(cr, "depends_on", dep, "condition") != "service_healthy" || get(doc, "services", dep, "healthcheck") == nil {
			t.Errorf("crescendo does not wait for a healthy %s", dep)
		}
	}
	if bytes.Contains(b, []byte("OFFER_SIGNING_KEYS: k")) {
		t.Error("a signing key is written in the compose file")
	}
}
