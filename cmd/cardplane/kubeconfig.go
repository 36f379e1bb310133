package main

import (
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
)

// clusterFlags are kubectl's connection flags, resolved as kubectl resolves them: --kubeconfig, else the files
// in $KUBECONFIG, else ~/.kube/config; when none of them names a cluster, the pod's service account.
// They are bound explicitly because controller-runtime's --kubeconfig lives on the Go flag.CommandLine, which
// cobra never parses.
type clusterFlags struct {
	loading   *clientcmd.ClientConfigLoadingRules
	overrides clientcmd.ConfigOverrides
}

// bindClusterFlags adds --kubeconfig and --context, and --namespace/-n when the command takes a namespace.
func bindClusterFlags(fs *pflag.FlagSet, namespaceUsage string) *clusterFlags {
	f := &clusterFlags{loading: clientcmd.NewDefaultClientConfigLoadingRules()}
	fs.StringVar(&f.loading.ExplicitPath, clientcmd.RecommendedConfigPathFlag, "",
		"path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster service account)")
	recommended := clientcmd.RecommendedConfigOverrideFlags("")
	names := clientcmd.ConfigOverrideFlags{CurrentContext: recommended.CurrentContext}
	names.CurrentContext.Description = "the kubeconfig context to use (default: its current-context)"
	if namespaceUsage != "" {
		names.ContextOverrideFlags.Namespace = recommended.ContextOverrideFlags.Namespace
		names.ContextOverrideFlags.Namespace.Description = namespaceUsage
	}
	clientcmd.BindOverrideFlags(&f.overrides, fs, names)
	return f
}

// clientConfig reads the kubeconfig lazily, so that --help and flag errors need none.
func (f *clusterFlags) clientConfig() clientcmd.ClientConfig {
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(f.loading, &f.overrides)
}
