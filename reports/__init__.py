"""Reporters: the JSON report (the source of truth) and renderings made from it.

Every reporter works from the JSON report's dict form only, so a saved report can be
re-rendered later without the scanner or the network.
"""
