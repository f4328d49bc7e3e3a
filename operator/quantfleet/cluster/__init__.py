"""quantfleet.cluster: pure views of the cluster (GPU pools from Node objects)."""
