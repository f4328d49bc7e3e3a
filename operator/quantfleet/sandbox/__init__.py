"""quantfleet.sandbox"""
