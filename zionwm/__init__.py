"""zionwm: a Wayland compositor in which every virtual desktop is an isolated compartment."""

__version__ = "0.1.0"
