// Wrapper module: charttemplate/ renders charts with helm's own packages (helm template without helm).
// k8s.io modules at v0.34.4, the Kubernetes build's, to share its Go build cache.
module quantfleet.local/hack/gomod/helm

go 1.24.0

require (
	helm.sh/helm/v3 v3.19.0
	k8s.io/api v0.34.4
	k8s.io/apiextensions-apiserver v0.34.4
	k8s.io/apimachinery v0.34.4
	k8s.io/apiserver v0.34.4
	k8s.io/cli-runtime v0.34.4
	k8s.io/client-go v0.34.4
	k8s.io/component-base v0.34.4
	k8s.io/kubectl v0.34.4
)
