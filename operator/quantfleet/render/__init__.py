"""quantfleet.render"""
