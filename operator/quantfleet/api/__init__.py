"""quantfleet.api"""
