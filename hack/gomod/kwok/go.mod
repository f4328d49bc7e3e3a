// Wrapper module: builds kwok from sigs.k8s.io/kwok with go.sum pinned in this repository.
module quantfleet.local/hack/gomod/kwok

go 1.26.0

require (
	sigs.k8s.io/kwok v0.8.0
)
