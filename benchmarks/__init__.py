"""Side-by-side benchmarks of zionwm (and sway as the peer); `make bench` runs them all."""
