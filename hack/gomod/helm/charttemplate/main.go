// Command charttemplate renders a chart as `helm template NAME CHART` does, through Helm's own chart loader,
// --set parser, values coalescing and schema validation, template engine and manifest sorting, but without the
// rest of helm (its CLI, OCI registry client and Kubernetes client): it builds in a fraction of helm's time, so
// the chart test can run on every CI machine. The output format is helm template's: each manifest as
// "---\n# Source: <file>\n<yaml>", CRDs first with --include-crds, resources in Helm's install order, hooks last.
//
// Usage: charttemplate [--namespace NS] [--set k=v]... [--api-versions group/version[/Kind]]... [--include-crds] NAME CHART
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
)

// stringList is a repeatable flag, like helm's --set and --api-versions.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	release, chart, namespace string
	sets, apiVersions         []string
	includeCRDs               bool
}

func main() {
	opts, err := parse(os.Args[1:])
	if err == nil {
		var out string
		if out, err = render(opts); err == nil {
			_, err = os.Stdout.WriteString(out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "charttemplate:", err)
		os.Exit(1)
	}
}

func parse(args []string) (options, error) {
	fs := flag.NewFlagSet("charttemplate", flag.ContinueOnError)
	var opts options
	var sets, apiVersions stringList
	fs.StringVar(&opts.namespace, "namespace", "default", "release namespace (.Release.Namespace), as helm -n")
	fs.Var(&sets, "set", "a value as helm --set takes it (repeatable; later ones win)")
	fs.Var(&apiVersions, "api-versions", "an extra .Capabilities.APIVersions entry, as helm --api-versions (repeatable)")
	fs.BoolVar(&opts.includeCRDs, "include-crds", false, "print the chart's crds/ first, as helm --include-crds")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() != 2 {
		return opts, fmt.Errorf("want NAME CHART after the flags, got %q", fs.Args())
	}
	opts.release, opts.chart, opts.sets, opts.apiVersions = fs.Arg(0), fs.Arg(1), sets, apiVersions
	return opts, nil
}

// render follows helm's action.Install.RunWithContext in client-only mode (what `helm template` runs) and
// action.Configuration.renderResources, minus post-renderers, output directories and DNS lookups.
func render(opts options) (string, error) {
	if err := chartutil.ValidateReleaseName(opts.release); err != nil {
		return "", err
	}
	chrt, err := loader.Load(opts.chart)
	if err != nil {
		return "", err
	}
	vals := map[string]interface{}{}
	for _, s := range opts.sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return "", fmt.Errorf("--set %q: %w", s, err)
		}
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return "", err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.APIVersions = append(caps.APIVersions, opts.apiVersions...)
	if kv := chrt.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return "", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", kv, caps.KubeVersion)
	}
	release := chartutil.ReleaseOptions{Name: opts.release, Namespace: opts.namespace, Revision: 1, IsInstall: true}
	values, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals, release, caps, false)
	if err != nil {
		return "", err
	}
	files, err := engine.Render(chrt, values)
	if err != nil {
		return "", err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") { // printed by helm install, never part of the manifest
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if opts.includeCRDs {
		for _, crd := range chrt.CRDObjects() {
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", crd.Filename, crd.File.Data)
		}
	}
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	out := strings.TrimSpace(b.String()) + "\n" // helm template trims the release manifest, then appends hooks
	for _, h := range hooks {
		out += fmt.Sprintf("---\n# Source: %s\n%s\n", h.Path, h.Manifest)
	}
	return out, nil
}
