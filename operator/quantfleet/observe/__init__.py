"""quantfleet.observe: pure readings of child objects (Jobs, pods, Deployments) into facts for status."""
