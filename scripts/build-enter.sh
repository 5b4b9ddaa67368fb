#!/bin/sh
# Build zionwm-enter, the small static helper every sandboxed launch executes (once inside
# the sandbox, and once before bwrap when the program is placed in a cgroup or a network
# namespace). With musl when musl-gcc is installed: a static glibc program spends about half a
# millisecond at start-up asking the CPU for its cache layout (cpuid, which traps in a virtual
# machine), a static musl program does not; that start-up is paid at every launch. glibc
# otherwise. musl's own headers do not include the kernel's: they are linked in from the
# system's linux-libc-dev.
set -eu
src=zionwm/isolation/enter.c
out=zionwm/isolation/zionwm-enter
flags="-O2 -Wall -Wextra -static"
if command -v musl-gcc >/dev/null 2>&1; then
    inc=build/musl-include
    arch=$(gcc -print-multiarch)
    mkdir -p "$inc"
    for d in linux asm-generic; do ln -sfn "/usr/include/$d" "$inc/$d"; done
    ln -sfn "/usr/include/$arch/asm" "$inc/asm"
    # shellcheck disable=SC2086
    musl-gcc $flags -isystem "$inc" -o "$out" "$src"
else
    # shellcheck disable=SC2086
    ${CC:-cc} $flags -o "$out" "$src"
fi
