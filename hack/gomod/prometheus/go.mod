// Wrapper module: builds prometheus from github.com/prometheus/prometheus with go.sum pinned in this repository.
module quantfleet.local/hack/gomod/prometheus

go 1.26.7

require (
	github.com/prometheus/prometheus v0.316.0
)
