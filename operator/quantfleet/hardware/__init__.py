"""quantfleet.hardware"""
