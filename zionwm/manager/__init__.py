"""zionwm-manager: the graphical manager of desktops, their apps and the quarantine.

A trusted program on the host Wayland socket. It speaks only the control protocol (and the
quarantine service's socket, as `zionctl quarantine` does) and imports nothing of the
compositor. The modules without `gtk` in their name are pure and hold every decision; the
`gtk_*` modules only draw them and turn clicks into control requests.
"""
