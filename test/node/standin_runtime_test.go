package node_test

// What the stand-in node's kubelet turns a pod spec into: volumes on disk (Secrets, emptyDirs, the projected
// ServiceAccount token) and the OCI runtime spec runc runs the container from.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// unsupported names what the stand-in cannot do for this pod, so that nothing in the spec is silently ignored.
func unsupported(pod *corev1.Pod) error {
	s := pod.Spec
	switch {
	case len(s.Containers) != 1:
		return fmt.Errorf("stand-in runs one container per pod, the pod has %d", len(s.Containers))
	case len(s.InitContainers) > 0 || len(s.EphemeralContainers) > 0:
		return errors.New("stand-in runs no init or ephemeral containers")
	case s.HostNetwork || s.HostPID || s.HostIPC:
		return errors.New("stand-in runs no host-namespace pods")
	}
	c := s.Containers[0]
	if len(c.Command) > 0 && len(c.Command[0]) == 0 {
		return errors.New("empty command")
	}
	for _, e := range c.EnvFrom {
		return fmt.Errorf("envFrom %v is not supported by the stand-in", e)
	}
	return nil
}

// volumes writes the pod's volumes to the node's disk as the kubelet's volume plugins would.
func (n *standinNode) volumes(ctx context.Context, pod *corev1.Pod, podDir string) (map[string]string, error) {
	fsGroup := -1
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		fsGroup = int(*sc.FSGroup)
	}
	dirs := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(podDir, "volumes", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		files := map[string][]byte{}
		mode := os.FileMode(0o644)
		switch {
		case v.Secret != nil:
			s := &corev1.Secret{}
			err := n.c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: v.Secret.SecretName}, s)
			optional := v.Secret.Optional != nil && *v.Secret.Optional
			switch {
			case err != nil && optional && apierrors.IsNotFound(err):
				// As the kubelet: an optional Secret that does not exist is an empty volume, and the pod starts.
				// (The kubelet would fill it in once the Secret appears; the stand-in does not.)
			case err != nil:
				return nil, waiting(fmt.Errorf("secret volume %s: %w", v.Name, err))
			}
			if v.Secret.DefaultMode != nil {
				mode = os.FileMode(*v.Secret.DefaultMode)
			}
			if err := project(files, s.Data, v.Secret.Items); err != nil {
				return nil, fmt.Errorf("secret volume %s: %w", v.Name, err)
			}
		case v.EmptyDir != nil:
			if err := os.Chmod(dir, 0o777); err != nil { // as the kubelet makes emptyDirs
				return nil, err
			}
		case v.Projected != nil:
			if v.Projected.DefaultMode != nil {
				mode = os.FileMode(*v.Projected.DefaultMode)
			}
			for _, src := range v.Projected.Sources {
				switch {
				case src.ServiceAccountToken != nil:
					token, err := n.token(ctx, pod, src.ServiceAccountToken)
					if err != nil {
						return nil, err
					}
					files[src.ServiceAccountToken.Path] = []byte(token)
				case src.ConfigMap != nil:
					cm := &corev1.ConfigMap{}
					if err := n.c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: src.ConfigMap.Name}, cm); err != nil {
						return nil, waiting(fmt.Errorf("projected configMap %s: %w", src.ConfigMap.Name, err))
					}
					data := map[string][]byte{}
					for k, v := range cm.Data {
						data[k] = []byte(v)
					}
					if err := project(files, data, src.ConfigMap.Items); err != nil {
						return nil, err
					}
				case src.DownwardAPI != nil:
					for _, item := range src.DownwardAPI.Items {
						if item.FieldRef == nil || item.FieldRef.FieldPath != "metadata.namespace" {
							return nil, fmt.Errorf("projected downwardAPI item %s is not supported by the stand-in", item.Path)
						}
						files[item.Path] = []byte(pod.Namespace)
					}
				default:
					return nil, fmt.Errorf("projected source %+v is not supported by the stand-in", src)
				}
			}
		default:
			return nil, fmt.Errorf("volume %s: only secret, emptyDir and projected volumes are supported by the stand-in", v.Name)
		}
		for name, data := range files {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, data, mode); err != nil {
				return nil, err
			}
			if fsGroup >= 0 {
				if err := os.Chown(path, 0, fsGroup); err != nil {
					return nil, err
				}
			}
		}
		if fsGroup >= 0 {
			if err := os.Chown(dir, 0, fsGroup); err != nil {
				return nil, err
			}
		}
		dirs[v.Name] = dir
	}
	return dirs, nil
}

// errWaiting marks what a node waits out (FailedMount of a Secret not yet created) instead of failing the pod.
var errWaiting = errors.New("ContainerCreating")

func waiting(err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %w", errWaiting, err)
	}
	return err
}

func project(files map[string][]byte, data map[string][]byte, items []corev1.KeyToPath) error {
	if len(items) == 0 {
		maps.Copy(files, data)
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %s not found", it.Key)
		}
		files[it.Path] = v
	}
	return nil
}

// token is the kubelet's TokenRequest for a projected ServiceAccount token bound to the pod.
func (n *standinNode) token(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Spec.ServiceAccountName}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		tr.Spec.Audiences = []string{src.Audience}
	}
	if err := n.c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("TokenRequest for serviceaccount %s: %w", sa.Name, err)
	}
	return tr.Status.Token, nil
}

// runtimeSpec is the OCI runtime spec (runc's config.json) of the pod's container.
func (n *standinNode) runtimeSpec(pod *corev1.Pod, imageDir string, run *podRun, volumeDirs map[string]string, podDir string) ([]byte, error) {
	c := pod.Spec.Containers[0]
	var imageCfg struct {
		Config struct {
			User       string
			Env        []string
			Entrypoint []string
			Cmd        []string
			WorkingDir string
		} `json:"config"`
	}
	raw, err := os.ReadFile(filepath.Join(imageDir, "config.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &imageCfg); err != nil {
		return nil, err
	}
	img := imageCfg.Config
	// Kubernetes: command replaces the entrypoint (and drops the image's cmd), args replace the cmd.
	args := append(slices.Clone(img.Entrypoint), img.Cmd...)
	if len(c.Command) > 0 {
		args = append(slices.Clone(c.Command), c.Args...)
	} else if len(c.Args) > 0 {
		args = append(slices.Clone(img.Entrypoint), c.Args...)
	}

	uid, gid := -1, -1
	if u, g, ok := strings.Cut(img.User, ":"); img.User != "" {
		if uid, err = strconv.Atoi(u); err != nil {
			return nil, fmt.Errorf("image user %q is not numeric", img.User)
		}
		gid = uid
		if ok {
			if gid, err = strconv.Atoi(g); err != nil {
				return nil, fmt.Errorf("image group %q is not numeric", img.User)
			}
		}
	}
	psc, csc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	pick := func(container, podLevel *int64, current int) int {
		if container != nil {
			return int(*container)
		}
		if podLevel != nil {
			return int(*podLevel)
		}
		return current
	}
	uid = pick(csc.RunAsUser, psc.RunAsUser, max(uid, 0))
	gid = pick(csc.RunAsGroup, psc.RunAsGroup, max(gid, 0))
	nonRoot := (csc.RunAsNonRoot != nil && *csc.RunAsNonRoot) || (csc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if nonRoot && uid == 0 {
		return nil, errors.New("CreateContainerConfigError: container has runAsNonRoot and image will run as root")
	}
	var groups []int
	if psc.FSGroup != nil {
		groups = append(groups, int(*psc.FSGroup))
	}
	for _, g := range psc.SupplementalGroups {
		groups = append(groups, int(g))
	}

	env := append([]string{"HOSTNAME=" + pod.Name}, img.Env...)
	env = append(env, "KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_SERVICE_PORT_HTTPS=443")
	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom != nil {
			f := e.ValueFrom.FieldRef
			switch {
			case f != nil && f.FieldPath == "metadata.name":
				value = pod.Name
			case f != nil && f.FieldPath == "metadata.namespace":
				value = pod.Namespace
			case f != nil && f.FieldPath == "status.podIP":
				value = run.ip
			case f != nil && f.FieldPath == "spec.nodeName":
				value = nodeName
			default:
				return nil, fmt.Errorf("env %s: valueFrom %+v is not supported by the stand-in", e.Name, e.ValueFrom)
			}
		}
		env = append(env, e.Name+"="+value)
	}

	capabilities := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"} // containerd's defaults
	if csc.Capabilities != nil {
		for _, d := range csc.Capabilities.Drop {
			if d == "ALL" {
				capabilities = nil
				break
			}
			capabilities = slices.DeleteFunc(capabilities, func(c string) bool { return c == "CAP_"+string(d) })
		}
		for _, a := range csc.Capabilities.Add {
			capabilities = append(capabilities, "CAP_"+string(a))
		}
	}
	if uid != 0 { // as containerd does for non-root users: no effective or permitted capabilities
		capabilities = nil
	}

	hosts := filepath.Join(podDir, "hosts")
	if err := os.WriteFile(hosts, fmt.Appendf(nil, "127.0.0.1\tlocalhost\n%s\t%s\n", run.ip, pod.Name), 0o644); err != nil {
		return nil, err
	}
	mounts := []map[string]any{
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": []string{"nosuid", "noexec", "nodev"}},
		{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": []string{"nosuid", "noexec", "nodev", "ro"}},
		{"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": []string{"rbind", "ro"}},
	}
	for _, vm := range c.VolumeMounts {
		src, ok := volumeDirs[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s has no volume", vm.Name)
		}
		if vm.SubPath != "" {
			return nil, fmt.Errorf("volumeMount %s: subPath is not supported by the stand-in", vm.Name)
		}
		opts := []string{"rbind", "rw"}
		if vm.ReadOnly {
			opts = []string{"rbind", "ro"}
		}
		mounts = append(mounts, map[string]any{"destination": vm.MountPath, "type": "bind", "source": src, "options": opts})
	}

	resources := map[string]any{"devices": []map[string]any{{"allow": false, "access": "rwm"}}}
	if lim := c.Resources.Limits; lim != nil {
		if m, ok := lim[corev1.ResourceMemory]; ok {
			resources["memory"] = map[string]any{"limit": m.Value()}
		}
		if cpu, ok := lim[corev1.ResourceCPU]; ok {
			resources["cpu"] = map[string]any{"quota": cpu.MilliValue() * 100, "period": 100000}
		}
	}

	cwd := c.WorkingDir
	if cwd == "" {
		cwd = img.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"terminal": false,
			"user":     map[string]any{"uid": uid, "gid": gid, "additionalGids": groups},
			"args":     args,
			"env":      env,
			"cwd":      cwd,
			"capabilities": map[string]any{"bounding": capabilities, "effective": capabilities, "permitted": capabilities,
				"inheritable": []string{}, "ambient": []string{}},
			"noNewPrivileges": csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation,
		},
		"root":     map[string]any{"path": "rootfs", "readonly": csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem},
		"hostname": pod.Name,
		"mounts":   mounts,
		"linux": map[string]any{
			"cgroupsPath": "/cardplane-standin/" + pod.Name,
			"resources":   resources,
			"namespaces": []map[string]any{{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
				{"type": "network", "path": "/var/run/netns/" + run.netns}},
			"maskedPaths": []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			"readonlyPaths": []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	return json.MarshalIndent(spec, "", " ")
}
