"""Root-filesystem templates: building them safely, storing them once, layering desktops on them.

Owns everything under `paths.templates_dir()` and the per-desktop copy-on-write layers over a
template (`<desktop dir>/template-layer/<template>/`). A template is a root filesystem a
desktop runs its programs on instead of the host's /usr, /etc and /lib*:

    templates/<name>/template.json     what it is built from, its generation, notes
    templates/<name>/gen-<N>/          the tree itself (the read-only lower of every layer)

The modules, lowest first (the import contracts in pyproject.toml hold them):

- `store`: the metadata (`Source`, `Template`), names, paths, `load`, `list_templates`;
- `tree`: the one safe writer every source goes through (`Tree`, `apply_tar`, `copy_dir`);
- `images`: OCI image layouts and docker/podman save archives, layers in order;
  `bootstrap`: debootstrap and podman exports;
- `generations`: which generations running sandboxes use, and removing the others;
- `manage`: `create`, `update`, `delete`, disk usage (``zionctl template``'s verbs);
  `launch`: what the launcher needs (the desktop's layer, the overlay helper, the end of a
  sandbox);
- `cli`: ``zionctl template``.
"""
