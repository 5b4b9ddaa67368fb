"""Isolation of desktops: sandboxes, cgroups, network namespaces, storage.

Nothing here imports wlroots: every module is usable (and tested) without a compositor.
"""
