// Wrapper module: builds helm from helm.sh/helm/v3 with go.sum pinned in this repository.
module quantfleet.local/hack/gomod/helm

go 1.24.0

require (
	helm.sh/helm/v3 v3.19.0
)
