"""quantfleet.kube"""
