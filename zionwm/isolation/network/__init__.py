"""The desktops' networks: namespaces, veths, nftables, pasta and the DNS filter.

Layers, lowest first (the import contracts in pyproject.toml hold them):

- `policy` (pure): names of kernel objects, address plans, nftables ruleset text;
  `dnswire` (pure): the DNS wire format;
- `model`: a desktop's network as built (`DesktopNet`) and `NetworkError`;
  `caps`: what this machine can do; `children`: helper processes that die with us;
- `nsutil`: setns threads, sysctls, the allocation lock; `nftcmd`: the ``nft`` command;
  `opswire`: the network-ops process's frames;
- `rootops`: the root-only netlink plumbing (pyroute2), run only in the network-ops process;
  `opsclient`: the manager's side of that process;
  `dnsfilter`: the forwarder's server loop; `dnshelper`: its child process;
  `forwarder`: starting that child; `pasta`: the unprivileged path;
- `manager`: `NetworkManager`, the one entry point the compositor uses;
  `opsd`: the network-ops process (``python -m zionwm.isolation.network.opsd``).
"""
