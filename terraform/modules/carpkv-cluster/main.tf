# The node plan: which node serves which group, in which subnet and zone,
# at which address; and for each node, the cloud-init user data that
# installs and starts its agent. No resources, no providers.

locals {
  # Every group the cluster ever had up to `groups`, g1..gN: the placement
  # counts them all, so a group's nodes keep their subnets and addresses
  # whatever is added after them or removed before them.
  all_group_ids = [for g in range(var.groups) : "g${g + 1}"]
  # The groups whose nodes are planned: removed_groups are left out.
  group_ids = [for g in local.all_group_ids : g if !contains(var.removed_groups, g)]
  weights   = { for g in local.group_ids : g => lookup(var.group_weights, g, 1) }

  # The groups of the cluster's first ring. Only they are counted in
  # expect-groups and only their nodes are gossip seeds, so raising
  # `groups` later adds nodes without changing a byte of the existing
  # nodes' settings or user data (docs/deploy.md, "Add or remove a group").
  initial_groups  = coalesce(var.initial_groups, var.groups)
  founding_groups = [for gi, g in local.all_group_ids : g if gi < local.initial_groups && contains(local.group_ids, g)]
  # Once every founding group is removed, the remaining groups seed.
  seed_groups = length(local.founding_groups) > 0 ? local.founding_groups : local.group_ids

  # Replica r of group g goes to subnet (g + r) mod n: each group's members
  # walk the subnets in turn, and groups start at different subnets so the
  # leaders' load spreads too.
  slots = flatten([
    for gi, g in local.all_group_ids : [
      for r in range(var.replicas) : {
        name    = "${var.name}-${g}-${r + 1}"
        group   = g
        replica = r + 1
        subnet  = (gi + r) % length(var.subnets)
      }
    ]
  ])

  all_placed = [
    for i, s in local.slots : merge(s, {
      zone      = var.subnets[s.subnet].zone
      subnet_id = var.subnets[s.subnet].id
      ip = cidrhost(var.subnets[s.subnet].cidr,
      var.host_offset + length([for j, o in local.slots : j if j < i && o.subnet == s.subnet]))
    })
  ]

  # The k-th node placed in a subnet gets host number host_offset + k,
  # counting the nodes of removed groups too (their addresses stay unused).
  placed = [
    for i, s in local.all_placed : s if contains(local.group_ids, s.group)
  ]

  nodes = {
    for n in local.placed : n.name => merge(n, {
      raft_addr   = "${n.ip}:${var.ports.raft}"
      http_addr   = "${n.ip}:${var.ports.http}"
      gossip_addr = "${n.ip}:${var.ports.gossip}"
    })
  }

  # Gossip seeds: the first members of every founding group, then the
  # second ones, and so on (so they span groups and zones); each node takes
  # the first five that are not itself. One reachable seed is enough to
  # join, and the nodes of a group added later find the cluster through
  # the founding groups' nodes.
  seed_order = [for n in sort([
    for n in local.placed : format("%02d/%03d/%s", n.replica, index(local.all_group_ids, n.group), n.name)
    if contains(local.seed_groups, n.group)
  ]) : split("/", n)[2]]
  seeds = {
    for name in keys(local.nodes) : name => [
      for i, s in [for s in local.seed_order : local.nodes[s].gossip_addr if s != name] : s if i < 5
    ]
  }

  # Zone spread: the largest number of a group's members in one zone must
  # stay below the group's majority, or one zone outage stops the group.
  majority = floor(var.replicas / 2) + 1
  worst_zone_share = max(0, [
    for g in local.group_ids : max([
      for z in distinct([for n in local.placed : n.zone]) :
      length([for n in local.placed : n if n.group == g && n.zone == z])
    ]...)
  ]...)
  zones_ok = !var.require_zone_spread || local.worst_zone_share < local.majority

  # /etc/carpkv/agent.yaml of each node. Keys are the agent's flag names.
  # The agent's YAML reader wants a float for group-weight, so a whole
  # weight is written as "2.0".
  agent_config = {
    for name, n in local.nodes : name => join("", [
      "# carpkv agent settings for ${name}, rendered by the carpkv-cluster Terraform module.\n",
      "# Keys are the agent's flag names (carpkv-agent --help); CARPKV_* variables in\n",
      "# /etc/carpkv/agent.env override them.\n",
      yamlencode(merge({
        "group"            = n.group
        "data-dir"         = "/var/lib/carpkv"
        "raft-addr"        = "0.0.0.0:${var.ports.raft}"
        "raft-advertise"   = n.raft_addr
        "http-addr"        = "0.0.0.0:${var.ports.http}"
        "http-advertise"   = n.http_addr
        "gossip-addr"      = "0.0.0.0:${var.ports.gossip}"
        "gossip-advertise" = n.gossip_addr
        "bootstrap-expect" = var.replicas
        "expect-groups"    = local.initial_groups
        "retry-join"       = local.seeds[name]
      }, var.agent_settings)),
      "\"group-weight\": ${strcontains(tostring(local.weights[n.group]), ".") ? tostring(local.weights[n.group]) : "${local.weights[n.group]}.0"}\n",
    ])
  }

  install_script = templatefile("${path.module}/templates/install.sh.tftpl", {
    agent_url    = var.agent_url
    agent_sha256 = var.agent_sha256
    ctl_url      = var.ctl_url == null ? "" : var.ctl_url
    ctl_sha256   = var.ctl_sha256 == null ? "" : var.ctl_sha256
  })

  user_data = {
    for name, n in local.nodes : name => join("", [
      "#cloud-config\n",
      "# carpkv node ${name}: group ${n.group}, replica ${n.replica}, zone ${n.zone}.\n",
      "# Rendered by the carpkv-cluster Terraform module: writes the agent's user,\n",
      "# unit and settings, then downloads, verifies and starts the agent.\n",
      yamlencode({
        write_files = [
          {
            path        = "/usr/lib/sysusers.d/carpkv.conf"
            permissions = "0644"
            content     = file("${path.module}/files/carpkv.sysusers")
          },
          {
            path        = "/etc/systemd/system/carpkv-agent.service"
            permissions = "0644"
            content     = file("${path.module}/files/carpkv-agent.service")
          },
          {
            path        = "/etc/carpkv/agent.yaml"
            permissions = "0640"
            content     = local.agent_config[name]
          },
          {
            path        = "/usr/local/sbin/carpkv-install"
            permissions = "0755"
            content     = local.install_script
          },
        ]
        runcmd = [["/usr/local/sbin/carpkv-install"]]
      }),
    ])
  }
}
