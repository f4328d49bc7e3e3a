// Wrapper module: builds the etcd server (its main package is the module go.etcd.io/etcd/server/v3).
// etcd's own go.mod replaces its sibling modules with ../ paths; here they are required at the same tag.
module quantfleet.local/hack/gomod/etcd

go 1.26.0

require (
	go.etcd.io/etcd/api/v3 v3.6.16
	go.etcd.io/etcd/client/pkg/v3 v3.6.16
	go.etcd.io/etcd/client/v3 v3.6.16
	go.etcd.io/etcd/pkg/v3 v3.6.16
	go.etcd.io/etcd/server/v3 v3.6.16
)
