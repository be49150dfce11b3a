package deploy

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/testkit"
)

// kustomization is the part of kustomization.yaml this test understands,
// decoded strictly: a field it does not know means the fallback below
// would render something else than kubectl does.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// renderK8s is what `kubectl apply -k deploy/k8s` would send: kubectl
// kustomize when kubectl is installed, else the resources that
// kustomization.yaml lists, concatenated.
func renderK8s(t *testing.T) []byte {
	t.Helper()
	dir := filepath.Join("k8s")
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	require.NoError(t, err)
	var k kustomization
	require.NoError(t, yaml.UnmarshalStrict(b, &k), "kustomization.yaml")
	require.Equal(t, "Kustomization", k.Kind)
	require.NotEmpty(t, k.Resources)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() != "kustomization.yaml" && strings.HasSuffix(e.Name(), ".yaml") {
			require.Contains(t, k.Resources, e.Name(), "%s is not listed in kustomization.yaml's resources", e.Name())
		}
	}

	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		var stderr bytes.Buffer
		cmd := exec.Command(kubectl, "kustomize", dir)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "kubectl kustomize: %s", stderr.String())
		return out
	}
	t.Log("kubectl is not installed: reading kustomization.yaml's resources directly")
	var all []byte
	for _, r := range k.Resources {
		b, err := os.ReadFile(filepath.Join(dir, r))
		require.NoError(t, err)
		all = append(append(all, "\n---\n"...), b...)
	}
	return all
}

// k8sObjects are the rendered manifests, each strictly decoded into its
// k8s.io/api type: a misspelt or misplaced field fails.
type k8sObjects struct {
	deployments     map[string]*appsv1.Deployment
	jobs            map[string]*batchv1.Job
	services        map[string]*corev1.Service
	secrets         map[string]*corev1.Secret
	pdbs            map[string]*policyv1.PodDisruptionBudget
	hpas            map[string]*autoscalingv2.HorizontalPodAutoscaler
	networkPolicies map[string]*networkingv1.NetworkPolicy
	namespaces      []string
}

func loadK8s(t *testing.T) k8sObjects {
	t.Helper()
	o := k8sObjects{
		deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{}, services: map[string]*corev1.Service{},
		secrets: map[string]*corev1.Secret{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, networkPolicies: map[string]*networkingv1.NetworkPolicy{},
	}
	decode := func(doc []byte, into any) {
		require.NoError(t, yaml.UnmarshalStrict(doc, into), "%s", doc)
	}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(renderK8s(t)), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal([]byte(doc), &tm))
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			var d appsv1.Deployment
			decode([]byte(doc), &d)
			o.deployments[d.Name] = &d
		case "batch/v1 Job":
			var j batchv1.Job
			decode([]byte(doc), &j)
			o.jobs[j.Name] = &j
		case "v1 Service":
			var s corev1.Service
			decode([]byte(doc), &s)
			o.services[s.Name] = &s
		case "v1 Secret":
			var s corev1.Secret
			decode([]byte(doc), &s)
			o.secrets[s.Name] = &s
		case "v1 Namespace":
			var n corev1.Namespace
			decode([]byte(doc), &n)
			o.namespaces = append(o.namespaces, n.Name)
		case "policy/v1 PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			decode([]byte(doc), &p)
			o.pdbs[p.Name] = &p
		case "autoscaling/v2 HorizontalPodAutoscaler":
			var h autoscalingv2.HorizontalPodAutoscaler
			decode([]byte(doc), &h)
			o.hpas[h.Name] = &h
		case "networking.k8s.io/v1 NetworkPolicy":
			var n networkingv1.NetworkPolicy
			decode([]byte(doc), &n)
			o.networkPolicies[n.Name] = &n
		default:
			t.Fatalf("unexpected manifest %s %s", tm.APIVersion, tm.Kind)
		}
	}
	return o
}

// podEnv resolves a container's environment: literal values as they are,
// secretKeyRef values from the Secret (every key must exist there), with
// placeholders that must be replaced before deploying swapped for values
// that pass validation.
func podEnv(t *testing.T, o k8sObjects, c corev1.Container) map[string]string {
	t.Helper()
	secretVar := map[string]bool{}
	known := map[string]bool{}
	for _, v := range config.Vars {
		known[v.Name] = true
		secretVar[v.Name] = v.Secret
	}
	require.Empty(t, c.EnvFrom, "%s: env is listed variable by variable, so this test can check each", c.Name)
	env := map[string]string{}
	for _, e := range c.Env {
		require.True(t, known[e.Name], "%s sets %s, which is not in config.Vars", c.Name, e.Name)
		_, dup := env[e.Name]
		require.False(t, dup, "%s sets %s twice", c.Name, e.Name)
		if e.ValueFrom == nil {
			require.False(t, secretVar[e.Name], "%s: %s is a secret; take it from the Secret", c.Name, e.Name)
			env[e.Name] = e.Value
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		require.NotNil(t, ref, "%s: %s comes from a Secret or is a literal", c.Name, e.Name)
		secret, ok := o.secrets[ref.Name]
		require.True(t, ok, "%s: %s names Secret %q, which is not in the manifests", c.Name, e.Name, ref.Name)
		v, ok := secret.StringData[ref.Key]
		require.True(t, ok, "%s: Secret %s has no key %s", c.Name, ref.Name, ref.Key)
		if v == "REPLACE-ME" {
			v = map[string]string{"INTAKE_STATUS_SECRET": testkit.StatusSecret}[e.Name]
		}
		env[e.Name] = v
	}
	return env
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("%s has no port named %s", c.Name, name)
	return 0
}

func addrPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return int32(n)
}

// requireHardened checks what every Intake pod must be: non-root, no
// privilege escalation, a read-only root filesystem, bounded resources.
func requireHardened(t *testing.T, name string, spec corev1.PodSpec) {
	t.Helper()
	require.NotNil(t, spec.SecurityContext, name)
	require.Equal(t, new(true), spec.SecurityContext.RunAsNonRoot, "%s runs as non-root", name)
	require.NotNil(t, spec.SecurityContext.RunAsUser, name)
	require.NotZero(t, *spec.SecurityContext.RunAsUser, name)
	require.Len(t, spec.Containers, 1, name)
	c := spec.Containers[0]
	require.NotNil(t, c.SecurityContext, name)
	require.Equal(t, new(true), c.SecurityContext.ReadOnlyRootFilesystem, "%s: read-only root filesystem", name)
	require.Equal(t, new(false), c.SecurityContext.AllowPrivilegeEscalation, "%s", name)
	require.Contains(t, c.SecurityContext.Capabilities.Drop, corev1.Capability("ALL"), "%s", name)
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		q := c.Resources.Requests[r]
		require.False(t, q.IsZero(), "%s requests %s", name, r)
	}
	limit := c.Resources.Limits[corev1.ResourceMemory]
	require.False(t, limit.IsZero(), "%s limits memory", name)
}

// requireProbes checks readiness on /readyz and liveness on /healthz, both
// on the ops port, which is where the binary's ops address listens.
func requireProbes(t *testing.T, name string, c corev1.Container, opsAddr string) {
	t.Helper()
	require.Equal(t, addrPort(t, opsAddr), containerPort(t, c, "ops"), "%s: the ops port is the ops listener's", name)
	for probe, path := range map[*corev1.Probe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
		require.NotNil(t, probe, "%s: %s probe", name, path)
		require.NotNil(t, probe.HTTPGet, name)
		require.Equal(t, path, probe.HTTPGet.Path, name)
		require.Equal(t, "ops", probe.HTTPGet.Port.String(), "%s: %s on the ops port", name, path)
	}
}

func TestK8sManifests(t *testing.T) {
	t.Parallel()
	o := loadK8s(t)
	require.Equal(t, []string{"intake"}, o.namespaces)
	require.Len(t, o.deployments, 2)

	secret := o.secrets["intake"]
	require.NotNil(t, secret, "the Secret intake")
	for _, key := range []string{"DATABASE_URL", "INTAKE_SMTP_USERNAME", "INTAKE_SMTP_PASSWORD", "INTAKE_STATUS_SECRET"} {
		require.Contains(t, secret.StringData, key)
	}

	api := o.deployments["intake-api"]
	require.NotNil(t, api)
	require.GreaterOrEqual(t, *api.Spec.Replicas, int32(2))
	requireHardened(t, "intake-api", api.Spec.Template.Spec)
	ac := api.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"/usr/local/bin/intake-api"}, ac.Command)
	apiEnv := podEnv(t, o, ac)
	apiCfg, err := config.Load(func(k string) string { return apiEnv[k] })
	require.NoError(t, err, "intake-api's environment")
	require.Equal(t, addrPort(t, apiCfg.HTTPAddr), containerPort(t, ac, "http"))
	requireProbes(t, "intake-api", ac, apiCfg.APIOpsAddr)
	require.Greater(t, time.Duration(*api.Spec.Template.Spec.TerminationGracePeriodSeconds)*time.Second, apiCfg.ShutdownTimeout,
		"intake-api's grace period must outlast INTAKE_SHUTDOWN_TIMEOUT")

	worker := o.deployments["intake-worker"]
	require.NotNil(t, worker)
	require.GreaterOrEqual(t, *worker.Spec.Replicas, int32(2))
	requireHardened(t, "intake-worker", worker.Spec.Template.Spec)
	wc := worker.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"/usr/local/bin/intake-worker"}, wc.Command)
	workerEnv := podEnv(t, o, wc)
	workerCfg, err := config.Load(func(k string) string { return workerEnv[k] })
	require.NoError(t, err, "intake-worker's environment")
	requireProbes(t, "intake-worker", wc, workerCfg.OpsAddr)
	exit := workerCfg.ShutdownTimeout + workerCfg.JobTimeout + workerCfg.RecordTimeout + time.Second
	require.Greater(t, time.Duration(*worker.Spec.Template.Spec.TerminationGracePeriodSeconds)*time.Second, exit,
		"intake-worker's grace period must outlast INTAKE_SHUTDOWN_TIMEOUT + INTAKE_JOB_TIMEOUT + INTAKE_RECORD_TIMEOUT + 1s")
	require.Equal(t, apiCfg.PublicURL.String(), workerCfg.PublicURL.String(), "the email's links must point at the API")
	require.Equal(t, apiEnv["INTAKE_STATUS_SECRET"], workerEnv["INTAKE_STATUS_SECRET"])

	migrate := o.jobs["intake-migrate"]
	require.NotNil(t, migrate)
	requireHardened(t, "intake-migrate", migrate.Spec.Template.Spec)
	mc := migrate.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"/usr/local/bin/intakectl", "migrate"}, mc.Command)
	migrateEnv := podEnv(t, o, mc)
	_, err = config.Load(func(k string) string { return migrateEnv[k] })
	require.NoError(t, err, "intake-migrate's environment")

	images := map[string]bool{ac.Image: true, wc.Image: true, mc.Image: true}
	require.Len(t, images, 1, "one image for all three")

	// Services, PDBs, the HPA and the NetworkPolicy select the pods they
	// are for.
	podLabels := map[string]labels.Set{
		"intake-api":    api.Spec.Template.Labels,
		"intake-worker": worker.Spec.Template.Labels,
	}
	for name, d := range o.deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		require.NoError(t, err)
		require.True(t, sel.Matches(podLabels[name]), "%s's selector matches its pods", name)
	}
	for svc, want := range map[string]struct {
		pods, port string
	}{"intake-api": {"intake-api", "http"}, "intake-api-ops": {"intake-api", "ops"}, "intake-worker-ops": {"intake-worker", "ops"}} {
		s := o.services[svc]
		require.NotNil(t, s, "Service %s", svc)
		require.True(t, labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels[want.pods]), "Service %s selects %s", svc, want.pods)
		require.Len(t, s.Spec.Ports, 1)
		require.Equal(t, want.port, s.Spec.Ports[0].TargetPort.String(), "Service %s", svc)
	}
	require.Len(t, o.services, 3)
	for name := range o.deployments {
		p := o.pdbs[name]
		require.NotNil(t, p, "PodDisruptionBudget %s", name)
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		require.NoError(t, err)
		require.True(t, sel.Matches(podLabels[name]), "PDB %s selects its pods", name)
		require.NotNil(t, p.Spec.MinAvailable)
		require.Less(t, p.Spec.MinAvailable.IntValue(), int(*o.deployments[name].Spec.Replicas), "PDB %s must let a node drain", name)
	}
	hpa := o.hpas["intake-api"]
	require.NotNil(t, hpa, "the API's HPA")
	require.Equal(t, "Deployment", hpa.Spec.ScaleTargetRef.Kind)
	require.Equal(t, "intake-api", hpa.Spec.ScaleTargetRef.Name)
	require.GreaterOrEqual(t, *hpa.Spec.MinReplicas, int32(2))
	require.Greater(t, hpa.Spec.MaxReplicas, *hpa.Spec.MinReplicas)

	require.Len(t, o.networkPolicies, 1)
	for _, np := range o.networkPolicies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		require.NoError(t, err)
		for name, l := range podLabels {
			require.True(t, sel.Matches(l), "the NetworkPolicy covers %s", name)
		}
		require.True(t, sel.Matches(labels.Set(migrate.Spec.Template.Labels)), "the NetworkPolicy covers the migration")
		// The public port is open to all; the ops ports are not.
		for _, rule := range np.Spec.Ingress {
			var ports []int
			for _, p := range rule.Ports {
				ports = append(ports, p.Port.IntValue())
			}
			if len(rule.From) == 0 {
				require.Equal(t, []int{int(addrPort(t, apiCfg.HTTPAddr))}, ports, "only the API's public port is open to everyone")
			} else {
				require.False(t, slices.Contains(ports, int(addrPort(t, apiCfg.HTTPAddr))))
			}
		}
	}
}
