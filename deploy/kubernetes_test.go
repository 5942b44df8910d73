package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/node"
)

// The parts of the Kubernetes schema the manifests use. Decoding is
// strict: a field that is not here (a typo, or a field in the wrong
// place) fails the test, as it would fail the API server's validation.
type (
	meta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	object struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   meta   `yaml:"metadata"`
	}
	selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	configMap struct {
		object `yaml:",inline"`
		Data   map[string]string `yaml:"data"`
	}
	secret struct {
		object     `yaml:",inline"`
		Type       string            `yaml:"type"`
		StringData map[string]string `yaml:"stringData"`
	}
	servicePort struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		Protocol   string `yaml:"protocol"`
		TargetPort string `yaml:"targetPort"`
	}
	service struct {
		object `yaml:",inline"`
		Spec   struct {
			Type                     string            `yaml:"type"`
			ClusterIP                string            `yaml:"clusterIP"`
			PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
			Selector                 map[string]string `yaml:"selector"`
			Ports                    []servicePort     `yaml:"ports"`
		} `yaml:"spec"`
	}
	podDisruptionBudget struct {
		object `yaml:",inline"`
		Spec   struct {
			MaxUnavailable int      `yaml:"maxUnavailable"`
			Selector       selector `yaml:"selector"`
		} `yaml:"spec"`
	}
	networkPolicy struct {
		object `yaml:",inline"`
		Spec   struct {
			PodSelector selector `yaml:"podSelector"`
			PolicyTypes []string `yaml:"policyTypes"`
			Ingress     []struct {
				From []struct {
					PodSelector selector `yaml:"podSelector"`
				} `yaml:"from"`
				Ports []struct {
					Port     int    `yaml:"port"`
					Protocol string `yaml:"protocol"`
				} `yaml:"ports"`
			} `yaml:"ingress"`
		} `yaml:"spec"`
	}
	probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
		InitialDelaySeconds int `yaml:"initialDelaySeconds"`
		PeriodSeconds       int `yaml:"periodSeconds"`
		FailureThreshold    int `yaml:"failureThreshold"`
		TimeoutSeconds      int `yaml:"timeoutSeconds"`
	}
	containerPort struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			ResourceFieldRef *struct {
				ContainerName string `yaml:"containerName"`
				Resource      string `yaml:"resource"`
				Divisor       string `yaml:"divisor"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	}
	container struct {
		Name           string          `yaml:"name"`
		Image          string          `yaml:"image"`
		Args           []string        `yaml:"args"`
		Env            []envVar        `yaml:"env"`
		Ports          []containerPort `yaml:"ports"`
		ReadinessProbe *probe          `yaml:"readinessProbe"`
		LivenessProbe  *probe          `yaml:"livenessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	statefulSet struct {
		object `yaml:",inline"`
		Spec   struct {
			ServiceName         string `yaml:"serviceName"`
			Replicas            int    `yaml:"replicas"`
			PodManagementPolicy string `yaml:"podManagementPolicy"`
			UpdateStrategy      struct {
				Type string `yaml:"type"`
			} `yaml:"updateStrategy"`
			Selector selector `yaml:"selector"`
			Template struct {
				Metadata meta `yaml:"metadata"`
				Spec     struct {
					TerminationGracePeriodSeconds int   `yaml:"terminationGracePeriodSeconds"`
					EnableServiceLinks            *bool `yaml:"enableServiceLinks"`
					SecurityContext               struct {
						RunAsNonRoot   bool `yaml:"runAsNonRoot"`
						RunAsUser      int  `yaml:"runAsUser"`
						RunAsGroup     int  `yaml:"runAsGroup"`
						FSGroup        int  `yaml:"fsGroup"`
						SeccompProfile struct {
							Type string `yaml:"type"`
						} `yaml:"seccompProfile"`
					} `yaml:"securityContext"`
					TopologySpreadConstraints []struct {
						MaxSkew           int      `yaml:"maxSkew"`
						TopologyKey       string   `yaml:"topologyKey"`
						WhenUnsatisfiable string   `yaml:"whenUnsatisfiable"`
						LabelSelector     selector `yaml:"labelSelector"`
					} `yaml:"topologySpreadConstraints"`
					Containers []container `yaml:"containers"`
					Volumes    []struct {
						Name      string `yaml:"name"`
						ConfigMap *struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
						Secret *struct {
							SecretName  string `yaml:"secretName"`
							DefaultMode int    `yaml:"defaultMode"`
						} `yaml:"secret"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	kustomization struct {
		object    `yaml:",inline"`
		Labels    []map[string]any `yaml:"labels"`
		Resources []string         `yaml:"resources"`
	}
)

// apiVersions is the API version of each kind the manifests use.
var apiVersions = map[string]string{
	"ConfigMap": "v1", "Secret": "v1", "Service": "v1", "StatefulSet": "apps/v1",
	"PodDisruptionBudget": "policy/v1", "NetworkPolicy": "networking.k8s.io/v1",
}

// manifests holds every object of deploy/kubernetes, decoded strictly.
type manifests struct {
	configMaps   map[string]*configMap
	secrets      map[string]*secret
	services     map[string]*service
	statefulSets map[string]*statefulSet
	pdbs         []*podDisruptionBudget
	policies     []*networkPolicy
	ids          []string // kind/name of each object, in file order
}

// decodeManifests decodes the YAML documents of data (named name in
// errors) into m.
func (m *manifests) decode(t *testing.T, name string, data []byte) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		var o object
		if err := doc.Decode(&o); err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		if want, ok := apiVersions[o.Kind]; !ok || o.APIVersion != want {
			t.Fatalf("%s: document %d is %s %s, want one of %v at its API version", name, i, o.APIVersion, o.Kind, apiVersions)
		}
		if o.Metadata.Name == "" || o.Metadata.Labels["app.kubernetes.io/name"] != "weir" {
			t.Errorf("%s: %s %q: want a name and the label app.kubernetes.io/name: weir", name, o.Kind, o.Metadata.Name)
		}
		m.ids = append(m.ids, o.Kind+"/"+o.Metadata.Name)
		var target any
		switch o.Kind {
		case "ConfigMap":
			v := new(configMap)
			m.configMaps[o.Metadata.Name], target = v, v
		case "Secret":
			v := new(secret)
			m.secrets[o.Metadata.Name], target = v, v
		case "Service":
			v := new(service)
			m.services[o.Metadata.Name], target = v, v
		case "StatefulSet":
			v := new(statefulSet)
			m.statefulSets[o.Metadata.Name], target = v, v
		case "PodDisruptionBudget":
			v := new(podDisruptionBudget)
			m.pdbs, target = append(m.pdbs, v), v
		case "NetworkPolicy":
			v := new(networkPolicy)
			m.policies, target = append(m.policies, v), v
		}
		if err := strictDecode(&doc, target); err != nil {
			t.Fatalf("%s: %s %s: %v", name, o.Kind, o.Metadata.Name, err)
		}
	}
}

// strictDecode decodes a document into v, refusing unknown fields.
func strictDecode(doc *yaml.Node, v any) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	return dec.Decode(v)
}

func loadManifests(t *testing.T) (*manifests, *kustomization) {
	t.Helper()
	dir := filepath.Join(root(t), "deploy", "kubernetes")
	m := &manifests{configMaps: map[string]*configMap{}, secrets: map[string]*secret{}, services: map[string]*service{}, statefulSets: map[string]*statefulSet{}}
	var k kustomization
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: %v (kind %q)", err, k.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("kustomization.yaml does not list %s, so kubectl apply -k leaves it out", base)
		}
	}
	for _, r := range k.Resources {
		data, err := os.ReadFile(filepath.Join(dir, r))
		if err != nil {
			t.Fatalf("kustomization.yaml lists %s: %v", r, err)
		}
		m.decode(t, r, data)
	}
	// The Secret's example, which kubectl apply -k leaves out on purpose.
	data, err = os.ReadFile(filepath.Join(dir, "secret", "weir-secrets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m.decode(t, "secret/weir-secrets.yaml", data)
	return m, &k
}

// TestKubernetesManifests: the manifests decode strictly into the kinds
// they claim, and agree with each other, with the weir.yaml they carry
// (loaded and validated by Weir's own loader) and with the image.
func TestKubernetesManifests(t *testing.T) {
	m, _ := loadManifests(t)
	sts := m.statefulSets["weir"]
	cm := m.configMaps["weir-config"]
	sec := m.secrets["weir-secrets"]
	headless, edgeSvc := m.services["weir-peers"], m.services["weir"]
	if sts == nil || cm == nil || sec == nil || headless == nil || edgeSvc == nil || len(m.pdbs) != 1 || len(m.policies) != 1 {
		t.Fatalf("objects %v: want StatefulSet/weir, ConfigMap/weir-config, Secret/weir-secrets, Service/weir-peers, Service/weir, a PodDisruptionBudget and a NetworkPolicy", m.ids)
	}
	pod := sts.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("the pod has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	podLabels := sts.Spec.Template.Metadata.Labels

	// The configuration, as the pod's arguments complete it.
	cfg, err := config.Parse([]byte(cm.Data["weir.yaml"]), "configmap.yaml weir.yaml")
	if err != nil {
		t.Fatalf("the ConfigMap's weir.yaml: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the ConfigMap's weir.yaml does not validate: %v", err)
	}
	args := map[string]string{}
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args %v: want weir serve", c.Args)
	}
	for _, a := range c.Args[1:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(k, "--") {
			t.Fatalf("argument %q: write --flag=value, one per item", a)
		}
		args[k] = v
	}
	if got := args["--config"]; got != mountPath(t, c, "config")+"/weir.yaml" {
		t.Errorf("--config=%s is not weir.yaml in the ConfigMap's mount", got)
	}
	env := map[string]envVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	podIP := "10.1.2.3"
	if e := env["POD_IP"]; e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "status.podIP" {
		t.Errorf("POD_IP is not the downward API's status.podIP: %+v", e)
	}
	expand := func(s string) string { return strings.ReplaceAll(s, "$(POD_IP)", podIP) }
	cfg.Cluster.Listen = expand(args["--cluster-listen"])
	cfg.Cluster.PeerListen = expand(args["--peer-listen"])
	if cfg.Cluster.Listen != podIP+":7946" || cfg.Cluster.PeerListen != podIP+":7947" {
		t.Errorf("the pod's gossip and peer listeners are %q and %q, want them on the pod's IP", cfg.Cluster.Listen, cfg.Cluster.PeerListen)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("weir.yaml with the pod's arguments does not validate: %v", err)
	}

	// Memory: the limit reaches --memory-limit, and leaves a cache.
	if args["--memory-limit"] != "$(MEMORY_LIMIT)" {
		t.Errorf("--memory-limit=%q, want $(MEMORY_LIMIT)", args["--memory-limit"])
	}
	if r := env["MEMORY_LIMIT"].ValueFrom.ResourceFieldRef; r == nil || r.Resource != "limits.memory" || r.ContainerName != c.Name || r.Divisor != "1" {
		t.Errorf("MEMORY_LIMIT is not the container's limits.memory in bytes: %+v", r)
	}
	limit := quantity(t, c.Resources.Limits["memory"])
	if req := quantity(t, c.Resources.Requests["memory"]); req != limit {
		t.Errorf("memory request %d differs from the limit %d: the pod would be evicted first under pressure", req, limit)
	}
	size, err := node.CacheSizeFor(limit)
	if err != nil {
		t.Fatalf("the memory limit: %v", err)
	}
	if size < 4*cfg.Cache.MaxObjectSize {
		t.Errorf("limits.memory %s gives a cache of %s, less than 4 × max_object_size (%s): weir would refuse it", c.Resources.Limits["memory"], size, cfg.Cache.MaxObjectSize)
	}
	if _, ok := c.Resources.Limits["cpu"]; ok {
		t.Error("a CPU limit throttles the edge; the manifest requests CPU only")
	}

	// Ports: the container's, the config's, the image's and the Services'.
	ports := map[string]containerPort{}
	for _, p := range c.Ports {
		ports[p.Name] = p
	}
	wantPort := func(name, addr, proto string) {
		t.Helper()
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s address %q: %v", name, addr, err)
			return
		}
		if cp, ok := ports[name]; !ok || strconv.Itoa(cp.ContainerPort) != p || cp.Protocol != proto {
			t.Errorf("container port %s = %+v, want %s/%s (from %q)", name, cp, p, proto, addr)
		}
	}
	wantPort("edge", cfg.Listen, "TCP")
	wantPort("admin", cfg.AdminListen, "TCP")
	wantPort("gossip-tcp", cfg.Cluster.Listen, "TCP")
	wantPort("gossip-udp", cfg.Cluster.Listen, "UDP")
	wantPort("peer", cfg.Cluster.PeerListen, "TCP")
	exposed := containerfileExpose(t)
	for _, p := range c.Ports {
		if want := fmt.Sprintf("%d/%s", p.ContainerPort, strings.ToLower(p.Protocol)); !slices.Contains(exposed, want) {
			t.Errorf("container port %s (%s) is not EXPOSEd by deploy/container/Containerfile (%v)", p.Name, want, exposed)
		}
	}
	if host, _, _ := net.SplitHostPort(cfg.AdminListen); host != "" && !net.ParseIP(host).IsUnspecified() {
		t.Errorf("admin_listen %q: the kubelet probes the pod's IP, so the admin listener must listen on every interface", cfg.AdminListen)
	}

	// Probes on the admin listener.
	for _, p := range []struct {
		name string
		p    *probe
		path string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if p.p == nil || p.p.HTTPGet.Path != p.path || p.p.HTTPGet.Port != "admin" {
			t.Errorf("%s probe %+v, want GET %s on the admin port", p.name, p.p, p.path)
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.PeriodSeconds*c.LivenessProbe.FailureThreshold < 20 {
		t.Errorf("the liveness probe restarts a pod after %d s without answers; a GC pause or a drain must not", c.LivenessProbe.PeriodSeconds*c.LivenessProbe.FailureThreshold)
	}

	// Shutdown: the grace period covers the drain.
	delay := time.Duration(cfg.Server.ShutdownDelay)
	drain := time.Duration(cfg.Server.ShutdownTimeout) + delay + 3*time.Second // + leaving the cluster
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= drain {
		t.Errorf("terminationGracePeriodSeconds %s is not above shutdown_timeout + shutdown_delay + 3s = %s: the kubelet would kill the drain", grace, drain)
	}

	// Cluster discovery: the headless Service, found by its name.
	if sts.Spec.ServiceName != headless.Metadata.Name || headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("the headless Service %s: serviceName %q, clusterIP %q, publishNotReadyAddresses %v; want the StatefulSet's serviceName, None and true",
			headless.Metadata.Name, sts.Spec.ServiceName, headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses)
	}
	if len(cfg.Cluster.Join) == 0 {
		t.Error("cluster.join is empty: every pod would start a cluster of its own")
	}
	for _, j := range cfg.Cluster.Join {
		host, port, _ := net.SplitHostPort(j)
		if first, _, _ := strings.Cut(host, "."); first != headless.Metadata.Name || port != "7946" {
			t.Errorf("cluster.join %q is not the headless Service %s at the gossip port", j, headless.Metadata.Name)
		}
	}
	for _, svc := range []*service{headless, edgeSvc} {
		if !subset(svc.Spec.Selector, podLabels) {
			t.Errorf("Service %s selects %v, not the pods (%v)", svc.Metadata.Name, svc.Spec.Selector, podLabels)
		}
		for _, p := range svc.Spec.Ports {
			if cp, ok := ports[p.TargetPort]; !ok || cp.Protocol != p.Protocol {
				t.Errorf("Service %s port %s targets %q/%s, which the container does not have", svc.Metadata.Name, p.Name, p.TargetPort, p.Protocol)
			}
		}
	}
	if edgeSvc.Spec.ClusterIP == "None" || len(edgeSvc.Spec.Ports) != 1 || edgeSvc.Spec.Ports[0].TargetPort != "edge" {
		t.Errorf("the edge Service %+v: want a load-balanced Service of the edge port", edgeSvc.Spec)
	}
	if !subset(sts.Spec.Selector.MatchLabels, podLabels) || !subset(m.pdbs[0].Spec.Selector.MatchLabels, podLabels) || m.pdbs[0].Spec.MaxUnavailable != 1 {
		t.Errorf("the StatefulSet's or the PodDisruptionBudget's selector does not select the pods, or the budget is not one pod")
	}
	if sts.Spec.Replicas < 3 || sts.Spec.PodManagementPolicy != "OrderedReady" {
		t.Errorf("replicas %d, podManagementPolicy %q: want 3 or more, started in order (the first starts the cluster)", sts.Spec.Replicas, sts.Spec.PodManagementPolicy)
	}

	// Secrets: mounted where weir.yaml looks, with the keys it names.
	secretsAt := mountPath(t, c, "secrets")
	for _, f := range []struct{ setting, path string }{{"cluster.key_file", cfg.Cluster.KeyFile}, {"admin_tokens_file", cfg.AdminTokensFile}} {
		if filepath.Dir(f.path) != secretsAt {
			t.Errorf("%s %q is not in the Secret's mount %s", f.setting, f.path, secretsAt)
		}
		if _, ok := sec.StringData[filepath.Base(f.path)]; !ok {
			t.Errorf("%s %q: the Secret has no key %s", f.setting, f.path, filepath.Base(f.path))
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil && (v.Secret.SecretName != sec.Metadata.Name || v.Secret.DefaultMode&0o007 != 0) {
			t.Errorf("secret volume %+v: want %s, unreadable by others", v.Secret, sec.Metadata.Name)
		}
		if v.ConfigMap != nil && v.ConfigMap.Name != cm.Metadata.Name {
			t.Errorf("configMap volume %+v: want %s", v.ConfigMap, cm.Metadata.Name)
		}
	}

	// The image's user, and nothing more than it needs.
	sc := pod.SecurityContext
	if !sc.RunAsNonRoot || sc.RunAsUser != 65532 || sc.RunAsGroup != 65532 || sc.FSGroup != 65532 {
		t.Errorf("pod securityContext %+v: want the image's 65532:65532, non-root, with fsGroup for the Secret", sc)
	}
	csc := c.SecurityContext
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation || !csc.ReadOnlyRootFilesystem || !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container securityContext %+v: want no privilege escalation, a read-only root and every capability dropped", csc)
	}
	if repo, _, _ := strings.Cut(filepath.Base(c.Image), ":"); repo != "weir" {
		t.Errorf("image %q is not a weir image (deploy/container/build.sh tags weir:VERSION)", c.Image)
	}
}

// TestKubectlKustomize: kubectl builds the manifests as kubectl apply -k
// would, offline (apply and create --dry-run=client both need an API
// server to map kinds), and they come out as the files have them.
func TestKubectlKustomize(t *testing.T) {
	kubectl := need(t, "kubectl", "see the Kubernetes documentation")
	m, _ := loadManifests(t)
	out, err := runErr(time.Minute, nil, kubectl, "kustomize", filepath.Join(root(t), "deploy", "kubernetes"))
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/kubernetes: %v\n%s", err, out)
	}
	built := &manifests{configMaps: map[string]*configMap{}, secrets: map[string]*secret{}, services: map[string]*service{}, statefulSets: map[string]*statefulSet{}}
	built.decode(t, "kubectl kustomize", []byte(out))
	want := slices.DeleteFunc(slices.Clone(m.ids), func(id string) bool { return strings.HasPrefix(id, "Secret/") })
	got := slices.Clone(built.ids)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("kubectl kustomize built %v, want %v (never the placeholder Secret)", got, want)
	}
	if built.statefulSets["weir"] == nil || built.statefulSets["weir"].Metadata.Labels["app.kubernetes.io/part-of"] != "weir" {
		t.Error("kustomize did not label the StatefulSet app.kubernetes.io/part-of: weir")
	}
}

func mountPath(t *testing.T, c container, volume string) string {
	t.Helper()
	for _, v := range c.VolumeMounts {
		if v.Name == volume {
			if !v.ReadOnly {
				t.Errorf("volume %s is mounted writable", volume)
			}
			return v.MountPath
		}
	}
	t.Fatalf("the container does not mount volume %s", volume)
	return ""
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// quantity parses a Kubernetes memory quantity such as 1Gi or 512M.
func quantity(t *testing.T, q string) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(q, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				t.Fatalf("memory quantity %q: %v", q, err)
			}
			return n * u.mult
		}
	}
	t.Fatalf("memory quantity %q", q)
	return 0
}

// containerfileExpose returns the ports deploy/container/Containerfile
// exposes, as "8080/tcp".
func containerfileExpose(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "deploy", "container", "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^EXPOSE (.+)$`).FindAllStringSubmatch(string(data), -1) {
		out = append(out, strings.Fields(m[1])...)
	}
	return out
}
