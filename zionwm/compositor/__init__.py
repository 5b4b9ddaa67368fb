"""The compositor: everything that touches wlroots / pywayland lives under this package.

Raw pointer work is confined to `native/`; pure models (`policy`, `desktops`) have no
wlroots imports and are unit-tested directly.
"""
