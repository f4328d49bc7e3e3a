"""quantfleet.controllers"""
