"""quantfleet.planning"""
