"""quantfleet.calibrate"""
